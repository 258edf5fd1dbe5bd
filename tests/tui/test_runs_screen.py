"""The runs screen driven with Pilot, on three real tiny runs and on a folder of 200 copies of them."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import DataTable, Static

from captcha_tui.core.runs import read_run
from captcha_tui.tui.screens import runs as runs_screen
from captcha_tui.tui.screens.eval import EvalScreen
from captcha_tui.tui.screens.run_view import RunView, summary_text
from captcha_tui.tui.screens.runs import BATCH, RunsScreen
from captcha_tui.tui.widgets.history_chart import HistoryChart
from captcha_tui.tui.widgets.runs_chart import RunsChart
from captcha_tui.words import RUN_COLUMNS, percent

from .helpers import SIZE, make_app, screen_text, training_config, wait_for_exit, wait_until

# textual-image 0.12 still calls Pillow's deprecated Image.getdata.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:textual_image")


def _rows(screen: RunsScreen) -> dict[str, dict[str, str]]:
    """The table as shown: {run name: {column: text}}, in the table's order."""
    table = screen.query_one(DataTable)
    rows = {}
    for index in range(table.row_count):
        cells = [str(cell) for cell in table.get_row_at(index)]
        rows[cells[1]] = dict(zip(("", *RUN_COLUMNS), cells, strict=True))
    return rows


def _diff_fields(screen: RunsScreen) -> list[str]:
    """The field names the config-difference panel shows (its first column, under the header)."""
    console = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(screen.query_one("#runs-diff", Static).content)
    lines = console.export_text().splitlines()
    return [line.split()[0] for line in lines[1:] if line.strip()]


async def _loaded(pilot) -> RunsScreen:
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded, what="the runs")
    return app.screen


def test_the_first_row_is_drawn_at_the_columns_measured_widths(prepared_dataset, three_runs, tmp_path):
    """The cursor's row was drawn once at the header's widths ("a-t  tiny  …") and kept so until the
    cursor moved (Textual's DataTable measures new rows when idle)."""
    root, _ = three_runs
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), start_screen="runs", runs_dir=root)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(pilot)
            await pilot.pause(0.3)
            lines = screen_text(app).splitlines()
            header = next(i for i, line in enumerate(lines) if "preset" in line and "best val" in line)
            first, second = lines[header + 1 : header + 3]
            assert "a-tiny" in first and "b-ctc" in second, "\n".join(lines)
            # Its columns line up with the next row's: the preset and the data folder (the columns after
            # that may run past the screen's edge, as the temporary folder's name is long).
            assert first.index(" tiny ") + 1 == second.index("crnn-tiny"), "\n".join(lines)
            assert first.index("/") == second.index("/"), "\n".join(lines)

    asyncio.run(scenario())


