"""The countdown line: the best so far, and which rule ends the run first (epoch budget, time, patience).

It always speaks of the epochs the chart above it shows: a relaunch's old run, a resumed run's epochs
before it, or this run's."""

from __future__ import annotations

from textual.widgets import Static

from ...core import events as ev
from ...core.train.stopping import Patience
from ..run_info import RunSummary


def countdown_text(e: ev.Countdown) -> str:
    return f"best {e.best_accuracy:.3f} at epoch {e.best_epoch} · {e.summary()}"


def waiting_text(patience: int | None, auto: bool = False) -> str:
    """Before the first epoch. ``patience`` None: no early stop; ``auto``: decided when the run starts."""
    if auto:
        rule = "patience set by the set's size"
    else:
        rule = "off" if patience is None else f"after {patience} epochs without a new best"
    return f"early stop: {rule} · waiting for the first epoch"


def last_run_text(run: RunSummary) -> str | None:
    """``best 0.912 at epoch 3 · last run: up to epoch 5``; None for a run with no epoch to show."""
    if run.best is None or not run.epochs:
        return None
    return f"best {run.best.val_accuracy:.3f} at epoch {run.best.epoch} · last run: up to epoch {run.epochs[-1].epoch}"


class CountdownLine(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("early stop: waiting for the first epoch", id=id)
        self._epochs_shown = (
            False  # the line speaks of trained epochs: the config's patience must not replace it
        )

    def show_patience(self, patience: int | None, auto: bool = False) -> None:
        """The configured patience, until there are epochs to speak of (a device change re-sends it).
        ``auto``: not known until the run starts (the default patience follows the set's size)."""
        if not self._epochs_shown:
            self.update(waiting_text(patience, auto))

    def show_start(self, patience: int | None, start_epoch: int, best: tuple[int, float] | None) -> None:
        """A run starts: a resumed one keeps its earlier epochs (and their best) in the chart."""
        self.set_class(False, "-close")
        if start_epoch > 1 and best is not None:
            epoch, accuracy = best
            self.update(f"best {accuracy:.3f} at epoch {epoch} · waiting for epoch {start_epoch} (resumed)")
            self._epochs_shown = True
        else:
            self._epochs_shown = False
            self.update(waiting_text(patience))

    def show_last_run(self, run: RunSummary) -> None:
        """A relaunch: the run folder's last run, whose epochs the chart shows (the log says what r, s
        and e would do with it)."""
        text = last_run_text(run)
        if text is not None:
            self._epochs_shown = True
            self.update(text)

    def show(self, e: ev.Countdown) -> None:
        self._epochs_shown = True
        self.update(countdown_text(e))
        # Highlighted only when an early stop is near: the budget or the clock running out is the plan.
        close = e.ends_by == Patience.reason and (e.patience_left or 0) <= max(1, (e.patience or 0) // 5)
        self.set_class(close, "-close")
