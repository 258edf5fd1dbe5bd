"""Hardware samples for the device panels: GPUs through NVML, the host through psutil, torch's allocator.

Nothing here raises into its caller. A machine without a driver, a card without a sensor, or a card that
fell off the bus all become words in the sample (``nvml_status``, ``GpuSample.unavailable``,
``GpuSample.error``), and :func:`describe_nvml_error` is the one place that picks those words.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import psutil

from .nvml import NvmlBackend, PynvmlBackend

#: Seconds between attempts to start NVML after it failed (a failing nvmlInit can take a while).
INIT_RETRY_S = 30.0


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


_EMPTY_HOST = HostSample(None, None, None, None, None, None)

# Error code name (looked up in pynvml, so an older pynvml missing one is fine) -> short reason.
_REASONS = {
    "NVML_ERROR_NOT_SUPPORTED": "not supported",
    "NVML_ERROR_GPU_IS_LOST": "GPU is lost (fell off the bus)",
    "NVML_ERROR_LIBRARY_NOT_FOUND": "NVML library not found (no NVIDIA driver)",
    "NVML_ERROR_DRIVER_NOT_LOADED": "NVIDIA driver not loaded",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": "driver/library version mismatch",
    "NVML_ERROR_NO_PERMISSION": "no permission",
    "NVML_ERROR_UNINITIALIZED": "NVML not initialised",
    "NVML_ERROR_FUNCTION_NOT_FOUND": "not supported by this driver version",
    "NVML_ERROR_RESET_REQUIRED": "GPU needs a reset",
    "NVML_ERROR_GPU_NOT_FOUND": "GPU not found",
    "NVML_ERROR_TIMEOUT": "timed out",
    "NVML_ERROR_INSUFFICIENT_POWER": "not enough external power",
    "NVML_ERROR_CORRUPTED_INFOROM": "corrupted infoROM",
}

# Errors after which the rest of a card's queries would fail too, so the card is reported as down.
_CARD_FATAL = ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_RESET_REQUIRED", "NVML_ERROR_GPU_NOT_FOUND")


@functools.cache
def _pynvml() -> Any:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


@functools.cache
def _codes(names: tuple[str, ...]) -> dict[int, str]:
    nvml = _pynvml()
    if nvml is None:
        return {}
    return {int(getattr(nvml, n)): n for n in names if hasattr(nvml, n)}


def describe_nvml_error(exc: BaseException) -> str:
    """Short words for why an NVML call (or loading NVML at all) failed."""
    if isinstance(exc, ImportError):
        return "nvidia-ml-py (pynvml) not installed"
    nvml = _pynvml()
    if nvml is not None:
        if isinstance(exc, nvml.NVMLError):
            name = _codes(tuple(_REASONS)).get(getattr(exc, "value", None))
            return _REASONS[name] if name else str(exc)
        mismatch = getattr(nvml, "NVMLLibraryMismatchError", None)
        if mismatch is not None and isinstance(exc, mismatch):
            return "pynvml does not match the driver version"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_card_fatal(exc: BaseException) -> bool:
    nvml = _pynvml()
    return (
        nvml is not None
        and isinstance(exc, nvml.NVMLError)
        and getattr(exc, "value", None) in _codes(_CARD_FATAL)
    )


_PCI_RE = re.compile(r"^(?:([0-9a-f]+):)?([0-9a-f]+):([0-9a-f]+)\.([0-9a-f]+)$")


def normalize_pci_bus_id(bus_id: str) -> str | None:
    """``"00000000:01:00.0"`` (NVML) and ``"0000:01:00.0"`` (sysfs/torch) both become ``"0000:01:00.0"``."""
    m = _PCI_RE.match(bus_id.strip().lower())
    if m is None:
        return None
    domain, bus, device, function = (int(g, 16) if g else 0 for g in m.groups())
    return f"{domain:04x}:{bus:02x}:{device:02x}.{function:x}"


def cuda_to_nvml_indices(
    backend: NvmlBackend,
    env: Mapping[str, str] = os.environ,
    cuda_pci_bus_ids: list[str] | None = None,
) -> list[int]:
    """NVML index of each CUDA device: entry k is the card torch calls ``cuda:k``.

    With ``cuda_pci_bus_ids`` (what CUDA reports for its devices, in CUDA order) cards are matched by PCI
    bus id, which is right whatever CUDA_DEVICE_ORDER says. Otherwise CUDA_VISIBLE_DEVICES is parsed the
    way CUDA does: integers or unique ``GPU-<uuid prefix>`` entries, stopping at the first entry that
    matches no card (``MIG-`` entries included, as this backend can't tie them to a card), a repeated
    card meaning no devices at all and an empty value meaning none. Unset means identity, which assumes
    CUDA's order matches NVML's PCI order (true with CUDA_DEVICE_ORDER=PCI_BUS_ID or identical cards).
    Needs an initialised backend.
    """
    count = backend.device_count()
    if cuda_pci_bus_ids is not None:
        by_bus: dict[str, int] = {}
        for i in range(count):
            try:
                key = normalize_pci_bus_id(backend.pci_bus_id(i))
            except Exception:
                continue  # a card NVML can't describe can't be matched
            if key is not None:
                by_bus.setdefault(key, i)
        out: list[int] = []
        for bus_id in cuda_pci_bus_ids:
            found = by_bus.get(normalize_pci_bus_id(bus_id) or "")
            if found is None:
                break
            out.append(found)
        return out

    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return list(range(count))
    uuids: list[str] | None = None
    out = []
    for entry in raw.split(","):
        entry = entry.strip()
        digits = re.match(r"\d+", entry)
        if digits:
            # Like strtoul: "1gpu" reads as 1.
            found: int | None = int(digits.group())
            if found >= count:
                found = None
        elif entry.lower().startswith("gpu-"):
            if uuids is None:
                uuids = []
                for i in range(count):
                    try:
                        uuids.append(backend.uuid(i).lower())
                    except Exception:
                        uuids.append("")
            matches = [i for i, u in enumerate(uuids) if u and u.startswith(entry.lower())]
            found = matches[0] if len(matches) == 1 else None  # ambiguous prefixes match nothing
        else:
            found = None  # empty, MIG-..., or junk
        if found is None:
            break
        if found in out:
            return []
        out.append(found)
    return out


def _cuda_torch() -> Any:
    """The torch module if CUDA is already initialised, else None.

    torch is never imported or initialised from here: a torch that isn't imported yet can't have started
    CUDA, and initialising CUDA on the monitor thread would grab a context the trainer didn't ask for.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch if torch.cuda.is_initialized() else None
    except Exception:
        return None


def _torch_pci_bus_ids() -> list[str] | None:
    torch = _cuda_torch()
    if torch is None:
        return None
    try:
        ids = []
        for k in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(k)
            ids.append(f"{p.pci_domain_id:04x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0")
        return ids
    except Exception:
        return None  # an older torch without PCI fields: fall back to CUDA_VISIBLE_DEVICES


class HardwareSampler:
    """Takes one :class:`Sample` on demand. Never raises; meant to be called from one monitor thread.

    NVML starts on the first sample. If it can't, ``nvml_status`` says why and another try is made at
    most every ``init_retry_s`` seconds, so a machine without a driver costs nothing per sample.
    """

    def __init__(
        self,
        backend: NvmlBackend | None = None,
        device: str | None = None,
        *,
        init_retry_s: float = INIT_RETRY_S,
        env: Mapping[str, str] | None = None,
        pid: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend: NvmlBackend = backend if backend is not None else PynvmlBackend()
        self.device = device  # torch device string, e.g. "cuda:0" or "cpu"
        self.init_retry_s = init_retry_s
        self._env = env  # None: os.environ
        self._pid = pid if pid is not None else os.getpid()
        self._clock = clock
        self._lock = threading.Lock()
        self._nvml_up = False
        self._nvml_status: str | None = None
        self._next_init = float("-inf")
        self._driver: str | None = None
        self._names: dict[int, str] = {}  # names don't change; keeps a lost card labelled
        self._cuda_of: dict[int, int] | None = None  # NVML index -> CUDA index
        self._mapped_with_cuda = False  # whether _cuda_of was built after CUDA started
        self._process: psutil.Process | None = None

    def sample(self) -> Sample:
        with self._lock:
            errors: list[str] = []
            try:
                host = self._sample_host()
            except Exception as exc:
                errors.append(f"host stats: {describe_nvml_error(exc)}")
                host = _EMPTY_HOST
            try:
                gpus = self._sample_gpus()
            except Exception as exc:  # a bug, not an NVML condition: keep the rest of the sample
                errors.append(f"GPU stats: {describe_nvml_error(exc)}")
                gpus = ()
            try:
                torch_sample = self._sample_torch()
            except Exception as exc:
                errors.append(f"torch memory: {describe_nvml_error(exc)}")
                torch_sample = None
            return Sample(
                time=time.time(),
                gpus=gpus,
                nvml_status=self._nvml_status,
                host=host,
                torch=torch_sample,
                driver_version=self._driver if self._nvml_up else None,
                errors=tuple(errors),
            )

    def close(self) -> None:
        """Shut NVML down; a later sample starts it again."""
        with self._lock:
            if self._nvml_up:
                self._nvml_up = False
                self._next_init = float("-inf")
                with contextlib.suppress(Exception):  # it's going away either way
                    self.backend.shutdown()

    # --- NVML ------------------------------------------------------------------------------------------

    def _ensure_nvml(self) -> bool:
        if self._nvml_up:
            return True
        now = self._clock()
        if now < self._next_init:
            return False
        self._next_init = now + self.init_retry_s
        try:
            self.backend.init()
        except Exception as exc:
            self._nvml_status = describe_nvml_error(exc)
            return False
        self._nvml_up = True
        self._nvml_status = None
        self._names.clear()
        self._cuda_of = None
        try:
            self._driver = self.backend.driver_version()
        except Exception:
            self._driver = None
        return True

    def _drop_nvml(self, reason: str) -> None:
        self._nvml_status = reason
        self._nvml_up = False
        self._next_init = self._clock() + self.init_retry_s
        with contextlib.suppress(Exception):  # NVML is already broken; nothing more to report
            self.backend.shutdown()

    def _sample_gpus(self) -> tuple[GpuSample, ...]:
        if not self._ensure_nvml():
            return ()
        try:
            count = self.backend.device_count()
        except Exception as exc:  # NVML as a whole broke (driver unloaded...): restart it later
            self._drop_nvml(describe_nvml_error(exc))
            return ()
        cuda_of = self._cuda_mapping()
        gpus = [self._sample_gpu(i, cuda_of.get(i)) for i in range(count)]
        gpus.sort(key=lambda g: (g.index is None, g.nvml_index if g.index is None else g.index))
        return tuple(gpus)

    def _cuda_mapping(self) -> dict[int, int]:
        # Built once per NVML start, and once more when CUDA starts and can name its cards' PCI buses.
        cuda_started = _cuda_torch() is not None
        if self._cuda_of is not None and self._mapped_with_cuda == cuda_started:
            return self._cuda_of
        env = self._env if self._env is not None else os.environ
        try:
            order = cuda_to_nvml_indices(self.backend, env, _torch_pci_bus_ids() if cuda_started else None)
        except Exception:
            order = []
        self._cuda_of = {nvml_index: cuda_index for cuda_index, nvml_index in enumerate(order)}
        self._mapped_with_cuda = cuda_started
        return self._cuda_of

    def _sample_gpu(self, i: int, cuda_index: int | None) -> GpuSample:
        backend = self.backend
        unavailable: dict[str, str] = {}

        def read(fields: tuple[str, ...], query: Callable[[], Any]) -> Any:
            try:
                return query()
            except Exception as exc:
                if _is_card_fatal(exc):
                    raise
                reason = describe_nvml_error(exc)
                for f in fields:
                    unavailable[f] = reason
                return None

        try:
            name = self._names.get(i)
            if name is None:
                name = read(("name",), lambda: backend.name(i))
                if name is not None:
                    self._names[i] = name
            memory = read(("memory_used", "memory_total"), lambda: backend.memory(i))
            utilization = read(("utilization",), lambda: backend.utilization(i))
            temperature = read(("temperature",), lambda: backend.temperature(i))
            draw_mw = read(("power_draw_w",), lambda: backend.power_usage(i))
            limit_mw = read(("power_limit_w",), lambda: backend.power_limit(i))
            process_memory = read(("process_memory",), lambda: backend.process_memory(i, self._pid))
        except Exception as exc:
            return GpuSample(
                index=cuda_index,
                nvml_index=i,
                name=self._names.get(i),
                memory_used=None,
                memory_total=None,
                utilization=None,
                temperature=None,
                power_draw_w=None,
                power_limit_w=None,
                process_memory=None,
                error=describe_nvml_error(exc),
            )
        return GpuSample(
            index=cuda_index,
            nvml_index=i,
            name=name,
            memory_used=memory[0] if memory else None,
            memory_total=memory[1] if memory else None,
            utilization=utilization,
            temperature=temperature,
            power_draw_w=draw_mw / 1000 if draw_mw is not None else None,
            power_limit_w=limit_mw / 1000 if limit_mw is not None else None,
            process_memory=process_memory,
            unavailable=unavailable,
        )

    # --- host and torch --------------------------------------------------------------------------------

    def _sample_host(self) -> HostSample:
        if self._process is None:
            self._process = psutil.Process(self._pid)
        vm = psutil.virtual_memory()
        with self._process.oneshot():
            rss = self._process.memory_info().rss
            process_cpu = self._process.cpu_percent(interval=None)
        return HostSample(
            cpu_percent=psutil.cpu_percent(interval=None),  # non-blocking: since the previous call
            cpu_count=psutil.cpu_count(logical=True),
            memory_used=vm.total - vm.available,  # "used" alone leaves out buffers the OS can't drop
            memory_total=vm.total,
            process_rss=rss,
            process_cpu_percent=process_cpu,
        )

    def _sample_torch(self) -> TorchMemorySample | None:
        if not self.device or not self.device.startswith("cuda"):
            return None
        torch = _cuda_torch()
        if torch is None:
            return None
        device = torch.device(self.device)
        # Allocator counters only: none of these sync the GPU or touch the training stream.
        return TorchMemorySample(
            device=str(device),
            allocated=int(torch.cuda.memory_allocated(device)),
            reserved=int(torch.cuda.memory_reserved(device)),
            peak=int(torch.cuda.max_memory_allocated(device)),
        )


class Monitor:
    """Samples on its own daemon thread every ``interval`` seconds and hands each Sample to ``on_sample``.

    ``on_sample`` runs on the monitor thread, so it must be quick and thread-safe (a UI should only queue
    the sample). If it raises, the message rides along in the next sample's ``errors``.
    """

    def __init__(
        self,
        on_sample: Callable[[Sample], None],
        sampler: HardwareSampler | None = None,
        interval: float = 1.0,
    ) -> None:
        self.on_sample = on_sample
        self.sampler = sampler if sampler is not None else HardwareSampler()
        self.interval = interval
        self.latest: Sample | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Monitor:
        if self.running:
            return self
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="hardware-monitor", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop and wait for the thread (at most ``timeout``: a hung NVML call can't hold the app)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, stop: threading.Event) -> None:
        pending: str | None = None  # a callback failure, reported with the next sample
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    sample = self.sampler.sample()
                except Exception as exc:  # the sampler shouldn't raise; if it does, say so and go on
                    sample = Sample(
                        time.time(), (), None, _EMPTY_HOST, None, errors=(f"sampler failed: {exc!r}",)
                    )
                if pending is not None:
                    sample = replace(sample, errors=(*sample.errors, pending))
                    pending = None
                self.latest = sample
                try:
                    self.on_sample(sample)
                except Exception as exc:
                    pending = f"on_sample failed: {exc!r}"
                # Event.wait, not sleep, so stop() wakes us at once; subtract the time sampling took.
                stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            self.sampler.close()
