"""``python -m captcha_tui`` with one seam for test_launch.py, set through the environment (the product
itself has no test switches): ``KILL_AT=RANK:EPOCH:BATCH`` makes that rank kill itself (SIGKILL, no
cleanup) just before that mini-batch.

The launcher spawns its processes, and a spawned process imports this file again (as ``__mp_main__``), so
the seam is set up at import in every process; which rank it is, the process knows only once the
launcher has set RANK, so the hook reads it when it runs.
"""

from __future__ import annotations

import os
import signal
import sys

from captcha_tui.core.train import loop


def kill_at(rank: int, epoch: int, batch: int) -> None:
    setup = loop.Trainer.__init__

    def init(self, *args, **kwargs):
        setup(self, *args, **kwargs)

        def hook(at_epoch: int, at_batch: int, size: int) -> None:  # noqa: ARG001
            if (int(os.environ.get("RANK", "0")), at_epoch, at_batch) == (rank, epoch, batch):
                os.kill(os.getpid(), signal.SIGKILL)

        self._step_hook = hook

    loop.Trainer.__init__ = init


if os.environ.get("KILL_AT"):
    kill_at(*map(int, os.environ["KILL_AT"].split(":")))

if __name__ == "__main__":
    from captcha_tui.cli import main

    sys.exit(main())
