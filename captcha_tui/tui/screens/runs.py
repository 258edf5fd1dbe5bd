"""Every run folder under a root (``runs/``): a table of their figures, the selected runs' validation curves
overlaid, and how their configs differ. Enter opens a run (:class:`RunView`).

A thread worker lists the folder and reads each run's JSON files once (``core.runs``), posting the records
in batches; the UI thread only adds rows, so keys are answered while 200 runs are still being read.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from ...core.runs import RunRecord, config_diff, find_runs, read_run
from ...core.train import BEST
from ...words import RUN_COLUMNS, run_cells, run_ending
from ..messages import RunsRead
from ..widgets.runs_chart import RunsChart
from .run_view import RunView

BATCH = 25  # records a message: 200 runs are 8 updates of the table, not 200
MARK = "●"
COLUMN_KEYS = ("mark", *RUN_COLUMNS)
# Figures sort best first on the first press; words from A to Z.
DESCENDING_FIRST = frozenset({"epochs", "best val", "test", "images", "time"})


def sort_value(record: RunRecord, column: str):
    """What a column sorts by: the figure itself, not its text (9 epochs before 10); unknown ones together
    at one end."""
    value = {
        "run": record.name,
        "preset": record.preset,
        "data": record.data,
        "epochs": len(record.epochs),
        "best val": record.best_val_accuracy,
        "at": record.best_epoch,
        "test": record.test_accuracy,
        "images": record.images_seen,
        "time": record.training_s,
        "ended": run_ending(record),
    }[column]
    return (value is None, value if value is not None else 0)


def format_value(value) -> str:
    return "—" if value is None else str(value)


def diff_table(records: list[RunRecord]) -> Table | Text:
    """The selected runs' config fields that differ, one run a column."""
    if len(records) < 2:
        return Text("select two runs or more (space) to see how their configs differ", style="dim")
    diff = config_diff(records)
    if not diff:
        return Text("their configs are the same", style="dim")
    table = Table(box=None, padding=(0, 1), show_edge=False)
    table.add_column("field", style="dim")
    for record in records:
        table.add_column(record.name, overflow="fold")
    for name, values in diff.items():
        table.add_row(name, *(format_value(value) for value in values))
    return table


class RunsTable(DataTable):
    # DataTable's own Enter, named in the footer: it selects the row, which opens the run.
    BINDINGS = [Binding("enter", "select_cursor", "open")]

    def _update_dimensions(self, new_rows) -> None:
        # Textual 8.2's DataTable measures new rows' columns when idle, but keeps the lines it drew before
        # that: the cursor's row stayed drawn at the header's widths ("d2d  fast    data  0 …") until the
        # cursor moved. Drawn again at the measured widths.
        super()._update_dimensions(new_rows)
        self._clear_caches()
        self.refresh()


