"""A pretend NVML for tests and demos (development only: not in the wheel; tools/demo.py uses it too).

It behaves like a real card where it matters to the sampler: values move over time (deterministically,
from a tick counter), unsupported queries and faults raise the real ``pynvml.NVMLError`` subclasses, and
calls before ``init()`` raise "Uninitialized" just as NVML does.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from captcha_tui.core.units import GiB

#: Query names accepted in ``FakeGpu.unsupported`` and ``FakeNvmlBackend.set_error`` (the backend methods).
FAKE_FIELDS = frozenset(
    {
        "name",
        "uuid",
        "pci_bus_id",
        "memory",
        "utilization",
        "temperature",
        "power_usage",
        "power_limit",
        "process_memory",
        "processes",
    }
)


def _nvml_error(code: int) -> Exception:
    # pynvml is imported on use so that importing this package never needs it.
    import pynvml

    return pynvml.NVMLError(code)  # NVMLError.__new__ picks the subclass for the code


def _code(name: str) -> int:
    import pynvml

    return int(getattr(pynvml, name))


@dataclass(frozen=True)
class FakeGpu:
    """One pretend card."""

    name: str = "NVIDIA GeForce RTX 4090"
    uuid: str = "GPU-5f0c2a1e-7b1d-4c59-9a0e-0d3c6f2b8a01"
    pci_bus_id: str = "00000000:01:00.0"
    memory_total: int = 24 * GiB
    power_limit_mw: int = 450_000
    unsupported: frozenset[str] = field(default_factory=frozenset)  # names from FAKE_FIELDS

    def __post_init__(self) -> None:
        unknown = set(self.unsupported) - FAKE_FIELDS
        if unknown:
            raise ValueError(f"unknown fake field(s): {sorted(unknown)}")
        object.__setattr__(self, "unsupported", frozenset(self.unsupported))


def fake_gpus(count: int = 2) -> list[FakeGpu]:
    """``count`` distinct, plausible cards on consecutive PCI buses (handy for demos)."""
    models = [
        ("NVIDIA GeForce RTX 4090", 24 * GiB, 450_000),
        ("NVIDIA RTX A4000", 16 * GiB, 140_000),
        ("NVIDIA A100-SXM4-40GB", 40 * GiB, 400_000),
        ("Tesla T4", 15 * GiB, 70_000),
    ]
    gpus = []
    for i in range(count):
        name, total, limit = models[i % len(models)]
        gpus.append(
            FakeGpu(
                name=name,
                uuid=f"GPU-{i:08x}-1111-2222-3333-{0xABCDEF000000 + i:012x}",
                pci_bus_id=f"00000000:{i + 1:02X}:00.0",
                memory_total=total,
                power_limit_mw=limit,
            )
        )
    return gpus


class FakeNvmlBackend:
    """An :class:`~captcha_tui.core.hardware.nvml.NvmlBackend` over pretend cards.

    Values are pure functions of ``(tick, index)``. With ``auto_advance`` (the default) the tick moves on
    each ``device_count()`` call, which the sampler makes once per sample, so a live demo animates while
    a test can read the very values a sample reported by calling the backend again.
    """

    def __init__(
        self,
        gpus: Sequence[FakeGpu] | None = None,
        *,
        driver_version: str = "550.54.15",
        auto_advance: bool = True,
    ) -> None:
        self.gpus: list[FakeGpu] = list(gpus) if gpus is not None else fake_gpus(1)
        self.driver = driver_version
        self.auto_advance = auto_advance
        self.tick = 0
        self.init_calls = 0
        self.shutdown_calls = 0
        self.initialized = False
        self._lock = threading.Lock()
        self._init_error: int | None = None
        self._lost: set[int] = set()
        self._errors: dict[tuple[int, str], int] = {}
        self._processes: dict[int, dict[int, int | None]] = {}  # index -> pid -> bytes (None: no figure)

    # --- fault injection and setup ---------------------------------------------------------------------

    def fail_init(self, code: int | None) -> None:
        """Make ``init()`` raise ``NVMLError(code)`` from now on (None: succeed again)."""
        self._init_error = code

    def lose_gpu(self, i: int) -> None:
        """From now on every call for card ``i`` raises "GPU is lost", like a card that fell off the bus."""
        self._lost.add(i)

    def set_error(self, i: int, field_name: str, code: int | None) -> None:
        """Make one query on card ``i`` raise ``NVMLError(code)`` (None clears it)."""
        if field_name not in FAKE_FIELDS:
            raise ValueError(f"unknown fake field: {field_name}")
        if code is None:
            self._errors.pop((i, field_name), None)
        else:
            self._errors[(i, field_name)] = code

    def set_process_memory(self, i: int, pid: int, used: int | None) -> None:
        """List ``pid`` as a compute process on card ``i`` using ``used`` bytes (None removes it)."""
        procs = self._processes.setdefault(i, {})
        if used is None:
            procs.pop(pid, None)
        else:
            procs[pid] = used

    def add_process_without_figure(self, i: int, pid: int) -> None:
        """List ``pid`` on card ``i`` with no memory figure, as NVML does under WDDM or MIG."""
        self._processes.setdefault(i, {})[pid] = None

    def advance(self, ticks: int = 1) -> None:
        with self._lock:
            self.tick += ticks

    # --- NvmlBackend -----------------------------------------------------------------------------------

    def init(self) -> None:
        self.init_calls += 1
        if self._init_error is not None:
            raise _nvml_error(self._init_error)
        self.initialized = True

    def shutdown(self) -> None:
        self.shutdown_calls += 1
        if not self.initialized:
            raise _nvml_error(_code("NVML_ERROR_UNINITIALIZED"))
        self.initialized = False

    def driver_version(self) -> str:
        self._check()
        return self.driver

    def device_count(self) -> int:
        self._check()
        if self.auto_advance:
            self.advance()
        return len(self.gpus)

    def name(self, i: int) -> str:
        return self._gpu(i, "name").name

    def uuid(self, i: int) -> str:
        return self._gpu(i, "uuid").uuid

    def pci_bus_id(self, i: int) -> str:
        return self._gpu(i, "pci_bus_id").pci_bus_id

    def memory(self, i: int) -> tuple[int, int]:
        gpu = self._gpu(i, "memory")
        # Our own processes plus a slow swell, so the bar visibly moves but never exceeds the card.
        base = sum(used or 0 for used in self._processes.get(i, {}).values())
        wave = int(gpu.memory_total * (0.25 + 0.15 * math.sin(self.tick * 0.1 + i)))
        return min(gpu.memory_total, base + wave), gpu.memory_total

    def utilization(self, i: int) -> int:
        self._gpu(i, "utilization")
        return self._util(i)

    def temperature(self, i: int) -> int:
        self._gpu(i, "temperature")
        # Temperature trails load: 35 °C idle, ~75 °C flat out.
        return 35 + round(0.4 * self._util(i))

    def power_usage(self, i: int) -> int:
        gpu = self._gpu(i, "power_usage")
        return int(gpu.power_limit_mw * (0.1 + 0.8 * self._util(i) / 100))

    def power_limit(self, i: int) -> int:
        return self._gpu(i, "power_limit").power_limit_mw

    def process_memory(self, i: int, pid: int) -> int | None:
        self._gpu(i, "process_memory")
        return self._processes.get(i, {}).get(pid)

    def processes(self, i: int) -> dict[int, int | None]:
        self._gpu(i, "processes")
        return dict(self._processes.get(i, {}))

    # --- internals -------------------------------------------------------------------------------------

    def _util(self, i: int) -> int:
        return max(0, min(100, round(55 + 40 * math.sin(self.tick * 0.3 + 1.7 * i))))

    def _check(self) -> None:
        if not self.initialized:
            raise _nvml_error(_code("NVML_ERROR_UNINITIALIZED"))

    def _gpu(self, i: int, field_name: str) -> FakeGpu:
        self._check()
        if not 0 <= i < len(self.gpus):
            raise _nvml_error(_code("NVML_ERROR_INVALID_ARGUMENT"))
        if i in self._lost:
            raise _nvml_error(_code("NVML_ERROR_GPU_IS_LOST"))
        code = self._errors.get((i, field_name))
        if code is not None:
            raise _nvml_error(code)
        gpu = self.gpus[i]
        if field_name in gpu.unsupported:
            raise _nvml_error(_code("NVML_ERROR_NOT_SUPPORTED"))
        return gpu

    @classmethod
    def with_gpus(cls, count: int, unsupported: Iterable[str] = ()) -> FakeNvmlBackend:
        """``count`` plausible cards, each lacking the ``unsupported`` queries."""
        return cls([replace(g, unsupported=frozenset(unsupported)) for g in fake_gpus(count)])
