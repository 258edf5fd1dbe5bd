"""HardwareSampler against FakeNvmlBackend (and the real pynvml where there's no driver)."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pynvml
import pytest

from captcha_tui.core.hardware import (
    HardwareSampler,
    PynvmlBackend,
    Sample,
    TorchMemorySample,
)
from captcha_tui.core.units import GiB, MiB
from tests.fake_nvml import FakeGpu, FakeNvmlBackend, fake_gpus


def assert_host_present(sample: Sample) -> None:
    host = sample.host
    assert host.cpu_count and host.cpu_count >= 1
    assert host.memory_total and 0 < host.memory_used <= host.memory_total
    assert host.process_rss and host.process_rss > 0
    assert host.cpu_percent is not None and host.process_cpu_percent is not None


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
    assert gpu0.memory_total == 24 * GiB and 300 * MiB <= gpu0.memory_used <= gpu0.memory_total
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
        "from captcha_tui.core.hardware import HardwareSampler\n"
        "from tests.fake_nvml import FakeNvmlBackend\n"
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


def test_sample_indices_follow_cuda_and_hidden_cards_come_last():
    sampler = HardwareSampler(FakeNvmlBackend(fake_gpus(3)), env={"CUDA_VISIBLE_DEVICES": "2,0"})
    gpus = sampler.sample().gpus
    assert [(g.index, g.nvml_index) for g in gpus] == [(0, 2), (1, 0), (None, 1)]
    assert gpus[2].name == "NVIDIA RTX A4000" and gpus[2].memory_total  # hidden from CUDA, still shown


def test_the_processes_on_a_card_say_who_holds_it():
    import psutil

    backend = FakeNvmlBackend(fake_gpus(1))
    backend.set_process_memory(0, os.getpid(), 1 * GiB)
    gone = 4_194_400  # above Linux's default pid_max: no such process, as for another container's pid
    backend.set_process_memory(0, gone, 512 * MiB)
    backend.add_process_without_figure(0, 1)  # NVML lists it with no memory figure (WDDM, MIG)
    sampler = HardwareSampler(backend, device="cpu")
    (gpu,) = sampler.sample().gpus
    ours, other, no_figure = gpu.processes  # most memory first, no figure last
    assert (ours.pid, ours.memory, ours.ours) == (os.getpid(), 1 * GiB, True)
    me = psutil.Process()
    assert ours.user == me.username() and ours.command == " ".join(me.cmdline())
    assert (other.pid, other.memory, other.user, other.command, other.ours) == (
        gone,
        512 * MiB,
        None,
        None,
        False,
    )
    assert (no_figure.pid, no_figure.memory, no_figure.ours) == (1, None, False)
    assert "processes" not in gpu.unavailable

    backend.set_process_memory(0, gone, None)  # it left the card: forgotten, its pid free for reuse
    (gpu,) = sampler.sample().gpus
    assert [p.pid for p in gpu.processes] == [os.getpid(), 1] and gone not in sampler._who


def test_the_processes_this_one_started_are_the_run_too():
    # A run on several devices trains in processes the launcher spawned: each is marked as this run.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        backend = FakeNvmlBackend(fake_gpus(1))
        backend.set_process_memory(0, child.pid, 1 * GiB)
        backend.add_process_without_figure(0, 1)  # init: not ours
        (gpu,) = HardwareSampler(backend, device="cpu").sample().gpus
        assert [(p.pid, p.ours) for p in gpu.processes] == [(child.pid, True), (1, False)]
    finally:
        child.kill()
        child.wait()


def test_a_card_that_cannot_list_its_processes_says_so_and_keeps_its_readings():
    backend = FakeNvmlBackend(fake_gpus(1))
    backend.set_error(0, "processes", pynvml.NVML_ERROR_NOT_SUPPORTED)
    (gpu,) = HardwareSampler(backend, device="cpu").sample().gpus
    assert gpu.error is None and gpu.processes == () and gpu.unavailable["processes"] == "not supported"
    assert gpu.memory_used is not None and gpu.utilization is not None


def test_pynvml_backend_merges_a_pids_compute_and_graphics_entries():
    def entry(pid, used):
        return SimpleNamespace(pid=pid, usedGpuMemory=used)

    lib = SimpleNamespace(
        nvmlDeviceGetHandleByIndex=lambda i: f"card{i}",
        nvmlDeviceGetComputeRunningProcesses=lambda h: [entry(10, 100), entry(11, None), entry(12, 5)],
        nvmlDeviceGetGraphicsRunningProcesses=lambda h: [entry(10, 20), entry(12, None), entry(13, 7)],
    )
    backend = PynvmlBackend()
    backend._nvml = lib
    # Summed where both give a figure; no figure where either has none.
    assert backend.processes(0) == {10: 120, 11: None, 12: None, 13: 7}
