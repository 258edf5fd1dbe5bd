"""What the panels look like: sparklines as wide as their panel, a legend readable without colour,
messages inside their panels, the device picker saying it is still looking, keys shown in the footer."""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import replace

import pynvml
from textual.widgets import DataTable

from captcha_tui.core import events as ev
from captcha_tui.core.devices import list_devices
from captcha_tui.core.hardware import HardwareSampler
from captcha_tui.tui import app as app_module
from captcha_tui.tui.screens.device_picker import DevicePicker
from captcha_tui.tui.widgets.batch_panel import SPARK_BARS, BatchPanel
from captcha_tui.tui.widgets.device_panels import DevicePanels
from captcha_tui.tui.widgets.history_chart import HistoryChart
from captcha_tui.tui.widgets.path_completion import PathInput
from tests.fake_nvml import FakeNvmlBackend

from .helpers import SIZE, make_app, screen_text, training_config, wait_until

BORDER_LEFT, BORDER_RIGHT = "╭│╰", "╮│╯"


def _rows(app, region) -> list[str]:
    """The screen's text inside ``region``, one string per row."""
    lines = screen_text(app).splitlines()
    return [lines[y][region.x : region.right] for y in range(region.y, region.bottom)]


def _batch(index: int) -> ev.BatchProgress:
    return ev.BatchProgress(
        epoch=1,
        batch=index,
        batches=1000,
        loss=3.0 / index,
        accuracy=min(1.0, index / 300),
        char_accuracy=min(1.0, index / 200),
        images_per_s=900.0,
        eta_s=60.0,
        batch_size=100,
    )


def _epoch(epoch: int, train: float, val: float) -> ev.EpochEnd:
    return ev.EpochEnd(epoch, 1.0, train, train, 1.1, val, val, 10.0, 100.0, 1e-3)


def test_sparklines_reach_the_panel_edge_on_a_wide_screen(prepared_dataset, tmp_path):
    app = make_app(training_config(prepared_dataset, tmp_path / "run"))

    async def scenario():
        async with app.run_test(size=(200, 50)) as pilot:
            panel = app.train_screen.query_one(BatchPanel)
            content = panel.content_region
            assert content.width > 100  # wider than the 80 reports the panel used to keep
            for count in (3, 300):  # a few reports (the rest is baseline), then more than fit
                for index in range(1, count + 1):
                    panel.show_batch(_batch(index))
                await pilot.pause()
                rows = {row[:4]: row for row in _rows(app, content)}
                for label in ("loss", "acc "):
                    row = rows[label]
                    assert len(row) == content.width and row[-1] in SPARK_BARS, (count, row)

    asyncio.run(scenario())


def test_the_accuracy_sparkline_keeps_a_fixed_0_to_100_percent_scale(prepared_dataset, tmp_path):
    app = make_app(training_config(prepared_dataset, tmp_path / "run"))

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            panel = app.train_screen.query_one(BatchPanel)

            async def shown(accuracies: list[float]) -> tuple[str, str]:
                """The accuracy and loss bars after these reports (the panel keeps the earlier ones)."""
                start = len(panel.accuracies) + 1
                for index, accuracy in enumerate(accuracies, start=start):
                    panel.show_batch(replace(_batch(index), accuracy=accuracy))
                await pilot.pause()
                rows = {row[:4]: row for row in _rows(app, panel.content_region)}
                drawn = slice(6, 6 + len(panel.accuracies))
                return rows["acc "][drawn], rows["loss"][drawn]

            # A model that reads nothing yet, and one lucky batch at 0.4%: no full-height spike.
            accuracy, loss = await shown([0.0] * 10 + [0.004] + [0.0] * 10)
            assert accuracy == SPARK_BARS[0] * 21, accuracy
            assert loss[0] == SPARK_BARS[-1] and loss[-1] == SPARK_BARS[0]  # loss still spans its values
            accuracy, _ = await shown([0.5])  # half way up, not the top of a 0-50% scale
            assert accuracy[-1] == SPARK_BARS[4], accuracy
            accuracy, _ = await shown([1.0])
            assert accuracy == SPARK_BARS[0] * 21 + SPARK_BARS[4] + SPARK_BARS[-1], accuracy

    asyncio.run(scenario())


