"""The device picker, driven by the keyboard only."""

from __future__ import annotations

import asyncio

from captcha_tui.tui.screens.device_picker import DevicePicker
from captcha_tui.tui.widgets.batch_panel import BatchPanel

from .helpers import SIZE, make_app, screen_text, send_keys, training_config, wait_until


def test_keys_move_pick_confirm_and_cancel(prepared_dataset, tmp_path):
    app = make_app(training_config(prepared_dataset, tmp_path / "run"))

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("d")
            picker = app.screen
            assert isinstance(picker, DevicePicker)
            assert picker.highlighted_device == "cpu"  # the current device is where the cursor starts
            assert "● current" in screen_text(app)
            await pilot.press("j")
            assert picker.highlighted_device == "cuda:0"
            await pilot.press("j", "k")
            assert picker.highlighted_device == "cuda:0"
            await pilot.press("down", "up")
            assert picker.highlighted_device == "cuda:0"
            await pilot.press("enter")
            assert not isinstance(app.screen, DevicePicker)
            assert app.config.device == "cuda:0"

            await pilot.press("d")
            assert app.screen.highlighted_device == "cuda:0"  # marked as current now
            await pilot.press("j", "escape")
            assert not isinstance(app.screen, DevicePicker)
            assert app.config.device == "cuda:0"  # cancelled: unchanged

            await pilot.press("d", "2")  # a digit picks its row at once (0 is the first)
            assert not isinstance(app.screen, DevicePicker)
            assert app.config.device == "cuda:1"
            await pilot.press("d", "0")
            assert app.config.device == "cpu"
            assert "device cpu" in screen_text(app)

    asyncio.run(scenario())


def test_picking_while_training_is_refused(prepared_dataset, tmp_path, one_thread):
    config = training_config(prepared_dataset, tmp_path / "run", epochs=50, batch_size=10)
    app = make_app(config)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            panel = app.train_screen.query_one(BatchPanel)
            await wait_until(pilot, lambda: panel.last is not None, what="training to be under way")
            await send_keys(pilot, "d")
            await wait_until(pilot, lambda: isinstance(app.screen, DevicePicker), what="the picker")
            await send_keys(pilot, "j", "enter")
            await wait_until(pilot, lambda: "refused: training is running" in screen_text(app))
            assert isinstance(app.screen, DevicePicker)  # still open, saying why
            await send_keys(pilot, "1")
            assert isinstance(app.screen, DevicePicker)
            assert app.config.device == "cpu"
            await send_keys(pilot, "escape")
            await wait_until(pilot, lambda: app.screen is app.train_screen, what="the picker to close")
            await send_keys(pilot, "s")  # stop; last.pt is saved
            await wait_until(pilot, lambda: not app.training, what="the run to stop")
            assert app.config.device == "cpu"

    asyncio.run(scenario())
