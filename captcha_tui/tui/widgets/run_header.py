"""The top panel: dataset counts and the run's settings (from the config, then from RunStarted)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.text import Text
from textual.widgets import Static

from ...core import events as ev
from ...core.base_model import BASE_MODEL, is_base_model
from ...core.devices import resolve_amp
from ...core.spec import CodeSpec
from ...core.train import TrainConfig
from ...words import patience_words
from ..dataset_info import DatasetSummary
from ..formatting import charset_preview

STATE_LABELS = {
    "idle": "idle · press s to start",
    "no-data": "no dataset · press g to make one",
    "preparing": "making the dataset…",
    "running": "training",
    "paused": "paused · p resumes",
    "stopping": "stopping · saving a resumable checkpoint…",
    "finished": "finished",
    "failed": "failed",
}


@dataclass(frozen=True)
class _Settings:
    preset: str
    device: str
    batch_size: int | None  # None: the preset's, known once the run starts
    lr: float | None  # None: the preset's, known once the run starts
    amp: bool
    patience: str  # "5", "off", or "auto" until the run says (it depends on the set's size)
    epochs: int
    parameters: int | None = None
    init: str | None = None  # a fine-tune: the checkpoint it starts from


class RunHeader(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "captcha-tui"
        self._dataset = Text("dataset: checking…")
        self._settings: _Settings | None = None

    def show_config(self, config: TrainConfig, device: str) -> None:
        """The settings a run will use, until it reports its own."""
        self._settings = _Settings(
            config.preset or "auto",  # the trainer picks from the data (fast for one length, crnn-fast else)
            device,
            config.batch_size,
            config.lr,
            resolve_amp(config.amp, device),
            patience_words(config.patience) if config.patience_known else "auto",
            config.epochs,
            init=str(config.init) if config.init else None,
        )
        self._redraw()

    def show_dataset(self, summary: DatasetSummary) -> None:
        self._dataset = self._dataset_line(
            str(summary.path), summary.train, summary.val, summary.test, summary.spec
        )
        self._redraw()

    def show_missing_dataset(self, path: str) -> None:
        self._dataset = Text.assemble(("dataset ", "dim"), (f"none at {path}", "bold yellow"))
        self._redraw()

    def show_run(self, e: ev.RunStarted) -> None:
        self._dataset = self._dataset_line(e.dataset, e.train_count, e.val_count, e.test_count, e.spec)
        device = e.device
        if e.processes > 1:  # rank 0 reports its own device: say the whole run's
            listed = self._settings.device if self._settings is not None else e.device
            device = f"{listed} ({e.processes} processes, {e.backend})"
        self._settings = _Settings(
            e.preset,
            device,
            e.batch_size,
            e.learning_rate,
            e.amp,
            patience_words(e.patience),
            e.max_epochs,
            e.parameters,
            e.init,
        )
        self._redraw()

    def show_batch_size(self, batch_size: int) -> None:
        """After an out-of-memory retry the mini-batch is smaller; keep the header honest."""
        if self._settings is not None:
            self._settings = replace(self._settings, batch_size=batch_size)
            self._redraw()

    def set_state(self, state: str) -> None:
        self.border_subtitle = STATE_LABELS.get(state, state)

    @staticmethod
    def _dataset_line(path: str, train: int, val: int, test: int, spec: CodeSpec) -> Text:
        return Text.assemble(
            ("dataset ", "dim"),
            (path, "bold"),
            f"  {train:,} train / {val:,} val / {test:,} test",
            ("  ·  ", "dim"),
            f"{spec.lengths} chars from {charset_preview(spec.charset)} ({spec.classes})",
        )

    def _settings_line(self) -> Text:
        s = self._settings
        if s is None:
            return Text("")
        line = Text.assemble(("preset ", "dim"), (s.preset, "bold"))
        if s.parameters is not None:
            line.append(f" ({s.parameters:,} params)", "dim")
        if s.init is not None:
            source = "the base model" if s.init == BASE_MODEL or is_base_model(s.init) else s.init
            line.append("  fine-tune of ", "dim")
            line.append(source, "bold yellow")
        for name, value in (
            ("device", s.device),
            ("batch", "auto" if s.batch_size is None else str(s.batch_size)),
            ("lr", "auto" if s.lr is None else f"{s.lr:g}"),
            ("AMP", "on" if s.amp else "off"),
            ("patience", s.patience),
            ("max epochs", str(s.epochs)),
        ):
            line.append(f"  {name} ", "dim")
            line.append(value, "bold")
        return line

    def _redraw(self) -> None:
        self.update(Text("\n").join([self._dataset, self._settings_line()]))
