"""NVML for the hardware monitor: the queries it makes, behind a small index-based interface, and the
one place an NVML error becomes words.

Backends raise the real ``pynvml.NVMLError`` subclasses and interpret nothing; :func:`describe_nvml_error`
turns any of them (or a failure to load NVML at all) into the short reason a panel shows. That keeps the
real backend, the fake one and the sampler honest with each other.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol, runtime_checkable

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


def is_card_fatal(exc: BaseException) -> bool:
    """Whether ``exc`` means the whole card is gone (lost, needs a reset), not just one reading."""
    nvml = _pynvml()
    return (
        nvml is not None
        and isinstance(exc, nvml.NVMLError)
        and getattr(exc, "value", None) in _codes(_CARD_FATAL)
    )


@runtime_checkable
class NvmlBackend(Protocol):
    """The handful of NVML queries the sampler makes, addressed by NVML device index."""

    def init(self) -> None: ...

    def shutdown(self) -> None: ...

    def driver_version(self) -> str: ...

    def device_count(self) -> int: ...

    def name(self, i: int) -> str: ...

    def uuid(self, i: int) -> str: ...

    def pci_bus_id(self, i: int) -> str: ...

    def memory(self, i: int) -> tuple[int, int]:
        """(used, total) in bytes."""
        ...

    def utilization(self, i: int) -> int:
        """GPU utilisation in percent."""
        ...

    def temperature(self, i: int) -> int:
        """Core temperature in °C."""
        ...

    def power_usage(self, i: int) -> int:
        """Power draw in milliwatts."""
        ...

    def power_limit(self, i: int) -> int:
        """Enforced power limit in milliwatts."""
        ...

    def process_memory(self, i: int, pid: int) -> int | None:
        """Bytes used by ``pid`` on device ``i``; None when the pid isn't listed (or NVML can't tell)."""
        ...

    def processes(self, i: int) -> dict[int, int | None]:
        """Every process on device ``i`` (compute and graphics): pid -> bytes used, None where NVML has
        no figure."""
        ...


def _text(value: Any) -> str:
    # Older pynvml releases hand back bytes for C strings.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class PynvmlBackend:
    """The real backend, on top of ``pynvml`` (the nvidia-ml-py package)."""

    def __init__(self) -> None:
        self._nvml: Any = None  # the pynvml module once init() succeeded
        self._handles: dict[int, Any] = {}

    def init(self) -> None:
        # Imported here so a missing package surfaces as an error from init() that the sampler can
        # report, instead of breaking the import of the whole app.
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handles.clear()

    def shutdown(self) -> None:
        nvml, self._nvml = self._nvml, None
        self._handles.clear()
        if nvml is not None:
            nvml.nvmlShutdown()

    def _lib(self) -> Any:
        if self._nvml is None:
            import pynvml

            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        return self._nvml

    def _handle(self, i: int) -> Any:
        handle = self._handles.get(i)
        if handle is None:
            handle = self._handles[i] = self._lib().nvmlDeviceGetHandleByIndex(i)
        return handle

    def driver_version(self) -> str:
        return _text(self._lib().nvmlSystemGetDriverVersion())

    def device_count(self) -> int:
        return int(self._lib().nvmlDeviceGetCount())

    def name(self, i: int) -> str:
        return _text(self._lib().nvmlDeviceGetName(self._handle(i)))

    def uuid(self, i: int) -> str:
        return _text(self._lib().nvmlDeviceGetUUID(self._handle(i)))

    def pci_bus_id(self, i: int) -> str:
        return _text(self._lib().nvmlDeviceGetPciInfo(self._handle(i)).busId)

    def memory(self, i: int) -> tuple[int, int]:
        info = self._lib().nvmlDeviceGetMemoryInfo(self._handle(i))
        return int(info.used), int(info.total)

    def utilization(self, i: int) -> int:
        return int(self._lib().nvmlDeviceGetUtilizationRates(self._handle(i)).gpu)

    def temperature(self, i: int) -> int:
        nvml = self._lib()
        return int(nvml.nvmlDeviceGetTemperature(self._handle(i), nvml.NVML_TEMPERATURE_GPU))

    def power_usage(self, i: int) -> int:
        return int(self._lib().nvmlDeviceGetPowerUsage(self._handle(i)))

    def power_limit(self, i: int) -> int:
        return int(self._lib().nvmlDeviceGetEnforcedPowerLimit(self._handle(i)))

    def process_memory(self, i: int, pid: int) -> int | None:
        found = False
        total = 0
        for proc in self._lib().nvmlDeviceGetComputeRunningProcesses(self._handle(i)):
            if proc.pid != pid:
                continue
            found = True
            # pynvml turns NVML_VALUE_NOT_AVAILABLE into None (e.g. WDDM, or MIG without permission).
            if proc.usedGpuMemory is None:
                return None
            # A pid can appear more than once (one entry per MIG instance).
            total += int(proc.usedGpuMemory)
        return total if found else None

    def processes(self, i: int) -> dict[int, int | None]:
        nvml, handle = self._lib(), self._handle(i)
        found: dict[int, int | None] = {}
        for query in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
            for proc in query(handle):
                used = None if proc.usedGpuMemory is None else int(proc.usedGpuMemory)
                # A pid can be listed more than once (per MIG instance, or as compute and graphics).
                if proc.pid in found:
                    before = found[proc.pid]
                    found[proc.pid] = None if before is None or used is None else before + used
                else:
                    found[proc.pid] = used
        return found
