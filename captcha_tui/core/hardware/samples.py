"""What a hardware sample holds: frozen values the monitor thread hands to the UI.

A reading that could not be taken is None, and the words for why sit beside it: per field in
``GpuSample.unavailable``, per card in ``GpuSample.error``, for NVML as a whole in ``Sample.nvml_status``.
Those words all come from :func:`captcha_tui.core.hardware.nvml.describe_nvml_error`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GpuProcess:
    """A process holding memory on a card, as NVML lists it (nvitop's process table, in small).

    None where a value cannot be known: NVML gives no memory figure (WDDM, MIG without permission), or
    the process is not ours to inspect (another user's, another container's pid namespace, gone)."""

    pid: int
    memory: int | None  # bytes
    user: str | None
    command: str | None
    ours: bool  # this process: the training run the dashboard shows


@dataclass(frozen=True)
class GpuSample:
    """One card at one moment. A value is None when it could not be read; ``unavailable`` says why."""

    index: int | None  # CUDA index (torch's cuda:N); None when CUDA does not see this card
    nvml_index: int
    name: str | None
    memory_used: int | None  # bytes
    memory_total: int | None  # bytes
    utilization: int | None  # percent
    temperature: int | None  # °C
    power_draw_w: float | None
    power_limit_w: float | None
    process_memory: int | None  # bytes this process uses here; None also when it isn't on this card
    unavailable: dict[str, str] = field(default_factory=dict)  # field name -> reason, e.g. "not supported"
    processes: tuple[GpuProcess, ...] = ()  # most memory first; "processes" in unavailable when unreadable
    error: str | None = None  # the whole card failed, e.g. "GPU is lost (fell off the bus)"


@dataclass(frozen=True)
class TorchMemorySample:
    """torch's caching allocator for the training device, in bytes."""

    device: str
    allocated: int
    reserved: int
    peak: int  # max_memory_allocated since start (or the last reset of peak stats)


@dataclass(frozen=True)
class HostSample:
    cpu_percent: float | None  # whole machine; 0.0 on the very first sample
    cpu_count: int | None  # logical CPUs
    memory_used: int | None  # bytes, total - available
    memory_total: int | None
    process_rss: int | None  # this process
    process_cpu_percent: float | None  # this process; can exceed 100 on several cores


#: The host when psutil could not be read at all (the reason goes into ``Sample.errors``).
NO_HOST_READINGS = HostSample(None, None, None, None, None, None)


@dataclass(frozen=True)
class Sample:
    time: float  # time.time()
    gpus: tuple[GpuSample, ...]  # CUDA-visible cards in CUDA order, then the others in NVML order
    nvml_status: (
        str | None
    )  # None: NVML works; else why not, e.g. "NVML library not found (no NVIDIA driver)"
    host: HostSample
    torch: TorchMemorySample | None  # None unless the device is CUDA and CUDA is already initialised
    driver_version: str | None = None
    errors: tuple[str, ...] = ()  # anything else that went wrong (a failing callback, a bug)
