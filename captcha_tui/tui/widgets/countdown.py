"""The early-stopping line: the best so far and how many epochs without a new best remain."""

from __future__ import annotations

from textual.widgets import Static

from ...core import events as ev


def countdown_text(e: ev.Countdown) -> str:
    left = max(e.epochs_left, 0)
    if left == 0:
        tail = "stops now: no improvement for its whole patience"
    else:
        tail = f"stops after {left} more epoch{'s' if left != 1 else ''} without improvement"
    return f"best {e.best_accuracy:.3f} at epoch {e.best_epoch} · {tail}"


class CountdownLine(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("early stop: waiting for the first epoch", id=id)

    def show_patience(self, patience: int) -> None:
        self.update(f"early stop: after {patience} epochs without a new best · waiting for the first epoch")

    def show(self, e: ev.Countdown) -> None:
        self.update(countdown_text(e))
        self.set_class(e.epochs_left <= max(1, e.patience // 5), "-close")
