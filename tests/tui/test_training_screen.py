"""The training screen against real training runs of the tiny preset on the CPU."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref

from captcha_tui.core import events as ev
from captcha_tui.core.checkpoint import load_checkpoint
from captcha_tui.core.predictor import Predictor
from captcha_tui.tui import app as app_module
from captcha_tui.tui.app import TRAIN_THREAD_NAME, compact_heap
from captcha_tui.tui.messages import TrainingUpdate
from captcha_tui.tui.widgets.batch_panel import BatchPanel
from captcha_tui.tui.widgets.countdown import CountdownLine
from captcha_tui.tui.widgets.event_log import EventLog
from captcha_tui.tui.widgets.finish_banner import FinishBanner
from captcha_tui.tui.widgets.history_chart import HistoryChart
from captcha_tui.tui.widgets.run_header import RunHeader

from .helpers import (
    SIZE,
    make_app,
    screen_text,
    send_keys,
    training_config,
    wait_for_exit,
    wait_until,
)


def test_training_fills_the_dashboard(prepared_dataset, dataset_summary, tmp_path, one_thread):
    app = make_app(training_config(prepared_dataset, tmp_path / "run", epochs=2))

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.train_screen
            batch_panel = screen.query_one(BatchPanel)
            countdown_before = str(screen.query_one(CountdownLine).content)
            await pilot.press("s")
            await wait_until(pilot, lambda: batch_panel.last is not None, what="a batch report")
            await wait_until(pilot, lambda: not app.training, timeout=120, what="the run to finish")
            await pilot.pause()

            assert batch_panel.losses and batch_panel.accuracies
            assert batch_panel.batches_done > 0
            assert "img/s · ETA" in screen_text(app)
            chart = screen.query_one(HistoryChart)
            assert chart.epochs == [1, 2]
            assert len(chart.val_accuracy) == 2 and chart.best is not None

            countdown = str(screen.query_one(CountdownLine).content)
            assert countdown != countdown_before
            assert countdown.startswith(f"best {chart.best[1]:.3f} at epoch {chart.best[0]} · stops after")

            s = dataset_summary
            header = str(screen.query_one(RunHeader).content)
            assert f"{s.train:,} train / {s.val:,} val / {s.test:,} test" in header
            assert "preset tiny" in header and "device cpu" in header

            result = app.last_result
            assert isinstance(result, ev.Finished) and result.test_accuracy is not None
            banner = screen.query_one(FinishBanner)
            assert banner.display
            banner_text = str(banner.content)
            assert f"test accuracy {result.test_accuracy * 100:.1f}%" in banner_text
            assert result.best_checkpoint in banner_text and "press e" in banner_text
            assert "new best" in screen_text(app)

    asyncio.run(scenario())


def test_batch_reports_are_coalesced_to_ten_updates_a_second(prepared_dataset, tmp_path, one_thread):
    # Every batch reported (no throttle at the source) and small batches: far more than 10 events a second.
    config = training_config(
        prepared_dataset, tmp_path / "run", epochs=2, batch_size=4, report_interval_s=0.0
    )
    app = make_app(config)
    updates: list[TrainingUpdate] = []

    def count_updates(message) -> None:
        if isinstance(message, TrainingUpdate):
            updates.append(message)

    async def scenario() -> float:
        async with app.run_test(size=SIZE, message_hook=count_updates) as pilot:
            started = time.monotonic()
            await pilot.press("s")
            await wait_until(pilot, lambda: not app.training, timeout=120, what="the run to finish")
            return time.monotonic() - started

    wall = asyncio.run(scenario())
    events = app.event_buffer.received
    rate = len(updates) / wall
    print(f"{events} trainer events → {len(updates)} UI updates in {wall:.1f} s ({rate:.1f}/s)")
    assert isinstance(app.last_result, ev.Finished)
    assert rate <= 12, f"{len(updates)} updates in {wall:.1f} s"
    if events / wall > 15:  # only then is there anything to coalesce
        assert len(updates) < events


def test_quit_while_training_saves_last_checkpoint_and_leaves_no_thread(
    prepared_dataset, tmp_path, one_thread
):
    from captcha_tui.core.hardware import FakeNvmlBackend, HardwareSampler

    run_dir = tmp_path / "run"
    config = training_config(prepared_dataset, run_dir, epochs=50, batch_size=10)
    sampler = HardwareSampler(backend=FakeNvmlBackend.with_gpus(1), device="cpu")
    app = make_app(config, sampler=sampler, monitor_interval=0.2)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            panel = app.train_screen.query_one(BatchPanel)
            await wait_until(pilot, lambda: panel.last is not None, what="training to be under way")
            assert app.training
            await send_keys(pilot, "q")
            await wait_for_exit(app, timeout=60)

    asyncio.run(scenario())
    alive = [t.name for t in threading.enumerate()]
    assert TRAIN_THREAD_NAME not in alive
    assert "hardware-monitor" not in alive
    result = app.last_result
    assert isinstance(result, ev.Finished) and result.reason == "stopped"
    assert app.return_code == 0
    last = run_dir / "last.pt"
    Predictor.load(last)  # a usable model…
    checkpoint = load_checkpoint(last)
    assert "optimizer" in checkpoint  # …that training can resume from
    assert checkpoint["trainer"]["position"] > 0 or checkpoint["trainer"]["epoch"] > 0


def test_a_failed_run_shows_why_and_where_the_details_are(prepared_dataset, tmp_path):
    app = make_app(training_config(prepared_dataset, tmp_path / "run", device="cuda:7"))

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.last_result, ev.Failed), what="the failure")
            await pilot.pause()
            failure = app.last_result
            banner = str(app.train_screen.query_one(FinishBanner).content)
            assert "training failed: cuda:7 was asked for" in banner
            assert f"details in {failure.log_path}" in banner
            # The error is the log's newest line, so it stays in view however long the traceback is.
            assert "error: cuda:7 was asked for" in screen_text(app)
            log = "\n".join(strip.text for strip in app.train_screen.query_one(EventLog).lines)
            assert "Traceback" in log
            assert log.rindex("error: cuda:7 was asked for") > log.rindex("Traceback")
            await pilot.press("q")
            await wait_for_exit(app)

    asyncio.run(scenario())
    assert app.return_code == 1  # the CLI's exit code says the run failed


def test_compact_heap_frees_cycles_and_leaves_the_survivors_out_of_later_collections():
    class Node:
        pass

    garbage = Node()
    garbage.me = garbage  # a cycle: only the cycle collector can free it
    dead = weakref.ref(garbage)
    del garbage
    alive = Node()
    alive.me = alive
    try:
        compact_heap()
        assert dead() is None
        # Frozen: no generation lists it any more, so no later pass walks it.
        assert gc.get_freeze_count() > 0 and not any(o is alive for o in gc.get_objects())
        compact_heap()  # again: unfrozen, collected and frozen once more, never freed while alive
        assert not any(o is alive for o in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(o is alive for o in gc.get_objects())


def test_the_heap_is_compacted_after_start_up_frozen_when_a_run_starts_and_compacted_at_its_end(
    prepared_dataset, tmp_path, one_thread, monkeypatch
):
    calls: list[tuple[str, bool, bool]] = []  # (what, a run was started, a trainer is running)

    def noting(what: str):
        return lambda: calls.append((what, app._train_worker is not None, app.trainer is not None))

    monkeypatch.setattr(app_module, "compact_heap", noting("compact"))
    monkeypatch.setattr(gc, "freeze", noting("freeze"))  # only the RunStarted freeze calls it now
    app = make_app(training_config(prepared_dataset, tmp_path / "run", epochs=1))

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert calls == [("compact", False, False)]
            await pilot.press("s")
            await wait_until(pilot, lambda: not app.training, timeout=120, what="the run to finish")
            await pilot.pause()

    asyncio.run(scenario())
    assert calls == [("compact", False, False), ("freeze", True, True), ("compact", True, False)]
