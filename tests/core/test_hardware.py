"""The hardware layer against FakeNvmlBackend (and the real pynvml where there's no driver)."""

from __future__ import annotations

import os
import sys
import threading
import time
from types import SimpleNamespace

import pynvml
import pytest

from captcha_tui.core.hardware import (
    FakeGpu,
    FakeNvmlBackend,
    HardwareSampler,
    Monitor,
    PynvmlBackend,
    Sample,
    TorchMemorySample,
    cuda_to_nvml_indices,
    describe_nvml_error,
    fake_gpus,
    normalize_pci_bus_id,
)

MiB = 1024**2


def started(backend: FakeNvmlBackend) -> FakeNvmlBackend:
    backend.init()
    return backend


def assert_host_present(sample: Sample) -> None:
    host = sample.host
    assert host.cpu_count and host.cpu_count >= 1
    assert host.memory_total and 0 < host.memory_used <= host.memory_total
    assert host.process_rss and host.process_rss > 0
    assert host.cpu_percent is not None and host.process_cpu_percent is not None


# --- the fake itself --------------------------------------------------------------------------------------


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


# --- describe_nvml_error ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED), "not supported"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST), "GPU is lost (fell off the bus)"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND), "NVML library not found (no NVIDIA driver)"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED), "NVIDIA driver not loaded"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH), "driver/library version mismatch"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION), "no permission"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN), "Unknown Error"),  # falls back to NVML's own text
        (ModuleNotFoundError("No module named 'pynvml'"), "nvidia-ml-py (pynvml) not installed"),
        (ValueError("boom"), "ValueError: boom"),
    ],
)
def test_describe_nvml_error(exc, words):
    assert describe_nvml_error(exc) == words


# --- sampling ---------------------------------------------------------------------------------------------


def test_values_come_through():
    backend = FakeNvmlBackend(fake_gpus(2))
    backend.set_process_memory(0, os.getpid(), 300 * MiB)
    sample = HardwareSampler(backend, env={}).sample()

    assert sample.nvml_status is None and sample.driver_version == "550.54.15" and sample.errors == ()
    assert [g.index for g in sample.gpus] == [0, 1]
    gpu0, gpu1 = sample.gpus
    # The fake only moves on device_count(), so reading it now gives what the sample saw.
    assert gpu0.name == "NVIDIA GeForce RTX 4090"
    assert (gpu0.memory_used, gpu0.memory_total) == backend.memory(0)
    assert gpu0.memory_total == 24 * 1024**3 and 300 * MiB <= gpu0.memory_used <= gpu0.memory_total
    assert gpu0.utilization == backend.utilization(0) and 0 <= gpu0.utilization <= 100
    assert gpu0.temperature == backend.temperature(0)
    assert gpu0.power_draw_w == pytest.approx(backend.power_usage(0) / 1000)
    assert gpu0.power_limit_w == pytest.approx(450.0)
    assert gpu0.process_memory == 300 * MiB
    assert gpu0.unavailable == {} and gpu0.error is None
    assert gpu1.name == "NVIDIA RTX A4000" and gpu1.process_memory is None  # we're not on that card
    assert_host_present(sample)
    assert sample.torch is None  # no CUDA device asked for


def test_unsupported_field_is_reported_and_the_rest_still_works():
    gpu = FakeGpu(unsupported=frozenset({"temperature", "power_usage"}))
    sample = HardwareSampler(FakeNvmlBackend([gpu]), env={}).sample()
    (card,) = sample.gpus
    assert card.unavailable == {"temperature": "not supported", "power_draw_w": "not supported"}
    assert card.temperature is None and card.power_draw_w is None
    assert card.error is None
    assert card.memory_total == gpu.memory_total and card.utilization is not None
    assert card.power_limit_w == pytest.approx(450.0)


def test_other_per_field_errors_are_words_too():
    backend = FakeNvmlBackend(fake_gpus(1))
    backend.set_error(0, "process_memory", pynvml.NVML_ERROR_NO_PERMISSION)
    (card,) = HardwareSampler(backend, env={}).sample().gpus
    assert card.unavailable == {"process_memory": "no permission"} and card.memory_used is not None


