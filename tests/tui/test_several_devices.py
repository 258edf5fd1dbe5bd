"""The dashboard training one run on several devices: ``cpu:2`` (two gloo processes, launched from the
app's worker thread) stands for a list of GPUs, which CI does not have. Rank 0's events come back to the
dashboard; s stops every process with a resumable last.pt."""

from __future__ import annotations

import asyncio
import tempfile

import pytest
import torch

from captcha_tui.core import events as ev
from captcha_tui.core.checkpoint import load_checkpoint
from tests.helpers import history_rows

from .helpers import SIZE, make_app, screen_text, send_keys, training_config, wait_until

RUN_TIMEOUT = 180  # seconds for a two-process run to start and end, on a busy two-core machine


def test_the_dashboard_trains_one_run_on_two_processes(prepared_dataset, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    temp = tmp_path / "temp"  # where the processes' output goes, away from the dashboard's screen
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    app = make_app(training_config(prepared_dataset, run_dir, device="cpu:2"))

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            await wait_until(
                pilot,
                lambda: "cpu:2 (2 processes, gloo)" in screen_text(app),
                RUN_TIMEOUT,
                "the run to start",
            )
            assert app.check_action("pause_training", ()) is False  # no pause across processes
            await wait_until(pilot, lambda: not app.training, RUN_TIMEOUT, "the run to end")
            await wait_until(pilot, lambda: "finished" in screen_text(app), what="the finish banner")
            # The banner comes with the relayed events; the result, with the worker's own end message.
            await wait_until(pilot, lambda: app.last_result is not None, what="the worker's result")
            assert isinstance(app.last_result, ev.Finished), app.last_result
            assert app.last_result.epochs_run == 2

    asyncio.run(scenario())
    assert [row["epoch"] for row in history_rows(run_dir)] == [1, 2]
    assert (run_dir / "best.pt").is_file()
    assert not list(temp.iterdir())  # a run that ended well leaves no output folder behind


def test_stop_ends_every_process_with_a_resumable_last_pt(prepared_dataset, tmp_path):
    run_dir = tmp_path / "run"
    app = make_app(training_config(prepared_dataset, run_dir, device="cpu:2", epochs=50, batch_size=10))

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            await wait_until(pilot, lambda: (run_dir / "last.pt").is_file(), RUN_TIMEOUT, "a first epoch")
            await send_keys(pilot, "s")
            await wait_until(pilot, lambda: not app.training, RUN_TIMEOUT, "every process to stop")
            assert isinstance(app.last_result, ev.Finished), app.last_result
            assert app.last_result.reason != "epochs"
            assert app.last_result.epochs_run < 50

    asyncio.run(scenario())
    assert load_checkpoint(run_dir / "last.pt").trainer["epoch"] < 50


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_list_of_gpus_this_machine_lacks_is_refused_before_anything_starts(prepared_dataset, tmp_path):
    run_dir = tmp_path / "run"
    app = make_app(training_config(prepared_dataset, run_dir, device="cuda:0,cuda:2"))

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            await wait_until(pilot, lambda: "cuda:0,cuda:2 was asked for" in screen_text(app))
            assert not app.training
            assert isinstance(app.last_result, ev.Failed)

    asyncio.run(scenario())
    assert not run_dir.exists()
