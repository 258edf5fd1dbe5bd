"""The countdown line: the best so far, and which rule ends the run first (epoch budget, time, patience)."""

from __future__ import annotations

from textual.widgets import Static

from ...core import events as ev


def countdown_text(e: ev.Countdown) -> str:
    return f"best {e.best_accuracy:.3f} at epoch {e.best_epoch} · {e.summary()}"


class CountdownLine(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("early stop: waiting for the first epoch", id=id)

    def show_patience(self, patience: int | None, auto: bool = False) -> None:
        """``auto``: not known until the run starts (the default patience follows the set's size)."""
        if auto:
            rule = "after a patience set by the training set's size"
        else:
            rule = "off" if patience is None else f"after {patience} epochs without a new best"
        self.update(f"early stop: {rule} · waiting for the first epoch")

    def show(self, e: ev.Countdown) -> None:
        self.update(countdown_text(e))
        # Highlighted only when an early stop is near: the budget or the clock running out is the plan.
        close = e.ends_by == "early_stop" and (e.patience_left or 0) <= max(1, (e.patience or 0) // 5)
        self.set_class(close, "-close")
