"""First run: no dataset yet; make one with g (generate + prepare) or o (prepare a folder)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from textual import events
from textual.widgets import Input

from captcha_tui.tui.screens.path_prompt import PathPrompt
from captcha_tui.tui.widgets.batch_panel import BatchPanel
from captcha_tui.tui.widgets.run_header import RunHeader

from .helpers import SIZE, make_app, screen_text, send_keys, training_config, wait_until


def test_g_generates_and_prepares_then_s_trains(tmp_path, one_thread):
    data, images = tmp_path / "dataset", tmp_path / "captchas"
    app = make_app(training_config(data, tmp_path / "run"), images, generate_count=200, data_workers=1)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            text = screen_text(app)
            assert "No dataset yet" in text and f"none at {data}" in text
            assert "generate 200 captchas" in text
            await pilot.press("g")
            await wait_until(pilot, lambda: app.dataset is not None, what="the dataset to be made")
            await pilot.pause()
            summary = app.dataset
            assert summary.total == 200
            assert len(list(images.glob("*.png"))) == 200
            assert (data / "manifest.json").is_file()
            header = str(app.train_screen.query_one(RunHeader).content)
            assert f"{summary.train:,} train / {summary.val:,} val / {summary.test:,} test" in header
            assert "Dataset ready" in screen_text(app)

            await pilot.press("s")  # training can start now
            panel = app.train_screen.query_one(BatchPanel)
            await wait_until(pilot, lambda: panel.last is not None, what="the first batch")
            await send_keys(pilot, "s")
            await wait_until(pilot, lambda: not app.training, what="the run to stop")

    asyncio.run(scenario())


def test_o_prepares_an_existing_folder(captcha_dir, tmp_path):
    data = tmp_path / "dataset"
    app = make_app(training_config(data, tmp_path / "run"), tmp_path / "unused", data_workers=1)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("o")
            await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt), what="the folder prompt")
            assert isinstance(app.screen, PathPrompt)
            app.screen.query_one(Input).value = str(captcha_dir)
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.dataset is not None, what="the folder to be prepared")
            assert app.dataset.total == len(list(captcha_dir.glob("*.png")))
            assert app.screen is app.train_screen

    asyncio.run(scenario())


def test_a_folder_without_captchas_says_why(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a captcha")
    app = make_app(
        training_config(tmp_path / "dataset", tmp_path / "run"), tmp_path / "unused", data_workers=1
    )

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("o")
            await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt), what="the folder prompt")
            app.screen.query_one(Input).value = str(empty)
            await pilot.press("enter")
            await wait_until(
                pilot, lambda: "making the dataset failed" in screen_text(app), what="the failure"
            )
            assert app.dataset is None
            assert "no labelled images" in screen_text(app)
            assert "No dataset yet" in screen_text(app)  # g and o are offered again

    asyncio.run(scenario())


def test_o_over_a_usable_dataset_is_refused_with_the_command_that_would(
    prepared_dataset, captcha_dir, tmp_path
):
    data = Path(shutil.copytree(prepared_dataset, tmp_path / "dataset"))
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    app = make_app(training_config(data, tmp_path / "run"), tmp_path / "unused", data_workers=1)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            assert app.dataset is not None
            await pilot.press("o")
            await pilot.pause()
            assert app.screen is app.train_screen  # no folder is asked for
            shown = [n.message for n in app._notifications]
            assert any(f"already is a dataset at {data} (300 images)" in m and "--force" in m for m in shown)
            assert not app.making_data

    asyncio.run(scenario())
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before


def test_o_replaces_a_dataset_shown_as_damaged(prepared_dataset, captcha_dir, tmp_path):
    data = Path(shutil.copytree(prepared_dataset, tmp_path / "dataset"))
    (data / "manifest.json").write_text("{not json")
    app = make_app(training_config(data, tmp_path / "run"), tmp_path / "unused", data_workers=1)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            assert app.dataset is None and "unreadable manifest" in screen_text(app)
            await pilot.press("o")
            await wait_until(pilot, lambda: isinstance(app.screen, PathPrompt), what="the folder prompt")
            app.screen.query_one(Input).value = str(captcha_dir)
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.dataset is not None, what="the folder to be prepared")
            assert app.dataset.total == 300

    asyncio.run(scenario())


def test_o_with_a_folder_typed_ahead_in_one_burst(captcha_dir, tmp_path):
    """o, the folder and Enter arriving together (a paste): the folder replaces the suggested one."""
    data = tmp_path / "dataset"
    app = make_app(training_config(data, tmp_path / "run"), tmp_path / "unused", data_workers=1)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            for key in ("o", *str(captcha_dir), "enter"):
                character = "\r" if key == "enter" else key
                app._driver.send_message(events.Key(key, character))
            await wait_until(pilot, lambda: app.dataset is not None, what="the folder to be prepared")
            assert app.dataset.total == len(list(captcha_dir.glob("*.png")))
            assert app.screen is app.train_screen

    asyncio.run(scenario())


def test_the_default_config_lets_the_trainer_pick_the_preset(prepared_dataset, tmp_path):
    """No --preset: the header says the choice is the trainer's (it picks from the data) and a run
    started from the dashboard trains the per-position default on this one-length dataset."""
    from captcha_tui.core.train import TrainConfig

    config = TrainConfig(data=prepared_dataset, out=tmp_path / "run", device="cpu", epochs=1, threads=1)
    assert config.preset is None
    app = make_app(config, tmp_path / "unused")

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: "preset auto" in screen_text(app), what="the header")

    asyncio.run(scenario())
