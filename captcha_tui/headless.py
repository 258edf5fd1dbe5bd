"""Plain-text reporting of trainer events, for terminals without the TUI, pipes, files and CI."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .core import events as ev

FINISH_REASONS = {
    "early_stop": "stopped early (no improvement)",
    "max_epochs": "reached the last epoch",
    "stopped": "stopped by request",
    "target_reached": "reached the target accuracy",
    "time_limit": "reached the time limit",
}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class HeadlessPrinter:
    """Turns events into lines. On a terminal the batch line updates in place; elsewhere (a file, a pipe)
    it is printed at most every ``batch_every_s`` seconds, so logs stay readable with no carriage returns."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, batch_every_s: float = 10.0):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.live = bool(getattr(self.out, "isatty", lambda: False)())
        self.batch_every_s = batch_every_s
        self._last_batch_line = 0.0
        self._open_line = False

    def __call__(self, event: ev.TrainerEvent) -> None:
        if isinstance(event, ev.BatchProgress):
            self._batch(event)
            return
        text = self.describe(event)
        if text is None:
            return
        if self._open_line:
            self.out.write("\r\x1b[K")
            self._open_line = False
        stream = self.err if isinstance(event, ev.Failed) else self.out
        stream.write(text + "\n")
        stream.flush()

    def _batch(self, e: ev.BatchProgress) -> None:
        line = (
            f"epoch {e.epoch} batch {e.batch}/{e.batches}  loss {e.loss:.4f}  acc {_pct(e.accuracy)}  "
            f"char {_pct(e.char_accuracy)}  {e.images_per_s:,.0f} img/s  eta {format_duration(e.eta_s)}"
        )
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

    @staticmethod
    def describe(event: ev.TrainerEvent) -> str | None:
        """One line (or a few) for an event; None for events not worth a line."""
        match event:
            case ev.RunStarted():
                e = event
                resumed = f", resuming at epoch {e.start_epoch}" if e.start_epoch > 1 else ""
                return (
                    f"dataset {e.dataset}: {e.train_count} train / {e.val_count} val / {e.test_count} test, "
                    f"{e.spec.lengths} characters from {e.spec.charset!r}\n"
                    f"model {e.preset} ({e.parameters:,} parameters) on {e.device}, batch {e.batch_size}, "
                    f"lr {e.learning_rate:g}, amp {'on' if e.amp else 'off'}, patience {e.patience}, "
                    f"up to {e.max_epochs} epochs{resumed}\nrun folder {e.run_dir}"
                )
            case ev.EpochEnd():
                e = event
                return (
                    f"epoch {e.epoch}: train loss {e.train_loss:.4f} acc {_pct(e.train_accuracy)} | "
                    f"val loss {e.val_loss:.4f} acc {_pct(e.val_accuracy)} (char {_pct(e.val_char_accuracy)}) | "
                    f"{e.seconds:.1f}s, {e.images_per_s:,.0f} img/s, lr {e.learning_rate:.2e}"
                )
            case ev.NewBest():
                return f"  new best: validation accuracy {_pct(event.val_accuracy)} at epoch {event.epoch}"
            case ev.Countdown():
                return f"  best {_pct(event.best_accuracy)} at epoch {event.best_epoch}; {event.summary()}"
            case ev.BatchSizeReduced():
                return None  # the trainer's Notice already says it
            case ev.Notice():
                return f"[{event.level}] {event.message}"
            case ev.StateChanged():
                return f"[{event.state}]"
            case ev.Finished():
                e = event
                why = FINISH_REASONS.get(e.reason, e.reason)
                lines = [
                    f"finished: {why} after {e.epochs_run} epochs in {format_duration(e.elapsed_s)} "
                    f"({e.images_seen:,} images seen)",
                    f"best validation accuracy {_pct(e.best_val_accuracy)} at epoch {e.best_epoch}",
                ]
                if e.test_accuracy is not None:
                    lines.append(
                        f"test accuracy {_pct(e.test_accuracy)} (characters {_pct(e.test_char_accuracy)})"
                    )
                if e.best_checkpoint:
                    lines.append(f"best checkpoint {e.best_checkpoint}")
                if e.reason == "stopped" and e.last_checkpoint:
                    lines.append(f"resume with: captcha-tui train --resume (from {e.last_checkpoint})")
                return "\n".join(lines)
            case ev.Failed():
                where = f" (details in {event.log_path})" if event.log_path else ""
                return f"error: {event.message}{where}"
        return None
