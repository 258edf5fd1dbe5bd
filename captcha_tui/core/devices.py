"""Which compute devices PyTorch can use, and turning a user's device string into one."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch

CUDA_BUILD_HINT = (
    "install a CUDA build of PyTorch, e.g. `pip install --force-reinstall torch "
    "--index-url https://download.pytorch.org/whl/cu128`"
)


class DeviceError(ValueError):
    """A device that cannot be used; ``str()`` says what to do."""


@dataclass(frozen=True)
class DeviceInfo:
    name: str  # "cpu", "cuda:0", "mps"
    description: str  # "AMD EPYC (2 threads)", "NVIDIA H100 80GB HBM3"
    total_memory: int | None = None  # bytes
    free_memory: int | None = None
    capability: str | None = None  # "9.0"
    threads: int | None = None


def cuda_build() -> str | None:
    return torch.version.cuda


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "CPU"


def fast_low_precision(device: torch.device) -> bool:
    """Whether mixed precision pays on ``device``: CUDA GPUs, and CPUs with bf16 units (AMX or
    AVX512-BF16), where oneDNN's bf16 kernels train the `fast` preset 1.9× and `resnet18` 2.8× faster than
    fp32 (measured on a 2-core Xeon with AMX). Elsewhere bf16 is emulated and slower."""
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        cpu = torch.cpu
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        try:
            return any(getattr(cpu, name, lambda: False)() for name in checks)
        except RuntimeError:
            return False
    return False


def resolve_amp(amp: bool | None, device: torch.device | str) -> bool:
    """Mixed precision on or off: as asked, or (``None``) where it pays (:func:`fast_low_precision`)."""
    if amp is not None:
        return amp
    try:
        return fast_low_precision(torch.device(device))
    except (RuntimeError, ValueError):
        return False  # not a device name: the run will fail and say why


def list_devices(with_free_memory: bool = True) -> list[DeviceInfo]:
    """cpu first, then each visible CUDA device, then mps where present."""
    devices = [
        DeviceInfo("cpu", cpu_name(), threads=torch.get_num_threads()),
    ]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            free = None
            if with_free_memory:
                try:
                    free, _ = torch.cuda.mem_get_info(index)
                except RuntimeError:
                    free = None
            devices.append(
                DeviceInfo(
                    f"cuda:{index}",
                    props.name,
                    total_memory=props.total_memory,
                    free_memory=free,
                    capability=f"{props.major}.{props.minor}",
                )
            )
    if mps_available():
        devices.append(DeviceInfo("mps", "Apple Metal (MPS)"))
    return devices


def resolve_device(spec: str | None) -> torch.device:
    """``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; raises :class:`DeviceError`."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not mps_available():
            raise DeviceError(
                "mps was asked for, but Apple's Metal backend is not available here; use --device cpu"
            )
        return torch.device("mps")
    match = re.fullmatch(r"(?:cuda|gpu)(?::(\d+))?", spec)
    if not match:
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")
    index = int(match.group(1) or 0)
    if not torch.cuda.is_available():
        if cuda_build() is None:
            raise DeviceError(
                f"{spec} was asked for, but this PyTorch ({torch.__version__}) is a CPU-only build; {CUDA_BUILD_HINT}, or use --device cpu"
            )
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        extra = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        raise DeviceError(
            f"{spec} was asked for, but no CUDA GPU is visible{extra}; check the NVIDIA driver (nvidia-smi), or use --device cpu"
        )
    count = torch.cuda.device_count()
    if index >= count:
        names = ", ".join(f"cuda:{i}" for i in range(count))
        raise DeviceError(f"{spec} was asked for, but only {count} CUDA device(s) are visible ({names})")
    return torch.device("cuda", index)


def device_name(spec: str | None) -> str:
    """The device ``spec`` resolves to (``cuda:0`` for ``auto`` on a GPU machine), or ``spec`` itself
    where it names none usable here: what a front end shows before a run, whose start then says why."""
    try:
        return str(resolve_device(spec))
    except DeviceError:
        return spec or "auto"


# ---- device lists: one run on several devices, one process each -------------------------------------

DEVICE_LIST_HELP = (
    "auto, cpu, cuda, cuda:N or mps; several GPUs for one run, one process each: a list such as "
    "cuda:0,cuda:1, or cuda:all (every visible GPU); cpu:N: N processes on the CPU (gloo)"
)
_CPU_PROCESSES = re.compile(r"cpu:(\d+)")
_ONE_GPU = re.compile(r"(?:cuda|gpu):(\d+)")


