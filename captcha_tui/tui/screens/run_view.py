"""One run, opened from the runs screen: its figures, its history chart and its config. The app's ``e``
opens the eval screen on its best.pt (see ``CaptchaApp.action_open_eval``)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from ...core.runs import RunRecord
from ...core.train import BEST
from ...words import RUN_COLUMNS, run_cells
from ..widgets.history_chart import HistoryChart


def summary_text(record: RunRecord) -> Text:
    text = Text()
    text.append(f"{record.name}", style="bold")
    text.append(f"  {record.path}\n", style="dim")
    pairs = list(zip(RUN_COLUMNS[1:], run_cells(record)[1:], strict=True))
    text.append("  ·  ".join(f"{label} {value}" for label, value in pairs))
    if record.failure:
        text.append(f"\nfailed: {record.failure}", style="red")
    for problem in record.problems:
        text.append(f"\n⚠ {problem}", style="yellow")
    if record.has_best:
        text.append(f"\ne reads captchas with its {BEST}", style="cyan")
    else:  # e is not offered: say why rather than leave the key missing
        text.append(
            f"\nno {BEST} here (no epoch validated, or it was removed): nothing to read with", style="dim"
        )
    return text


def config_table(config: dict) -> Table | Text:
    if not config:
        return Text("no readable config.json", style="dim")
    table = Table.grid(padding=(0, 2))
    for _ in range(2):  # two field/value pairs a line
        table.add_column(style="dim")
        table.add_column()
    items = [(name, "—" if value is None else str(value)) for name, value in config.items()]
    for i in range(0, len(items), 2):
        row = [cell for pair in items[i : i + 2] for cell in pair]
        table.add_row(*row)
    return table


class RunView(Screen):
    BINDINGS = [Binding("escape", "back", "runs")]

    def __init__(self, record: RunRecord) -> None:
        super().__init__(classes="run-view")
        self.record = record

    @property
    def run_checkpoint(self) -> Path | None:
        """The checkpoint the app's ``e`` reads with here: the run's best.pt, if it has one."""
        return self.record.path / BEST if self.record.has_best else None

    def compose(self) -> ComposeResult:
        yield Static(summary_text(self.record), id="run-view-summary")
        yield HistoryChart(id="run-view-chart")
        config = Static(config_table(self.record.config), id="run-view-config")
        config.border_title = "config"
        yield config
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(HistoryChart).show_history(self.record.epochs, self.record.best)

    def action_back(self) -> None:
        self.app.pop_screen()