def test_the_runs_screen_lists_compares_and_opens_real_runs(prepared_dataset, three_runs, tmp_path):
    root, finished = three_runs
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), start_screen="runs", runs_dir=root)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _loaded(pilot)
            rows = _rows(screen)
            assert list(rows) == ["a-tiny", "b-ctc", "c-tiny-lr"]
            for name, done in finished.items():
                row = rows[name]
                assert row["epochs"] == str(done.epochs_run) and row["at"] == str(done.best_epoch)
                assert row["best val"] == percent(done.best_val_accuracy)
                assert row["test"] == percent(done.test_accuracy)
                assert row["images"] == f"{done.images_seen:,}"
                assert row["ended"] == "reached the last epoch"
            assert [rows[name]["preset"] for name in rows] == ["tiny", "crnn-tiny", "tiny"]
            assert "3 runs in" in str(screen.query_one("#runs-status", Static).content)

            # space picks the highlighted run and moves down: two presses pick the first two.
            await pilot.press("space", "space")
            assert screen.selected == ["a-tiny", "b-ctc"]
            assert [str(_rows(screen)[name][""]) for name in rows] == ["●", "●", " "]
            chart = screen.query_one(RunsChart)
            assert [name for name, _, _ in chart.series] == ["a-tiny", "b-ctc"]
            b_curve = read_run(root / "b-ctc").val_curve
            assert chart.series[1][1:] == ([e for e, _ in b_curve], [a for _, a in b_curve])
            assert _diff_fields(screen) == ["preset", "epochs", "lr"]
            # b out, c in: a and c share their preset, so it leaves the diff.
            await pilot.press("up", "space", "space")
            assert screen.selected == ["a-tiny", "c-tiny-lr"]
            assert _diff_fields(screen) == ["epochs", "lr"]
            assert [name for name, _, _ in chart.series] == ["a-tiny", "c-tiny-lr"]

            # Enter opens the highlighted run: its history in the chart, e its best.pt in the eval screen.
            await pilot.press("up", "enter")
            view = app.screen
            assert isinstance(view, RunView) and view.record.name == "b-ctc"
            history = view.query_one(HistoryChart)
            assert history.epochs == [1, 2] and history.val_accuracy == [a for _, a in b_curve]
            assert history.best == (
                finished["b-ctc"].best_epoch,
                pytest.approx(finished["b-ctc"].best_val_accuracy),
            )
            assert "b-ctc" in screen_text(app) and "reached the last epoch" in screen_text(app)
            assert not app.check_action("start_training", ())  # the dashboard's keys are off here
            await pilot.press("e")
            assert isinstance(app.screen, EvalScreen) and app.screen.checkpoint == root / "b-ctc" / "best.pt"
            await wait_until(
                pilot,
                lambda: "model crnn-tiny" in str(app.screen.query_one("#model-info", Static).content),
                what="the run's model",
            )
            await pilot.press("escape")
            assert app.screen is view
            await pilot.press("escape")
            assert app.screen is screen
            await pilot.press("escape")  # `captcha-tui runs` opened it: Escape quits
            await wait_for_exit(app)

    asyncio.run(scenario())
    assert app.return_code == 0


def test_the_dashboards_key_opens_the_runs_beside_its_run_folder(prepared_dataset, three_runs):
    root, _ = three_runs
    app = make_app(training_config(prepared_dataset, root / "c-tiny-lr"))

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            assert app.screen is app.train_screen and app.check_action("start_training", ())
            await pilot.press("h")
            screen = await _loaded(pilot)
            assert screen.root == root and list(_rows(screen)) == ["a-tiny", "b-ctc", "c-tiny-lr"]
            offered = {key for key, b in app.screen.active_bindings.items() if b.binding.show and b.enabled}
            assert {"space", "enter", "escape", "e", "q"} <= offered
            assert not offered & {"s", "r", "p", "d", "l", "h"}  # the dashboard's keys stay on the dashboard
            # e here reads with the highlighted run's best.pt; back on the dashboard, e reads with its own.
            await pilot.press("e")
            assert app.screen.checkpoint == root / "a-tiny" / "best.pt"
            assert not app.check_action("open_runs", ())  # the runs screen is below: no second one
            await pilot.press("escape", "escape")
            assert app.screen is app.train_screen and app.check_action("open_runs", ())
            await pilot.press("e")
            assert app.screen.checkpoint == app.eval_checkpoint == root / "c-tiny-lr" / "best.pt"

    asyncio.run(scenario())


def _copies(three_runs, root, count: int) -> list[str]:
    """``count`` run folders copied from the three real ones (JSON files; an empty best.pt)."""
    sources = sorted(three_runs[0].iterdir())
    names = []
    for i in range(count):
        source, target = sources[i % len(sources)], root / f"run-{i:03d}"
        target.mkdir(parents=True)
        for name in ("config.json", "history.jsonl", "train.log"):
            shutil.copyfile(source / name, target / name)
        (target / "best.pt").touch()
        names.append(target.name)
    return names


