"""CUDA index -> NVML index: by PCI bus id once CUDA has started, else from CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import pytest

from captcha_tui.core.hardware import cuda_to_nvml_indices, normalize_pci_bus_id
from tests.fake_nvml import FakeNvmlBackend, fake_gpus


def started(backend: FakeNvmlBackend) -> FakeNvmlBackend:
    backend.init()
    return backend


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, [0, 1, 2]),
        ("1,0", [1, 0]),
        (" 2 , 0", [2, 0]),
        ("0,7", [0]),  # 7 doesn't exist: CUDA stops there
        ("0,junk,1", [0]),
        ("", []),
        ("-1", []),
        ("0,0", []),  # a repeated device hides them all
        ("GPU-00000002", [2]),
        ("GPU-00000001-1111,1", []),  # a repeat, by uuid and by index
        ("GPU-00000002,GPU-00000000", [2, 0]),
        ("GPU-0000000", []),  # ambiguous prefix matches nothing
        ("MIG-4b2a6c0d-1111", []),
    ],
)
def test_cuda_visible_devices(visible, expected):
    backend = started(FakeNvmlBackend(fake_gpus(3)))
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert cuda_to_nvml_indices(backend, env) == expected


def test_mapping_by_pci_bus_id():
    backend = started(FakeNvmlBackend(fake_gpus(3)))  # NVML buses 01, 02, 03
    # CUDA's FASTEST_FIRST put bus 03 first and CUDA_VISIBLE_DEVICES hid bus 02; torch-style ids.
    order = cuda_to_nvml_indices(
        backend, {"CUDA_VISIBLE_DEVICES": "0,2"}, cuda_pci_bus_ids=["0000:03:00.0", "0000:01:00.0"]
    )
    assert order == [2, 0]
    assert normalize_pci_bus_id("00000000:0A:00.0") == normalize_pci_bus_id("0000:0a:00.0") == "0000:0a:00.0"
    assert normalize_pci_bus_id("not a bus") is None
