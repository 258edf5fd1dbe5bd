"""Plain-text reporting of trainer events, for terminals without the TUI, pipes, files and CI."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from .core import events as ev
from .words import describe_batch, describe_event


class HeadlessPrinter:
    """Turns events into lines. On a terminal the batch line updates in place; elsewhere (a file, a pipe)
    it is printed at most every ``batch_every_s`` seconds, so logs stay readable with no carriage returns."""

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        batch_every_s: float = 10.0,
        on_closed: Callable[[], None] | None = None,
    ):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.live = bool(getattr(self.out, "isatty", lambda: False)())
        self.batch_every_s = batch_every_s
        # Called once when the output goes away (`| head`, a closed ssh pipe): the run then stops as on
        # Ctrl+C, with a resumable last.pt, instead of failing on the write.
        self.on_closed = on_closed
        self.closed = False
        self._last_batch_line = 0.0
        self._open_line = False

    def __call__(self, event: ev.TrainerEvent) -> None:
        if self.closed:
            return
        try:
            self._print(event)
        except BrokenPipeError:
            self.closed = True
            with contextlib.suppress(OSError):  # no "Exception ignored" at exit on flushing the dead pipe
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.out.fileno())
            if self.on_closed is not None:
                self.on_closed()

    def _print(self, event: ev.TrainerEvent) -> None:
        if isinstance(event, ev.BatchProgress):
            self._batch(event)
            return
        text = describe_event(event)
        if text is None:
            return
        if self._open_line:
            self.out.write("\r\x1b[K")
            self._open_line = False
        stream = self.err if isinstance(event, ev.Failed) else self.out
        if isinstance(event, ev.Failed):
            text = f"captcha-tui: {text}"  # as every other error line of the command starts
        stream.write(text + "\n")
        stream.flush()

    def _batch(self, e: ev.BatchProgress) -> None:
        line = describe_batch(e)
        if self.live:
            self.out.write("\r\x1b[K" + line)
            self._open_line = True
            self.out.flush()
            return
        now = time.monotonic()
        if now - self._last_batch_line >= self.batch_every_s:
            self._last_batch_line = now
            self.out.write(line + "\n")
            self.out.flush()
