"""The training dashboard: what the run is, how this epoch goes, how epochs went, the devices, the log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from ...core import events as ev
from ...core.train import BEST, TrainConfig
from ...words import percent
from ..dataset_info import DatasetSummary
from ..messages import DataProgress, HardwareSampled, TrainingUpdate
from ..run_info import RunSummary
from ..widgets.batch_panel import BatchPanel
from ..widgets.countdown import CountdownLine
from ..widgets.dataset_setup import DatasetSetup
from ..widgets.device_panels import DevicePanels
from ..widgets.event_log import EventLog
from ..widgets.finish_banner import FinishBanner
from ..widgets.history_chart import HistoryChart
from ..widgets.run_header import RunHeader


class TrainScreen(Screen):
    BINDINGS = [
        Binding("g", "app.generate_data", "generate data", tooltip="Generate and prepare the default set"),
        # Priority, like e: run as the key arrives, before a path typed after it reaches this screen.
        Binding(
            "o",
            "app.prepare_folder",
            "prepare folder",
            tooltip="Prepare a folder of your own images",
            priority=True,
        ),
    ]

    def __init__(self, clock: Callable[[], str]) -> None:
        super().__init__(id="train-screen")
        self._clock = clock
        self.training_device: str | None = None  # where the run trains, for the device panels

    def compose(self) -> ComposeResult:
        yield RunHeader(id="run-header")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield DatasetSetup(id="dataset-setup")
                yield BatchPanel(id="batch-panel")
                yield HistoryChart(id="history-chart")
                yield CountdownLine(id="countdown")
                yield FinishBanner(id="finish-banner")
            with Vertical(id="right"):
                yield DevicePanels(id="device-panels")
                yield EventLog(self._clock, id="event-log")
        yield Footer()

    # ---- what the app tells the screen -------------------------------------------------------------------

    def show_config(self, config: TrainConfig, device: str) -> None:
        self.training_device = device
        self.query_one(RunHeader).show_config(config, device)
        self.query_one(CountdownLine).show_patience(config.patience, auto=not config.patience_known)

    def show_dataset(self, summary: DatasetSummary) -> None:
        self.query_one(RunHeader).show_dataset(summary)
        self.query_one(DatasetSetup).display = False

    def show_dataset_made(self, summary: DatasetSummary, skipped: int) -> None:
        """The first-run panel stays up saying the set is ready, until training starts."""
        self.query_one(RunHeader).show_dataset(summary)
        self.query_one(DatasetSetup).show_ready(summary, skipped)
        self.log_line(f"dataset ready: {summary.total:,} images in {summary.path}", "green")
        self.set_state("idle")

    def show_missing_dataset(self, data_dir: Path, image_dir: Path, count: int, problem: str | None) -> None:
        self.query_one(RunHeader).show_missing_dataset(str(data_dir))
        self.query_one(DatasetSetup).show_missing(data_dir, image_dir, count, problem)
        self.set_state("no-data")

    def start_dataset(self, generating: bool, source: Path) -> None:
        self.query_one(DatasetSetup).start(generating, source)
        self.set_state("preparing")

    def set_state(self, state: str) -> None:
        self.query_one(RunHeader).set_state(state)

    def show_last_run(self, run: RunSummary, max_epochs: int) -> None:
        """A relaunch: the run folder's history in the chart and a line on what the keys do with it."""
        self.query_one(HistoryChart).show_history(run.epochs, run.best)
        self.query_one(CountdownLine).show_last_run(run)
        resumable = run.has_last and len(run.epochs) < max_epochs
        count = len(run.epochs)
        parts = [f"last run in {run.path}: {count} epoch{'' if count == 1 else 's'}"]
        if run.best is not None:
            parts[0] += f", best validation {percent(run.best.val_accuracy)} at epoch {run.best.epoch}"
        if resumable:
            parts.append(f"r resumes it (up to epoch {max_epochs})")
        elif run.has_last:
            parts.append(f"its {max_epochs} epoch{' is' if max_epochs == 1 else 's are'} done")
        parts.append("s starts over")
        if run.has_best:
            parts.append(f"e reads captchas with its {BEST}")
        if run.damaged_lines:
            parts.append(f"{run.damaged_lines} damaged lines of its history skipped")
        self.log_line(" · ".join(parts), "cyan")

    def log_line(self, message: str, style: str = "") -> None:
        self.query_one(EventLog).add_line(message, style)

    # ---- messages from the workers -------------------------------------------------------------------------

    def on_training_update(self, message: TrainingUpdate) -> None:
        for event in message.events:
            self.apply_event(event)
        if message.batch is not None:
            self.query_one(BatchPanel).show_batch(message.batch)

    def on_hardware_sampled(self, message: HardwareSampled) -> None:
        self.query_one(DevicePanels).show(message.sample, self.training_device)

    def on_data_progress(self, message: DataProgress) -> None:
        self.query_one(DatasetSetup).show_progress(message.stage, message.done, message.total)

    def apply_event(self, event: ev.TrainerEvent) -> None:
        """One trainer event (in order); batch reports go through :class:`TrainingUpdate` instead."""
        self.query_one(EventLog).add_event(event)
        match event:
            case ev.RunStarted():
                self.training_device = event.device
                self.query_one(DatasetSetup).display = False
                self.query_one(RunHeader).show_run(event)
                self.query_one(BatchPanel).show_run(event)
                chart = self.query_one(HistoryChart)
                chart.start_run(event.start_epoch)
                # A resumed run keeps the epochs before it in the chart: the line says their best too.
                self.query_one(CountdownLine).show_start(event.patience, event.start_epoch, chart.best)
                self.query_one(FinishBanner).clear()
                self.set_state("running")
            case ev.EpochEnd():
                self.query_one(HistoryChart).add_epoch(event)
                self.query_one(BatchPanel).show_epoch(event)
            case ev.NewBest():
                self.query_one(HistoryChart).mark_best(event.epoch, event.val_accuracy)
            case ev.Countdown():
                self.query_one(CountdownLine).show(event)
                self.query_one(BatchPanel).show_countdown(event)
            case ev.BatchSizeReduced():
                self.query_one(RunHeader).show_batch_size(event.new)
            case ev.StateChanged():
                self.set_state(event.state)
            case ev.Finished():
                self.query_one(BatchPanel).show_end()
                self.query_one(FinishBanner).show_finished(event)
                self.set_state("finished")
            case ev.Failed():
                self.query_one(BatchPanel).show_end()
                self.query_one(FinishBanner).show_failed(event)
                self.set_state("failed")
