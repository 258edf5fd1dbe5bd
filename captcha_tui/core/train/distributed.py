"""One run trained data-parallel on several processes, as launched by ``torchrun``.

torchrun starts one process per device and tells each its place through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``…). A process finding ``WORLD_SIZE`` > 1 joins the group
(:func:`join`: gloo on the CPU, NCCL on ``cuda:LOCAL_RANK``) and the loop then differs from a single
process's in four places only:

* every epoch's seeded permutation is the same on all ranks; each mini-batch step takes the next
  ``batch_size × world`` images of it and rank r trains on every world-th one from r (:func:`rank_share`).
  So after any number of steps the images trained are a prefix of the permutation, whatever the number
  of processes: ``position`` in last.pt means the same on one process or eight, and a resume may change it;
* the model is wrapped in DistributedDataParallel (gradients all-reduced in backward; SyncBatchNorm on
  CUDA), while checkpoints and validation use the unwrapped model (no ``module.`` prefix, no collective);
* an epoch's sums are added up across ranks (:meth:`Group.reduce_tally`), so its scores are the epoch's;
* every stop decision is collective (:meth:`Group.agree`): one rank out of time, or asked to stop, stops
  all of them at the same mini-batch. A decision taken by one rank alone would leave the others waiting
  in the next all-reduce.

Rank 0 alone reports events and writes files; the others stay silent but for their own fatal error.
Collectives time out (``dist_timeout_s``), so a peer that stops answering ends the run with an error
rather than a hang; torchrun itself ends the other processes when one dies.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..devices import DeviceError, parse_device_list, resolve_device
from .config import ConfigError
from .step import Tally


def launched() -> bool:
    """Whether this process is one of several started by torchrun (or any launcher setting its variables)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def env_rank() -> int:
    """This process's rank as the launcher set it (0 when not launched): who may print before the group
    is joined."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def rank_share(
    order: torch.Tensor, position: int, size: int, rank: int, world: int
) -> tuple[torch.Tensor, int]:
    """This rank's part of the mini-batch step that starts at ``position`` of the epoch's ``order``, and how
    many images of ``order`` the step consumes (all ranks together).

    The step takes the next ``size × world`` images; rank r takes every world-th one from r. The step is
    cut to a multiple of ``world`` (the epoch's last one may drop up to world − 1 images, as
    DistributedSampler's drop_last does), so every rank steps on as many images as the others and the
    all-reduces pair up. On one process it is ``order[position : position + size]``."""
    step = order[position : position + size * world]
    usable = len(step) - len(step) % world
    return step[rank:usable:world], len(step)


def process_device(spec: str | None, local_rank: int) -> torch.device:
    """The device of the process ``local_rank`` on its machine: ``cpu``, or ``cuda:LOCAL_RANK`` for
    ``auto`` / ``cuda`` on a machine with GPUs. A single device (``cuda:1``, ``mps``) cannot be shared
    among several processes, so it is refused with what to pass instead."""
    spec = (spec or "auto").strip().lower()
    if "," in spec or spec.startswith("cpu:") or spec in ("cuda:all", "gpu:all"):
        return _listed_device(spec, local_rank)
    if spec == "cpu":
        return torch.device("cpu")
    if spec in ("auto", "cuda", "gpu"):
        if not torch.cuda.is_available():
            if spec == "auto":
                return torch.device("cpu")
            resolve_device(spec)  # raises its own words: a CPU-only build, no GPU visible…
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise DeviceError(
                f"process {local_rank} of this machine has no GPU of its own: {count} are visible; start at "
                f"most {count} processes a machine (torchrun --nproc-per-node {count})"
            )
        return torch.device("cuda", local_rank)
    raise ConfigError(
        f"--device {spec} names one device, but torchrun started several processes: use --device cuda "
        "(each process takes cuda:LOCAL_RANK) or --device cpu"
    )


def _listed_device(spec: str, local_rank: int) -> torch.device:
    """Process ``local_rank``'s item of a device list (``cuda:0,cuda:2``, ``cuda:all``, ``cpu:2``): one
    process per item, as the one-command launch (launch.py) or ``torchrun --nproc-per-node`` started them."""
    devices = parse_device_list(spec)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", devices.processes))
    if local_world != devices.processes:
        raise ConfigError(
            f"--device {spec} lists {devices.processes} devices, but {local_world} processes were started on "
            f"this machine: one process a device (torchrun --nproc-per-node {devices.processes})"
        )
    return torch.device(devices.names[local_rank])


@dataclass
class Group:
    """This process's place in the run and the collectives the loop needs."""

    rank: int
    world: int
    local_rank: int
    backend: str  # gloo or nccl
    device: torch.device
    # Stop flags travel on the CPU (gloo) even when the gradients go over NCCL: agreeing on them at every
    # mini-batch must not make the host wait for the GPU.
    control: object | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def agree(self, fired: list[bool]) -> list[bool]:
        """Which rules have fired on any rank: the same answer on every rank."""
        flags = torch.tensor([int(f) for f in fired], dtype=torch.int32)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.control)
        return [bool(f) for f in flags.tolist()]

    def reduce_tally(self, tally: Tally) -> None:
        """Add up an epoch's sums over the ranks, in place: its scores become the whole epoch's."""
        counts = torch.tensor([tally.images, tally.errors, tally.characters], dtype=torch.float64)
        packed = torch.cat((tally.sums.double(), counts.to(tally.sums.device)))
        dist.all_reduce(packed)
        tally.sums.copy_(packed[:3])
        tally.images, tally.errors, tally.characters = (int(round(v)) for v in packed[3:].tolist())

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model as trained: DistributedDataParallel over it (whose constructor gives every rank rank
        0's weights). BatchNorm is synchronised on CUDA, where the per-device batches are what pays for
        it; CPU ranks keep their own batch statistics and take rank 0's running ones."""
        from torch.nn.parallel import DistributedDataParallel

        if self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return DistributedDataParallel(model, device_ids=[self.device.index])
        return DistributedDataParallel(model)

    def wait_for_peers(self) -> None:
        """A finished run's ranks leave together: rank 0 scores the test split alone, and a rank that
        tore gloo down while another was still at work aborted at exit ("terminate called without an
        active exception", seen under load). A peer that died meanwhile is torchrun's to report."""
        with contextlib.suppress(Exception):
            dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            with contextlib.suppress(Exception):  # leaving anyway; a dead peer may make this fail
                dist.destroy_process_group()


def join(device_spec: str | None, timeout_s: float) -> Group:
    """Join the run's process group, on this process's own device; collectives time out after
    ``timeout_s`` seconds."""
    # torchrun sets them all; a WORLD_SIZE left over from another tool's environment sets only that one.
    needed = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    missing = [name for name in needed if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} says this is one of several training processes, but "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: start them with "
            f"torchrun (or --device cpu:N, cuda:all), or unset WORLD_SIZE to train in one process"
        )
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers ({exc})") from None
    device = process_device(device_spec, local_rank)
    timeout = timedelta(seconds=timeout_s)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
        control = dist.new_group(backend="gloo", timeout=timeout)
        return Group(rank, world, local_rank, "nccl", device, control)
    dist.init_process_group("gloo", timeout=timeout)
    return Group(rank, world, local_rank, "gloo", device)


def is_peer_failure(exc: BaseException) -> bool:
    """Whether ``exc`` came out of a collective whose peer died or stopped answering (rather than from
    this process's own fault)."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc)
    return any(
        words in text
        for words in ("/gloo/", "Connection closed by peer", "Connection reset by peer", "Timed out", "NCCL")
    )