def test_the_history_legend_tells_train_from_val_without_colour(prepared_dataset, tmp_path):
    app = make_app(training_config(prepared_dataset, tmp_path / "run"))

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            chart = app.train_screen.query_one(HistoryChart)
            for epoch, (train, val) in enumerate([(0.2, 0.1), (0.5, 0.4), (0.7, 0.6)], start=1):
                chart.add_epoch(_epoch(epoch, train, val))
            await pilot.pause()
            rows = _rows(app, chart.region)
            # Legend entries are a two-cell marker, a space and the label ("⢕⢕ train").
            glyphs = {}
            for label in ("train", "val"):
                found = [m for row in rows if (m := re.search(rf"(\S\S) {label}\s", row))]
                assert len(found) == 1, (label, rows)
                glyphs[label] = found[0].group(1)
            assert glyphs["train"] != glyphs["val"], glyphs

    asyncio.run(scenario())


def test_the_nvml_message_stays_inside_its_panel(prepared_dataset, tmp_path):
    backend = FakeNvmlBackend.with_gpus(1)
    backend.fail_init(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    sampler = HardwareSampler(backend=backend, device="cpu")
    app = make_app(
        training_config(prepared_dataset, tmp_path / "run"), sampler=sampler, monitor_interval=0.05
    )

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            panels = app.train_screen.query_one(DevicePanels)
            await wait_until(pilot, lambda: panels.sample is not None, what="a hardware sample")
            status = panels.query_one("#device-status")
            message = "GPU monitor off: NVML library not found (no NVIDIA driver)"

            def inside() -> str:  # the panel's lines inside its frame, as drawn now
                return " ".join(row[1:-1].strip() for row in _rows(app, status.region)[1:-1])

            # Under load the first frames may be drawn before the panel is laid out at its final height.
            await wait_until(pilot, lambda: message in inside(), what="the whole message inside its panel")
            rows = _rows(app, status.region)
            assert len(rows) >= 3  # a frame around at least one line
            for row in rows:
                assert row[0] in BORDER_LEFT and row[-1] in BORDER_RIGHT, row
            assert status.region.right <= app.train_screen.query_one("#right").region.right

    asyncio.run(scenario())


def test_the_device_picker_opens_at_once_and_says_it_is_still_looking(
    prepared_dataset, tmp_path, monkeypatch
):
    listed = threading.Event()

    def slow_list_devices():
        listed.wait(30)  # as a first CUDA query can take seconds
        return list_devices()

    monkeypatch.setattr(app_module, "list_devices", slow_list_devices)
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), devices=None)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("d")
            picker = app.screen
            assert isinstance(picker, DevicePicker) and picker.listing
            box = _rows(app, picker.query_one("#picker-box").region)
            assert any("looking for devices" in row for row in box)
            assert not app._notifications  # no toast over the picker
            listed.set()
            await wait_until(pilot, lambda: not picker.listing, what="the devices")
            await pilot.pause()
            assert "cpu" in "\n".join(_rows(app, picker.query_one("#picker-box").region))
            assert picker.highlighted_device == "cpu"
            await pilot.press("enter")
            assert app.screen is app.train_screen and app.config.device == "cpu"

    asyncio.run(scenario())


def test_the_eval_footer_shows_the_checkpoint_key_that_works_where_the_focus_is(
    prepared_dataset, tiny_run, tmp_path
):
    app = make_app(
        training_config(prepared_dataset, tmp_path / "run"), start_screen="eval", model=tiny_run / "best.pt"
    )

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.eval_screen
            footer = lambda: screen_text(app).splitlines()[-1]  # noqa: E731
            assert screen.query_one("#image-path", PathInput).has_focus
            assert "^o checkpoint" in footer()  # m would be typed into the path
            await pilot.press("ctrl+o")
            assert screen.query_one("#checkpoint", PathInput).has_focus
            screen.query_one(DataTable).focus()
            await pilot.pause()
            assert "m checkpoint" in footer()
            await pilot.press("m")
            assert screen.query_one("#checkpoint", PathInput).has_focus

    asyncio.run(scenario())
