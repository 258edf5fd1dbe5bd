"""One hardware sample on demand: GPUs through NVML, the host through psutil, torch's allocator.

Nothing here raises into its caller. A machine without a driver, a card without a sensor, or a card that
fell off the bus all become words in the sample (see :mod:`.samples`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import psutil

from .device_map import cuda_to_nvml_indices, initialised_cuda_torch, torch_pci_bus_ids
from .nvml import NvmlBackend, PynvmlBackend, describe_nvml_error, is_card_fatal
from .samples import NO_HOST_READINGS, GpuProcess, GpuSample, HostSample, Sample, TorchMemorySample

#: Seconds between attempts to start NVML after it failed (a failing nvmlInit can take a while).
INIT_RETRY_S = 30.0


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
        who: Callable[[int], tuple[str | None, str | None]] | None = None,
    ) -> None:
        """``who(pid)``: (user, command line) of a process on a card (default: asked of the OS)."""
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
        # pid -> (user, command) of the processes on the cards, looked up once while they stay there.
        self._who: dict[int, tuple[str | None, str | None]] = {}
        self._lookup_who = who or _owner_and_command

    def sample(self) -> Sample:
        with self._lock:
            errors: list[str] = []
            try:
                host = self._sample_host()
            except Exception as exc:
                errors.append(f"host stats: {describe_nvml_error(exc)}")
                host = NO_HOST_READINGS
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
        on_cards = {p.pid for g in gpus for p in g.processes}
        self._who = {pid: who for pid, who in self._who.items() if pid in on_cards}  # a pid may be reused
        gpus.sort(key=lambda g: (g.index is None, g.nvml_index if g.index is None else g.index))
        return tuple(gpus)

    def _cuda_mapping(self) -> dict[int, int]:
        # Built once per NVML start, and once more when CUDA starts and can name its cards' PCI buses.
        cuda_started = initialised_cuda_torch() is not None
        if self._cuda_of is not None and self._mapped_with_cuda == cuda_started:
            return self._cuda_of
        env = self._env if self._env is not None else os.environ
        try:
            order = cuda_to_nvml_indices(self.backend, env, torch_pci_bus_ids() if cuda_started else None)
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
                if is_card_fatal(exc):
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
            listed = read(("processes",), lambda: backend.processes(i))
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
            processes=self._describe_processes(listed or {}),
        )

    def _describe_processes(self, listed: dict[int, int | None]) -> tuple[GpuProcess, ...]:
        """Who each pid is (user, command line, looked up once while it stays on a card); most memory
        first, then by pid."""
        described = []
        run = self._run_pids() if listed else set()
        for pid, memory in listed.items():
            who = self._who.get(pid)
            if who is None:
                who = self._who[pid] = self._lookup_who(pid)
            described.append(GpuProcess(pid, memory, *who, ours=pid in run))
        return tuple(sorted(described, key=lambda p: (-(p.memory if p.memory is not None else -1), p.pid)))

    def _run_pids(self) -> set[int]:
        """This process and its descendants: a run on several devices trains in processes the launcher
        spawned, and each of them is the run too."""
        pids = {self._pid}
        with contextlib.suppress(psutil.Error):
            pids.update(child.pid for child in psutil.Process(self._pid).children(recursive=True))
        return pids

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
        torch = initialised_cuda_torch()
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


def _owner_and_command(pid: int) -> tuple[str | None, str | None]:
    """(user, command line) of ``pid``; None for what cannot be read: another user's process under
    restrictions, one in another container's pid namespace (NVML reports host pids), or one gone already."""
    try:
        process = psutil.Process(pid)
    except (psutil.Error, ValueError):
        return None, None
    user = command = None
    with contextlib.suppress(psutil.Error):
        user = process.username()
    with contextlib.suppress(psutil.Error):
        command = " ".join(process.cmdline()) or process.name()
    return user, command
