"""``python -m captcha_tui`` as torchrun starts it on each process, with two seams that
test_distributed.py sets through the environment (the product itself has no test switches):

* ``SHARD_RECORD=DIR``: each rank writes ``DIR/shard-r{RANK}.json`` at exit: ``shares``, the indices of
  the training images that :func:`rank_share` gave it, one list per epoch; ``tallies``, its own images
  and loss sum of each epoch and what :meth:`Group.reduce_tally` made of them;
* ``KILL_AT=RANK:EPOCH:BATCH``: that rank kills itself (SIGKILL, no cleanup) just before that mini-batch.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import signal
from pathlib import Path

from captcha_tui.core.train import distributed, loop

RANK = int(os.environ.get("RANK", "0"))


def record_shares(folder: Path) -> None:
    shares: list[list[int]] = []
    tallies: list[dict] = []
    share, reduce = loop.rank_share, distributed.Group.reduce_tally

    def recording_share(order, position, size, rank, world):
        index, consumed = share(order, position, size, rank, world)
        if position == 0:
            shares.append([])
        shares[-1].extend(index.tolist())
        return index, consumed

    def recording_reduce(group, tally):
        own = {"images": tally.images, "loss_sum": tally.sums[0].item()}
        reduce(group, tally)
        tallies.append(dict(own, after=[tally.images, tally.sums[0].item()]))

    loop.rank_share = recording_share
    distributed.Group.reduce_tally = recording_reduce
    record = folder / f"shard-r{RANK}.json"
    atexit.register(lambda: record.write_text(json.dumps({"shares": shares, "tallies": tallies})))


def kill_at(epoch: int, batch: int) -> None:
    setup = loop.Trainer.__init__

    def init(self, *args, **kwargs):
        setup(self, *args, **kwargs)

        def hook(at_epoch: int, at_batch: int, size: int) -> None:  # noqa: ARG001
            if (at_epoch, at_batch) == (epoch, batch):
                os.kill(os.getpid(), signal.SIGKILL)

        self._step_hook = hook

    loop.Trainer.__init__ = init


if os.environ.get("SHARD_RECORD"):
    record_shares(Path(os.environ["SHARD_RECORD"]))
if os.environ.get("KILL_AT"):
    rank, epoch, batch = map(int, os.environ["KILL_AT"].split(":"))
    if rank == RANK:
        kill_at(epoch, batch)
runpy.run_module("captcha_tui", run_name="__main__", alter_sys=True)