def test_two_hundred_runs_list_fully_and_keys_are_answered_while_they_load(
    prepared_dataset, three_runs, tmp_path, monkeypatch
):
    root = tmp_path / "runs"
    names = _copies(three_runs, root, 200)
    # The worker is held after two batches, until the test has pressed its keys: what the table shows
    # then, and the key's answer, are certain however fast the machine reads.
    held_after, release, reads = 2 * BATCH, threading.Event(), []

    def held_read(path):
        if len(reads) == held_after:
            assert release.wait(30), "never released"
        reads.append(path.name)
        return read_run(path)

    monkeypatch.setattr(runs_screen, "read_run", held_read)
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), start_screen="runs", runs_dir=root)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            table = screen.query_one(DataTable)
            await wait_until(pilot, lambda: table.row_count == held_after, what="the first two batches")
            await pilot.press("down", "space")
            assert screen.selected == ["run-001"] and not screen.loaded
            assert [name for name, _, _ in screen.query_one(RunsChart).series] == ["run-001"]
            assert f"reading {held_after}/200" in str(screen.query_one("#runs-status", Static).content)
            release.set()
            await _loaded(pilot)
            rows = _rows(screen)
            assert list(rows) == names and reads == names  # each run read once
            assert rows["run-001"][""] == "●" and screen.selected == ["run-001"]
            for i in (0, 1, 2, 199):  # the copies show their sources' figures
                source = read_run(sorted(three_runs[0].iterdir())[i % 3])
                assert rows[f"run-{i:03d}"]["best val"] == percent(source.best_val_accuracy)
                assert rows[f"run-{i:03d}"]["preset"] == source.preset
            assert "200 runs in" in str(screen.query_one("#runs-status", Static).content)

    try:
        asyncio.run(scenario())
    finally:
        release.set()


def test_sorting_by_a_column_orders_by_the_figure_and_keeps_later_batches_in_order(
    prepared_dataset, three_runs, tmp_path
):
    root, finished = three_runs
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), start_screen="runs", runs_dir=root)
    by_accuracy = sorted(finished, key=lambda name: finished[name].best_val_accuracy, reverse=True)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _loaded(pilot)
            screen.sort_by("best val", reverse=True)
            await pilot.pause()
            assert list(_rows(screen)) == by_accuracy
            screen.sort_by("preset", reverse=False)
            await pilot.pause()
            assert [row["preset"] for row in _rows(screen).values()] == ["crnn-tiny", "tiny", "tiny"]

    asyncio.run(scenario())


def test_a_damaged_run_lists_and_says_what_is_wrong_and_a_missing_folder_is_said(
    prepared_dataset, three_runs, tmp_path
):
    root = tmp_path / "runs"
    shutil.copytree(three_runs[0] / "a-tiny", root / "broken")
    (root / "broken" / "history.jsonl").write_text("{cut\n")
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), start_screen="runs", runs_dir=root)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = await _loaded(pilot)
            row = _rows(screen)["broken"]
            assert row["epochs"] == "0" and row["ended"] == "reached the last epoch ⚠"
            assert row["best val"] == percent(three_runs[1]["a-tiny"].best_val_accuracy)  # from its finish
            assert "history.jsonl: 1 damaged line skipped" in str(
                screen.query_one("#runs-detail", Static).content
            )

    asyncio.run(scenario())

    app = make_app(
        training_config(prepared_dataset, tmp_path / "run"), start_screen="runs", runs_dir=tmp_path / "none"
    )

    async def missing():
        async with app.run_test(size=SIZE) as pilot:
            await _loaded(pilot)
            assert "no such folder" in str(app.screen.query_one("#runs-status", Static).content)

    asyncio.run(missing())


def test_a_run_view_says_why_e_is_not_offered_where_the_run_has_no_best_pt(three_runs, tmp_path):
    root, _ = three_runs
    run = Path(shutil.copytree(root / "a-tiny", tmp_path / "a-tiny"))
    with_best = summary_text(read_run(run)).plain
    assert "e reads captchas with its best.pt" in with_best and "no best.pt here" not in with_best
    (run / "best.pt").unlink()
    view = RunView(read_run(run))
    assert view.run_checkpoint is None  # e is not offered…
    without = summary_text(view.record).plain
    assert "no best.pt here (no epoch validated, or it was removed)" in without  # …and the view says why
    assert "e reads" not in without