class RunsScreen(Screen):
    BINDINGS = [
        Binding("space", "toggle_selected", "compare", tooltip="Select the run for the chart and the diff"),
        Binding("escape", "back", "back"),
        Binding("escape", "leave", "quit"),  # `captcha-tui runs` opened it: there is no dashboard
    ]

    def __init__(self, root: Path, standalone: bool = False) -> None:
        super().__init__(id="runs-screen")
        self.root = Path(root)
        self.standalone = standalone
        self.records: dict[str, RunRecord] = {}  # by name (= the table's row key), in the order read
        self.selected: list[str] = []  # in the order picked: the chart's and the diff's order
        self.loaded = False
        self.total: int | None = None  # run folders found, once listed
        self._sort: tuple[str, bool] | None = None  # (column, reverse)

    def compose(self) -> ComposeResult:
        yield Static(Text(f"reading the runs in {self.root}…", style="dim"), id="runs-status")
        table = RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        table.border_title = f"runs in {self.root}"
        yield table
        yield Static("", id="runs-detail")
        with Horizontal(id="runs-compare"):
            yield RunsChart(id="runs-chart")
            diff = Static(diff_table([]), id="runs-diff")
            diff.border_title = "config differences"
            yield diff
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("", key="mark", width=1)
        for column in RUN_COLUMNS:
            table.add_column(column, key=column)
        table.focus()
        self._read_runs(self.root)

    # ---- reading (a thread worker: it only posts messages) ---------------------------------------------

    @work(thread=True, exclusive=True, group="runs-read", exit_on_error=False)
    def _read_runs(self, root: Path) -> None:
        worker = get_current_worker()
        try:
            paths = find_runs(root)
        except OSError as exc:
            problem = "no such folder" if isinstance(exc, FileNotFoundError) else exc.strerror or str(exc)
            self.post_message(RunsRead((), 0, 0, problem=f"{root}: {problem}"))
            return
        batch: list[RunRecord] = []
        for done, path in enumerate(paths, 1):
            if worker.is_cancelled:  # the screen was closed
                return
            batch.append(read_run(path))
            if len(batch) == BATCH or done == len(paths):
                self.post_message(RunsRead(tuple(batch), done, len(paths)))
                batch = []
        if not paths:
            self.post_message(RunsRead((), 0, 0))

    def on_runs_read(self, message: RunsRead) -> None:
        table = self.query_one(DataTable)
        for record in message.records:
            self.records[record.name] = record
            table.add_row(Text(" "), *(Text(cell) for cell in run_cells(record)), key=record.name)
        self.total = message.total
        status = self.query_one("#runs-status", Static)
        if message.problem:
            self.loaded = True
            status.update(Text(f"cannot list the runs: {message.problem}", style="red"))
        elif message.done < message.total:
            status.update(Text(f"reading {message.done}/{message.total} runs in {self.root}…", style="dim"))
        else:
            self.loaded = True
            count = len(self.records)
            if not count:
                status.update(Text(f"no runs in {self.root} yet", style="dim"))
            else:
                status.update(
                    f"{count} run{'s' if count != 1 else ''} in {self.root} · space picks runs to compare · "
                    "Enter opens one · a column's title sorts by it"
                )
            if self._sort is not None:  # the batches that came after a sort join its order
                self.sort_by(*self._sort)
        if message.records and table.row_count == len(message.records):
            self._show_detail()  # the first rows: say what the highlighted one is

    # ---- the table ----------------------------------------------------------------------------------------

    def highlighted(self) -> RunRecord | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        row_key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key
        return self.records.get(row_key.value)

    @property
    def run_checkpoint(self) -> Path | None:
        """The checkpoint the app's ``e`` reads with here: the highlighted run's best.pt, if it has one."""
        record = self.highlighted()
        return record.path / BEST if record is not None and record.has_best else None

    def sort_by(self, column: str, reverse: bool) -> None:
        self._sort = (column, reverse)
        records = self.records
        self.query_one(DataTable).sort(
            "run", key=lambda name: sort_value(records[name.plain], column), reverse=reverse
        )

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = event.column_key.value
        if column not in RUN_COLUMNS:
            return
        if self._sort is not None and self._sort[0] == column:
            reverse = not self._sort[1]
        else:
            reverse = column in DESCENDING_FIRST
        self.sort_by(column, reverse)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()
        self.app.refresh_bindings()  # the app's e reads with this run's best.pt, if it has one

    def _show_detail(self) -> None:
        record = self.highlighted()
        detail = Text()
        if record is not None:
            detail.append(str(record.path), style="dim")
            if record.failure:
                detail.append(f"  failed: {record.failure}", style="red")
            if record.problems:
                detail.append(f"  ⚠ {'; '.join(record.problems)}", style="yellow")
        self.query_one("#runs-detail", Static).update(detail)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        record = self.records.get(event.row_key.value)
        if record is not None:
            self.app.push_screen(RunView(record))

    def action_toggle_selected(self) -> None:
        record = self.highlighted()
        if record is None:
            return
        table = self.query_one(DataTable)
        if record.name in self.selected:
            self.selected.remove(record.name)
            table.update_cell(record.name, "mark", Text(" "))
        else:
            self.selected.append(record.name)
            table.update_cell(record.name, "mark", Text(MARK, style="bold green"))
        table.action_cursor_down()  # as in a file manager: space space picks two runs
        self._show_selection()

    def selected_records(self) -> list[RunRecord]:
        return [self.records[name] for name in self.selected]

    def _show_selection(self) -> None:
        records = self.selected_records()
        self.query_one(RunsChart).show_runs(records)
        self.query_one("#runs-diff", Static).update(diff_table(records))

    # ---- leaving --------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return not self.standalone
        if action == "leave":
            return self.standalone
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    async def action_leave(self) -> None:
        await self.app.action_quit()
