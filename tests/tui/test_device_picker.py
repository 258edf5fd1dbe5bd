"""The device picker, driven by the keyboard only."""

from __future__ import annotations

import asyncio

from textual import events

from captcha_tui.core.devices import DeviceInfo
from captcha_tui.core.units import GiB
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


FOUR_GPUS = [
    DeviceInfo("cpu", "Test CPU", threads=2),
    *(
        DeviceInfo(
            f"cuda:{i}", f"Fake GPU {i}", total_memory=24 * GiB, free_memory=20 * GiB, capability="9.0"
        )
        for i in range(4)
    ),
]


def test_space_ticks_gpus_and_enter_trains_on_the_ticked_ones(prepared_dataset, tmp_path):
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), devices=FOUR_GPUS)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("d")
            picker = app.screen
            assert isinstance(picker, DevicePicker)
            assert screen_text(app).count("[ ]") == 5  # every row shows its box
            await pilot.press("j", "space", "j", "j", "space")  # cuda:0 and cuda:2
            assert picker.ticked == {"cuda:0", "cuda:2"}
            assert screen_text(app).count("[x]") == 2
            assert "ticked: cuda:0,cuda:2" in screen_text(app)
            await pilot.press("space")  # untick cuda:2
            assert picker.ticked == {"cuda:0"}
            await pilot.press("space")  # and tick it again
            await pilot.press("enter")
            assert not isinstance(app.screen, DevicePicker)
            assert app.config.device == "cuda:0,cuda:2"
            assert "device set to cuda:0,cuda:2" in screen_text(app)

            await pilot.press("d")  # the list is current: its devices come ticked
            assert app.screen.ticked == {"cuda:0", "cuda:2"}
            assert app.screen.highlighted_device == "cuda:0"  # the cursor on the list's first device
            await pilot.press("space")
            assert app.screen.ticked == {"cuda:2"}
            await pilot.press("escape")  # cancelled: the list stays
            assert not isinstance(app.screen, DevicePicker)
            assert app.config.device == "cuda:0,cuda:2"

    asyncio.run(scenario())


def test_the_cpu_is_not_ticked_with_gpus_and_enter_without_ticks_takes_the_row(prepared_dataset, tmp_path):
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), devices=FOUR_GPUS)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("d", "j", "space", "k", "space")  # cuda:0, then the CPU
            picker = app.screen
            assert picker.ticked == {"cuda:0"}
            assert "cannot tick cpu with cuda:0" in screen_text(app)
            await pilot.press("j", "space", "j", "j", "j")  # untick cuda:0; none ticked, on cuda:3
            assert picker.ticked == set()
            await pilot.press("enter")  # today's behaviour: the highlighted row
            assert app.config.device == "cuda:3"

    asyncio.run(scenario())


def test_ticking_keys_typed_in_one_burst(prepared_dataset, tmp_path):
    """A terminal delivers a paste, or fast typing, as keys in one read: no key may be lost between."""
    app = make_app(training_config(prepared_dataset, tmp_path / "run"), devices=FOUR_GPUS)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("d")
            # The burst is typed into the picker: wait for it to be up (a busy machine can take longer).
            await wait_until(pilot, lambda: isinstance(app.screen, DevicePicker), what="the picker to open")
            for key, character in (
                ("j", "j"),
                ("j", "j"),
                ("space", " "),
                ("j", "j"),
                ("j", "j"),
                ("space", " "),
                ("enter", "\r"),
            ):
                app._driver.send_message(events.Key(key, character))
            await wait_until(
                pilot, lambda: not isinstance(app.screen, DevicePicker), what="the picker to close"
            )
            assert app.config.device == "cuda:1,cuda:3"

    asyncio.run(scenario())