def test_lost_gpu_mid_run():
    backend = FakeNvmlBackend(fake_gpus(3))
    sampler = HardwareSampler(backend, env={})
    assert all(g.error is None for g in sampler.sample().gpus)

    backend.lose_gpu(1)
    sample = sampler.sample()  # must not raise
    lost = sample.gpus[1]
    assert lost.error == "GPU is lost (fell off the bus)"
    assert lost.name == "NVIDIA RTX A4000"  # remembered from before it went
    assert lost.memory_used is None and lost.utilization is None and lost.temperature is None
    assert sample.nvml_status is None
    for ok in (sample.gpus[0], sample.gpus[2]):
        assert ok.error is None and ok.unavailable == {} and ok.memory_total and ok.utilization is not None


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "NVML library not found (no NVIDIA driver)"),
        (pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH, "driver/library version mismatch"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "NVIDIA driver not loaded"),
    ],
)
def test_init_failure_is_a_status_and_host_stats_remain(code, words):
    backend = FakeNvmlBackend(fake_gpus(1))
    backend.fail_init(code)
    sample = HardwareSampler(backend, env={}).sample()
    assert sample.nvml_status == words
    assert sample.gpus == () and sample.driver_version is None and sample.errors == ()
    assert_host_present(sample)


def test_init_is_retried_at_most_every_interval():
    now = [100.0]
    backend = FakeNvmlBackend(fake_gpus(1))
    backend.fail_init(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    sampler = HardwareSampler(backend, env={}, init_retry_s=30.0, clock=lambda: now[0])
    for _ in range(5):
        assert sampler.sample().nvml_status == "NVIDIA driver not loaded"
    assert backend.init_calls == 1  # no retry inside the 30 s

    backend.fail_init(None)  # driver comes back
    now[0] += 29.0
    assert sampler.sample().gpus == () and backend.init_calls == 1
    now[0] += 2.0
    sample = sampler.sample()
    assert backend.init_calls == 2 and sample.nvml_status is None and len(sample.gpus) == 1


def test_nvml_breaking_after_start_becomes_a_status_and_recovers():
    now = [0.0]
    backend = FakeNvmlBackend(fake_gpus(1))
    sampler = HardwareSampler(backend, env={}, init_retry_s=30.0, clock=lambda: now[0])
    assert len(sampler.sample().gpus) == 1
    backend.initialized = False  # e.g. something shut NVML down under us
    sample = sampler.sample()
    assert sample.gpus == () and sample.nvml_status == "NVML not initialised"
    now[0] += 31.0
    assert len(sampler.sample().gpus) == 1 and backend.init_calls == 2


def test_real_pynvml_backend_without_a_driver():
    sample = HardwareSampler(PynvmlBackend(), env={}).sample()
    if sample.nvml_status is None:  # a machine with a driver: then the cards must come through
        assert sample.gpus and all(g.name and g.memory_total for g in sample.gpus if g.error is None)
    else:
        assert "not found" in sample.nvml_status and sample.gpus == ()
    assert_host_present(sample)


def test_sampler_never_raises_even_when_the_backend_is_broken():
    class Broken(FakeNvmlBackend):
        def device_count(self) -> int:
            raise RuntimeError("driver exploded")

    sample = HardwareSampler(Broken(), env={}).sample()
    assert sample.gpus == () and sample.nvml_status == "RuntimeError: driver exploded"


class FakeTorch:
    """Just enough of torch for the sampler: CUDA on or off, two devices on PCI buses 03 and 01."""

    def __init__(self, initialized: bool) -> None:
        self.initialized = initialized
        self.cuda = self
        self.allocator_reads: list[str] = []

    def device(self, spec: str) -> str:
        return spec

    def is_initialized(self) -> bool:
        return self.initialized

    def device_count(self) -> int:
        return 2

    def get_device_properties(self, k: int) -> SimpleNamespace:
        return SimpleNamespace(pci_domain_id=0, pci_bus_id=[3, 1][k], pci_device_id=0)

    def memory_allocated(self, device: str) -> int:
        self.allocator_reads.append(device)
        return 100 * MiB

    def memory_reserved(self, device: str) -> int:
        return 256 * MiB

    def max_memory_allocated(self, device: str) -> int:
        return 180 * MiB


def test_torch_memory_and_pci_mapping_once_cuda_has_started(monkeypatch):
    fake_torch = FakeTorch(initialized=False)
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    sampler = HardwareSampler(
        FakeNvmlBackend(fake_gpus(3)), device="cuda:1", env={"CUDA_VISIBLE_DEVICES": "0,1"}
    )

    before = sampler.sample()
    assert before.torch is None and fake_torch.allocator_reads == []  # CUDA not started: hands off
    assert [(g.index, g.nvml_index) for g in before.gpus] == [(0, 0), (1, 1), (None, 2)]

    fake_torch.initialized = True  # the trainer started CUDA; now torch can name its PCI buses
    after = sampler.sample()
    assert after.torch == TorchMemorySample(
        device="cuda:1", allocated=100 * MiB, reserved=256 * MiB, peak=180 * MiB
    )
    assert [(g.index, g.nvml_index) for g in after.gpus] == [(0, 2), (1, 0), (None, 1)]


def test_no_torch_memory_for_cpu_or_without_cuda():
    import subprocess
    from pathlib import Path

    assert HardwareSampler(FakeNvmlBackend(), device="cpu").sample().torch is None
    # In a fresh interpreter, where nothing has started CUDA yet (in this one, earlier tests may have).
    probe = (
        "import torch\n"
        "from captcha_tui.core.hardware import FakeNvmlBackend, HardwareSampler\n"
        "sample = HardwareSampler(FakeNvmlBackend(), device='cuda:0').sample()\n"
        "print(sample.torch is None, torch.cuda.is_initialized())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],  # this checkout's captcha_tui
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # No torch figures before CUDA is up, and the sampler never starts CUDA itself.
    assert done.stdout.split() == ["True", "False"]


# --- CUDA -> NVML index mapping ---------------------------------------------------------------------------


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


def test_sample_indices_follow_cuda_and_hidden_cards_come_last():
    sampler = HardwareSampler(FakeNvmlBackend(fake_gpus(3)), env={"CUDA_VISIBLE_DEVICES": "2,0"})
    gpus = sampler.sample().gpus
    assert [(g.index, g.nvml_index) for g in gpus] == [(0, 2), (1, 0), (None, 1)]
    assert gpus[2].name == "NVIDIA RTX A4000" and gpus[2].memory_total  # hidden from CUDA, still shown


# --- Monitor ----------------------------------------------------------------------------------------------


def test_monitor_delivers_and_stops_promptly():
    got: list[Sample] = []
    two = threading.Event()

    def on_sample(sample: Sample) -> None:
        got.append(sample)
        if len(got) >= 2:
            two.set()

    backend = FakeNvmlBackend(fake_gpus(1))
    monitor = Monitor(on_sample, HardwareSampler(backend, env={}), interval=0.05)
    with monitor:
        assert two.wait(5.0)
        assert monitor._thread is not threading.current_thread() and monitor.running
    assert not monitor.running
    assert len(got) >= 2 and all(len(s.gpus) == 1 for s in got)
    assert got[1].time >= got[0].time and monitor.latest is got[-1]
    assert not backend.initialized  # NVML shut down with the thread

    # A long interval must not delay stop(): the wait is an Event, not a sleep.
    slow = Monitor(lambda s: None, HardwareSampler(FakeNvmlBackend(), env={}), interval=60.0).start()
    time.sleep(0.05)
    t0 = time.monotonic()
    slow.stop()
    assert not slow.running and time.monotonic() - t0 < 1.0


def test_monitor_survives_a_failing_callback_and_sampler():
    got: list[Sample] = []
    done = threading.Event()

    def on_sample(sample: Sample) -> None:
        got.append(sample)
        if len(got) == 1:
            raise ValueError("ui fell over")
        if len(got) >= 3:
            done.set()

    class Exploding(HardwareSampler):
        calls = 0

        def sample(self) -> Sample:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("bug")
            return super().sample()

    with Monitor(on_sample, Exploding(FakeNvmlBackend(), env={}), interval=0.01) as monitor:
        assert done.wait(5.0)
    assert not monitor.running
    assert "on_sample failed: ValueError('ui fell over')" in got[1].errors
    assert "sampler failed: RuntimeError('bug')" in got[1].errors and got[1].gpus == ()
    assert got[2].errors == () and len(got[2].gpus) == 1
