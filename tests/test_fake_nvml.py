"""FakeNvmlBackend: real pynvml error classes, values that move deterministically."""

from __future__ import annotations

import pynvml
import pytest

from tests.fake_nvml import FakeNvmlBackend, fake_gpus


@pytest.mark.parametrize(
    ("code", "cls", "text"),
    [
        (pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVMLError_NotSupported, "Not Supported"),
        (pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVMLError_GpuIsLost, "GPU is lost"),
        (
            pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
            pynvml.NVMLError_LibraryNotFound,
            "NVML Shared Library Not Found",
        ),
    ],
)
def test_nvml_error_codes_build_the_real_subclasses(code, cls, text):
    err = pynvml.NVMLError(code)
    assert type(err) is cls and err.value == code and str(err) == text


def test_fake_raises_real_nvml_errors_and_moves():
    backend = FakeNvmlBackend(fake_gpus(1), auto_advance=False)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        backend.memory(0)
    backend.init()
    utils = set()
    for _ in range(10):
        utils.add(backend.utilization(0))
        backend.advance()
    assert len(utils) > 3  # the values move...
    again = FakeNvmlBackend(fake_gpus(1), auto_advance=False)
    again.init()
    again.advance(3)
    backend.tick = 3
    assert again.memory(0) == backend.memory(0)  # ...deterministically
    backend.lose_gpu(0)
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        backend.name(0)
