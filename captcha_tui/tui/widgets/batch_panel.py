"""Live numbers inside an epoch: loss and accuracy, their recent trend, and the epoch's progress bar."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, Sparkline, Static

from ...core import events as ev
from ...headless import format_duration
from ..formatting import percent

HISTORY = 80  # batch reports kept for the sparklines (~8 s at ten reports a second)


class BatchPanel(Vertical):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "this epoch"
        self.losses: deque[float] = deque(maxlen=HISTORY)
        self.accuracies: deque[float] = deque(maxlen=HISTORY)
        self.last: ev.BatchProgress | None = None
        self._max_epochs: int | None = None

    def compose(self) -> ComposeResult:
        yield Static("waiting for the first batch", id="batch-title")
        yield Static("", id="batch-metrics")
        with Horizontal(classes="spark-row"):
            yield Label("loss", classes="spark-label")
            yield Sparkline([], id="loss-spark")
        with Horizontal(classes="spark-row"):
            yield Label("acc", classes="spark-label")
            yield Sparkline([], id="acc-spark")
        with Horizontal(id="epoch-row"):
            yield ProgressBar(total=1, show_eta=False, id="epoch-progress")
            yield Static("", id="batch-speed")

    def show_run(self, e: ev.RunStarted) -> None:
        self._max_epochs = e.max_epochs
        self.losses.clear()
        self.accuracies.clear()
        self.last = None
        self.query_one("#epoch-progress", ProgressBar).update(total=e.batches_per_epoch, progress=0)
        self.query_one("#batch-title", Static).update(f"starting at epoch {e.start_epoch}…")

    def show_batch(self, e: ev.BatchProgress) -> None:
        self.last = e
        self.losses.append(e.loss)
        self.accuracies.append(e.accuracy)
        of_epochs = f"/{self._max_epochs}" if self._max_epochs else ""
        # Ten times a second: these lines have fixed heights (app.tcss), so skip the layout pass.
        self.query_one("#batch-title", Static).update(
            Text.assemble(
                ("epoch ", "dim"),
                (f"{e.epoch}{of_epochs}", "bold"),
                ("  batch ", "dim"),
                (f"{e.batch}/{e.batches}", "bold"),
                ("  mini-batch ", "dim"),
                str(e.batch_size),
            ),
            layout=False,
        )
        self.query_one("#batch-metrics", Static).update(
            Text.assemble(
                ("loss ", "dim"),
                (f"{e.loss:.4f}", "bold"),
                ("   accuracy ", "dim"),
                (percent(e.accuracy), "bold"),
                ("   characters ", "dim"),
                (percent(e.char_accuracy), "bold"),
            ),
            layout=False,
        )
        self.query_one("#loss-spark", Sparkline).data = list(self.losses)
        self.query_one("#acc-spark", Sparkline).data = list(self.accuracies)
        self.query_one("#epoch-progress", ProgressBar).update(total=e.batches, progress=e.batch)
        self.query_one("#batch-speed", Static).update(
            f"{e.images_per_s:,.0f} img/s · ETA {format_duration(e.eta_s)}", layout=False
        )
