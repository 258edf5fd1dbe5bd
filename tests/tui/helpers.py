"""Small tools for driving the app with Pilot: poll for a condition, read the screen as text."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from textual import events

from captcha_tui.core.devices import DeviceInfo
from captcha_tui.core.train import TrainConfig
from captcha_tui.core.units import GiB
from captcha_tui.tui.app import CaptchaApp
from tools.demo import fixed_clock

SIZE = (120, 40)

# The picker's rows in tests: no real GPU is needed to see the cuda rows.
TEST_DEVICES = [
    DeviceInfo("cpu", "Test CPU", threads=2),
    DeviceInfo("cuda:0", "Fake GPU A", total_memory=24 * GiB, free_memory=20 * GiB, capability="8.9"),
    DeviceInfo("cuda:1", "Fake GPU B", total_memory=16 * GiB, free_memory=15 * GiB, capability="8.6"),
]


def screen_text(app) -> str:
    """What the terminal shows now, as plain text (one line per row)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_until(pilot, condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Poll ``condition`` every 0.1 s while the app runs; fail with the screen's text after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}\n{screen_text(pilot.app)}")
        await pilot.pause(0.1)


async def send_keys(pilot, *keys: str) -> None:
    """Press keys while training runs.

    ``pilot.press`` waits for the whole *process* to go idle after each key (it compares CPU time with
    wall time), which never happens while a training thread computes, so every press would cost its
    one-second cap. This hands the key events to the driver as a terminal would and lets the UI settle.
    """
    for key in keys:
        character = key if len(key) == 1 else {"enter": "\r", "escape": "\x1b"}.get(key)
        pilot.app._driver.send_message(events.Key(key, character))
        await pilot.pause(0.05)


async def wait_for_exit(app, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while app.is_running:
        if time.monotonic() > deadline:
            raise AssertionError("the app did not exit")
        await asyncio.sleep(0.05)


def training_config(data: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(data=data, out=out, preset="tiny", device="cpu", epochs=2, threads=1)
    settings.update(overrides)
    return TrainConfig(**settings)


def make_app(config: TrainConfig, image_dir: Path | None = None, **options) -> CaptchaApp:
    """An app with no monitor thread and fixed devices unless a test asks for them."""
    options.setdefault("monitor_interval", None)
    options.setdefault("devices", TEST_DEVICES)
    options.setdefault("clock", fixed_clock)
    return CaptchaApp(config, image_dir or config.data.parent / "images", **options)