@dataclass(frozen=True)
class DeviceList:
    """Where one run trains: ``names[i]`` is the device of process ``i`` (its LOCAL_RANK). One name is
    today's single device, as typed (``auto`` included); several are trained data-parallel."""

    names: tuple[str, ...]

    @property
    def processes(self) -> int:
        return len(self.names)

    @property
    def several(self) -> bool:
        return len(self.names) > 1

    @property
    def on_cuda(self) -> bool:
        return self.names[0].startswith("cuda")

    def __str__(self) -> str:
        """The spelling that parses back to this list: ``cuda:0,cuda:2``, ``cpu:2`` or the one name."""
        if self.several and self.names[0] == "cpu":
            return f"cpu:{len(self.names)}"
        return ",".join(self.names)


def parse_device_list(spec: str | None, visible_gpus: int | None = None) -> DeviceList:
    """``--device`` as a list of devices, checked before anything starts; raises :class:`DeviceError`.

    ``cuda:0,cuda:2`` (explicit GPUs, each once), ``cuda:all`` (every visible GPU), ``cpu:N`` (N gloo
    processes on the CPU: how the several-process path runs without a GPU), or one device as
    :func:`resolve_device` takes it. ``visible_gpus``: how many GPUs there are (default: CUDA's count)."""
    text = (spec or "auto").strip().lower()
    items = [item.strip() for item in text.split(",")]
    if len(items) > 1 and not all(items):
        raise DeviceError(f"--device {spec!r} has an empty item: list devices as cuda:0,cuda:1")
    if len(items) == 1:
        return _one_item(items[0], visible_gpus)
    for item in items:
        if item in ("cpu", "auto", "mps", "cuda", "gpu", "cuda:all") or _CPU_PROCESSES.fullmatch(item):
            hint = "cpu:N for N processes on the CPU" if item.startswith("cpu") else "name each GPU: cuda:N"
            raise DeviceError(
                f"--device {spec!r}: {item} cannot be one item of a list (a list names GPUs, cuda:0,cuda:1; "
                f"use {hint})"
            )
        if not _ONE_GPU.fullmatch(item):
            raise DeviceError(
                f"--device {spec!r}: unknown device {item!r} (a list names GPUs: cuda:0,cuda:1)"
            )
    names = [f"cuda:{_ONE_GPU.fullmatch(item).group(1)}" for item in items]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DeviceError(
            f"--device {spec!r} lists {', '.join(twice)} more than once: each GPU takes one process"
        )
    count = _gpu_count(spec, visible_gpus)
    missing = [name for name in names if int(name.split(":")[1]) >= count]
    if missing:
        raise DeviceError(f"--device {spec!r}: {', '.join(missing)} not present; {_visible(count)}")
    return DeviceList(tuple(names))


def _one_item(item: str, visible_gpus: int | None) -> DeviceList:
    if not item:
        raise DeviceError("--device is empty: use auto, cpu, cuda, cuda:N, a list cuda:0,cuda:1 or cuda:all")
    cpu = _CPU_PROCESSES.fullmatch(item)
    if cpu:
        count = int(cpu.group(1))
        if count < 1:
            raise DeviceError(f"--device {item}: cpu:N asks for N processes on the CPU, at least 1")
        return DeviceList(("cpu",) * count)
    if item in ("cuda:all", "gpu:all"):
        count = _gpu_count(item, visible_gpus)
        return DeviceList(tuple(f"cuda:{i}" for i in range(count)))
    if visible_gpus is None or not _ONE_GPU.fullmatch(item):
        resolve_device(item)  # its own words for an unknown name, a CPU-only build, a GPU not there
    elif int(_ONE_GPU.fullmatch(item).group(1)) >= visible_gpus:
        raise DeviceError(f"{item} was asked for, but it is not present; {_visible(visible_gpus)}")
    return DeviceList((item,))


def _gpu_count(asked: str, visible_gpus: int | None) -> int:
    """How many GPUs there are; none is a DeviceError in resolve_device's words."""
    if visible_gpus is None:
        if not torch.cuda.is_available():
            try:
                resolve_device("cuda")  # raises: a CPU-only build, or no GPU visible (and what to do)
            except DeviceError as exc:
                raise DeviceError(
                    str(exc).replace("cuda was asked for", f"{asked} was asked for", 1)
                ) from None
        visible_gpus = torch.cuda.device_count()
    if visible_gpus < 1:
        raise DeviceError(f"{asked} was asked for, but no CUDA GPU is visible; use --device cpu")
    return visible_gpus


def _visible(count: int) -> str:
    names = ", ".join(f"cuda:{i}" for i in range(count))
    return f"{count} GPU{'s are' if count != 1 else ' is'} visible ({names})"
