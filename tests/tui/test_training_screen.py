"""The training screen against real training runs of the tiny preset on the CPU."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import shutil
import threading
import weakref

import pytest
from textual.command import CommandPalette

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

from ..helpers import history_rows
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
            etas = _record_results(batch_panel, "run_eta")
            await pilot.press("s")
            await wait_until(pilot, lambda: batch_panel.last is not None, what="a batch report")
            await wait_until(pilot, lambda: not app.training, timeout=120, what="the run to finish")
            await pilot.pause()

            assert batch_panel.losses and batch_panel.accuracies
            assert batch_panel.batches_done > 0
            text = screen_text(app)
            assert "img/s · epoch ETA" in text
            # No time limit, and patience 5 cannot end two epochs early: the epoch budget ends the run.
            drawn = [eta for eta in etas if eta]  # "" once the run has ended
            assert drawn and all(re.fullmatch(r"run ETA ~\d+ s \(its epoch budget\)", e) for e in drawn), etas
            assert "run ETA" not in text  # the run is over: no ETA left on the screen
            chart = screen.query_one(HistoryChart)
            assert chart.epochs == [1, 2]
            assert len(chart.val_accuracy) == 2 and chart.best is not None

            countdown = str(screen.query_one(CountdownLine).content)
            assert countdown != countdown_before
            # Two epochs with patience 5: the epoch budget, not an early stop, ends the run.
            assert (
                countdown
                == f"best {chart.best[1]:.3f} at epoch {chart.best[0]} · ends now: its epoch budget is done"
            )

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


def _record_results(obj, name: str) -> list:
    """Wrap ``obj.name`` on the instance so each call's result is recorded."""
    results: list = []
    real = getattr(obj, name)

    def wrapper(*args, **kwargs):
        results.append(real(*args, **kwargs))
        return results[-1]

    setattr(obj, name, wrapper)
    return results


def _batch_report(batch: int, batches: int = 1000) -> ev.BatchProgress:
    return ev.BatchProgress(
        epoch=1,
        batch=batch,
        batches=batches,
        loss=1.0 / batch,
        accuracy=batch / batches,
        char_accuracy=batch / batches,
        images_per_s=1000.0,
        eta_s=float(batches - batch),
        batch_size=4,
    )


def _record_calls(obj, name: str) -> list:
    """Wrap ``obj.name`` on the instance so each call's first argument (or None) is recorded."""
    calls: list = []
    real = getattr(obj, name)

    def wrapper(*args, **kwargs):
        calls.append(args[0] if args else None)
        return real(*args, **kwargs)

    setattr(obj, name, wrapper)
    return calls


def test_a_thousand_batch_reports_between_drains_reach_the_panel_once_per_drain(prepared_dataset, tmp_path):
    # No training runs, so the app's 0.1 s drain timer stays paused and the test is the clock: a thread
    # posts 100 batch reports (and one log notice) between each of 10 drains, far faster than any timer.
    app = make_app(training_config(prepared_dataset, tmp_path / "run"))
    reports = [_batch_report(i) for i in range(1, 1001)]
    notices = [ev.Notice(f"notice {tick}") for tick in range(10)]

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            panel = app.train_screen.query_one(BatchPanel)
            shown = _record_calls(panel, "show_batch")
            builds = _record_calls(panel, "lines")  # one per repaint of the panel's text
            logged = _record_calls(app.train_screen, "apply_event")
            drains = 0
            for tick in range(10):
                chunk = reports[tick * 100 : (tick + 1) * 100]
                poster = threading.Thread(
                    target=lambda chunk=chunk, tick=tick: [
                        app.event_buffer.put(e) for e in [*chunk[:50], notices[tick], *chunk[50:]]
                    ]
                )
                poster.start()
                poster.join()
                app.flush_training_events()
                drains += 1
            await pilot.pause()
            app.flush_training_events()  # a drain with nothing new posts nothing
            drains += 1
            await pilot.pause()

            assert app.event_buffer.received == 1010
            assert 1 <= len(builds) <= len(shown) == 10 < drains  # one update per non-empty drain, at most
            assert [e.batch for e in shown] == list(range(100, 1001, 100))  # the newest at each drain
            assert shown[-1] is reports[-1] and panel.last is reports[-1]
            assert logged == notices  # other events are never coalesced: all of them, in order
            assert "batch 1000/1000" in screen_text(app)

    asyncio.run(scenario())


def test_a_real_run_reaches_the_ui_only_through_the_drains(prepared_dataset, tmp_path, one_thread):
    # Every batch reported (no throttle at the source) and small batches, so reports pile up between drains.
    config = training_config(
        prepared_dataset, tmp_path / "run", epochs=2, batch_size=4, report_interval_s=0.0
    )
    app = make_app(config)
    drains = _record_calls(app, "flush_training_events")  # before mounting: the timer takes the wrapper
    put = _record_calls(app.event_buffer, "put")  # before training: the trainer takes the wrapper
    updates: list[TrainingUpdate] = []

    def count_updates(message) -> None:
        if isinstance(message, TrainingUpdate):
            updates.append(message)

    async def scenario():
        async with app.run_test(size=SIZE, message_hook=count_updates) as pilot:
            await pilot.press("s")
            await wait_until(pilot, lambda: not app.training, timeout=120, what="the run to finish")
            await pilot.pause()
            return app.train_screen.query_one(BatchPanel).last

    last_shown = asyncio.run(scenario())
    assert isinstance(app.last_result, ev.Finished)
    batch_reports = [e for e in put if isinstance(e, ev.BatchProgress)]
    assert len(batch_reports) >= 2 * 60  # every batch of both epochs was reported (240 images, 4 a batch)
    assert 1 <= len(updates) <= len(drains)  # at most one message per drain
    assert last_shown is batch_reports[-1]  # the final report is never lost to coalescing
    delivered = [e for u in updates for e in u.events]
    assert delivered == [e for e in put if not isinstance(e, ev.BatchProgress)]  # every other event, in order


def test_quit_while_training_saves_last_checkpoint_and_leaves_no_thread(
    prepared_dataset, tmp_path, one_thread
):
    from captcha_tui.core.hardware import HardwareSampler
    from tests.fake_nvml import FakeNvmlBackend

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
    assert checkpoint.optimizer is not None  # …that training can resume from
    assert checkpoint.trainer["position"] > 0 or checkpoint.trainer["epoch"] > 0


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


def test_starting_a_stopped_fine_tune_again_resumes_it(prepared_dataset, tiny_run, tmp_path, one_thread):
    init = tiny_run / "best.pt"
    config = training_config(prepared_dataset, tmp_path / "run", epochs=50, batch_size=10, init=init)
    app = make_app(config)

    def log() -> str:  # the lines joined back as written (the log wraps them at spaces, which it keeps)
        return "".join(strip.text for strip in app.train_screen.query_one(EventLog).lines)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            panel = app.train_screen.query_one(BatchPanel)
            header = app.train_screen.query_one("#run-header")
            assert f"fine-tune of {init}" in str(header.content)  # before the run starts…
            await pilot.press("s")
            await wait_until(pilot, lambda: panel.last is not None, what="training to be under way")
            assert f"fine-tune of {init}" in str(header.content)  # …and as the run reports it
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.last_result, ev.Finished), what="the stop")
            assert app.last_result.reason == "stopped"
            await pilot.press("s")  # again: it carries on from its last.pt; --init and --resume would clash
            await wait_until(pilot, lambda: "resumed from" in log(), timeout=60, what="the resumed run")
            assert not isinstance(app.last_result, ev.Failed)
            assert log().count(f"fine-tuning from {init}") == 1
            await send_keys(pilot, "q")
            await wait_for_exit(app, timeout=60)

    asyncio.run(scenario())
    assert load_checkpoint(tmp_path / "run" / "last.pt").meta.init == str(init)


def _flat(text: str) -> str:
    """Text with its whitespace dropped: the event log wraps long lines anywhere, paths included."""
    return "".join(text.split())


def _offered(app, key: str) -> bool:
    """The footer shows ``key`` (the footer itself repaints only once the app has had a key)."""
    binding = app.screen.active_bindings.get(key)
    return binding is not None and binding.enabled and binding.binding.show


def _log_text(app) -> str:
    return _flat("".join(strip.text for strip in app.train_screen.query_one(EventLog).lines))


def test_a_relaunch_shows_the_last_run_and_r_resumes_it(prepared_dataset, run_copy, one_thread):
    """A finished one-epoch run (best.pt, last.pt, history.jsonl) and a config that allows two epochs."""
    app = make_app(training_config(prepared_dataset, run_copy, epochs=2))
    saved = history_rows(run_copy)
    assert len(saved) == 1

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            chart = app.train_screen.query_one(HistoryChart)
            await wait_until(pilot, lambda: chart.epochs == [1], what="the last run's history in the chart")
            assert chart.val_accuracy == [saved[0]["val_accuracy"]]
            assert chart.best == (1, saved[0]["val_accuracy"])
            # The line under the chart speaks of the epoch the chart shows, not of one still to come…
            countdown = app.train_screen.query_one(CountdownLine)
            old_run = f"best {saved[0]['val_accuracy']:.3f} at epoch 1 · last run: up to epoch 1"
            assert str(countdown.content) == old_run
            app.train_screen.show_config(app.config, "cpu")  # …even when the device is shown again
            assert str(countdown.content) == old_run
            log = _log_text(app)
            assert _flat(f"last run in {run_copy}: 1 epoch,") in log
            assert _flat(f"best validation {saved[0]['val_accuracy'] * 100:.1f}% at epoch 1") in log
            assert _flat("r resumes it") in log and _flat("e reads captchas with its best.pt") in log
            assert _offered(app, "r")  # in the footer

            await pilot.press("r")
            await wait_until(pilot, lambda: not app.training and app.last_result, timeout=120, what="the run")
            await pilot.pause()
            log = _log_text(app)
            assert _flat("resuming at epoch 2") in log
            assert chart.epochs == [1, 2]  # the resumed run kept the epoch it carried on from
            assert [row["epoch"] for row in history_rows(run_copy)] == [1, 2]
            assert not _offered(app, "r")  # both epochs are done

    asyncio.run(scenario())


@pytest.mark.parametrize("typed", [frozenset({"out"}), frozenset({"out", "epochs"})])
def test_r_resumes_the_last_run_with_its_own_epoch_budget_unless_one_was_typed(
    prepared_dataset, run_copy, one_thread, typed
):
    """`captcha-tui --out runs/x` on a run of 2 epochs that stopped after 1: r carries it on to its own
    2, as `train --resume --out runs/x` does, not to the dashboard's budget (here 1: nothing left, and
    r was not offered). An --epochs typed on the line wins."""
    config_file = run_copy / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "epochs": 2}))
    app = make_app(training_config(prepared_dataset, run_copy, epochs=1), given_options=typed)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            chart = app.train_screen.query_one(HistoryChart)
            await wait_until(pilot, lambda: chart.epochs == [1], what="the last run's history in the chart")
            await pilot.pause()
            if "epochs" in typed:
                assert _flat("its 1 epoch is done") in _log_text(app) and not _offered(app, "r")
                return
            assert _flat("r resumes it (up to epoch 2)") in _log_text(app) and _offered(app, "r")
            await pilot.press("r")
            await wait_until(pilot, lambda: not app.training and app.last_result, timeout=120, what="the run")
            assert isinstance(app.last_result, ev.Finished) and app.last_result.reason == "max_epochs"
            assert [row["epoch"] for row in history_rows(run_copy)] == [1, 2]

    asyncio.run(scenario())


def test_r_resumes_on_the_runs_own_dataset_and_a_stop_then_r_keeps_its_recipe(
    prepared_dataset, run_copy, tmp_path, one_thread
):
    """`captcha-tui --out runs/x` where the default dataset is missing but runs/x trained on its own: r is
    offered and trains there; stopped and resumed again (r), it keeps that data and its 50 epochs (it fell
    back on the dashboard's, whose dataset is missing and whose one epoch was spent)."""
    config_file = run_copy / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "epochs": 50, "batch_size": 4}))
    config = training_config(tmp_path / "no-dataset", run_copy, epochs=1)
    app = make_app(config, image_dir=tmp_path / "no-images", given_options={"out"})

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: _offered(app, "r"), what="r, for the run's own dataset")
            assert app.dataset is None
            for _ in range(2):
                await pilot.press("r")
                await wait_until(
                    pilot,
                    lambda: app.train_screen.query_one(BatchPanel).last is not None,
                    what="training under way",
                )
                assert app.trainer.config.epochs == 50 and app.trainer.config.data == prepared_dataset
                await pilot.press("s")
                await wait_until(pilot, lambda: not app.training, timeout=120, what="the stop")
                await pilot.pause()
                assert isinstance(app.last_result, ev.Finished) and app.last_result.reason == "stopped"
                app.train_screen.query_one(BatchPanel).last = None

    asyncio.run(scenario())


def test_a_damaged_history_keeps_what_can_be_read(prepared_dataset, run_copy):
    history = run_copy / "history.jsonl"
    history.write_text(history.read_text() + "{not json\n")
    (run_copy / "last.pt").unlink()
    app = make_app(training_config(prepared_dataset, run_copy, epochs=2))

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            chart = app.train_screen.query_one(HistoryChart)
            await wait_until(pilot, lambda: chart.epochs == [1], what="the readable epoch")
            log = _log_text(app)
            assert _flat("1 damaged lines of its history skipped") in log
            assert _flat("r resumes") not in log  # no last.pt to resume from
            assert not _offered(app, "r")

    asyncio.run(scenario())


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


def _footer(app) -> dict[str, str]:
    """The keys the footer offers now, with what each says; every one must act (none greyed out)."""
    shown = {key: b for key, b in app.screen.active_bindings.items() if b.binding.show}
    assert all(b.enabled for b in shown.values()), {k: b.binding.description for k, b in shown.items()}
    return {key: b.binding.description for key, b in shown.items()}


def test_the_footer_offers_only_the_keys_that_act_now(prepared_dataset, run_copy, one_thread):
    # A budget and patience that cannot run out while the keys are pressed: the test stops the run.
    config = training_config(prepared_dataset, run_copy, epochs=100_000, patience=100_000, batch_size=4)
    app = make_app(config)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: "r" in _footer(app), what="the last run's last.pt to be offered")
            keys = _footer(app)
            assert keys["s"] == "start" and keys["r"] == "resume" and "p" not in keys
            assert "g" not in keys  # there is a dataset already

            await pilot.press("r")
            panel = app.train_screen.query_one(BatchPanel)
            await wait_until(pilot, lambda: panel.last is not None, what="training to be under way")
            keys = _footer(app)
            assert "r" not in keys and "o" not in keys  # nothing to resume or prepare while it trains
            assert keys["s"] == "stop" and keys["p"] == "pause"

            await send_keys(pilot, "p")
            await wait_until(pilot, lambda: app.trainer.paused, what="the pause")
            assert _footer(app)["p"] == "continue" and "r" not in _footer(app)
            await wait_until(pilot, lambda: "p continue" in screen_text(app), what="the footer to say it")
            await send_keys(pilot, "p")
            await wait_until(pilot, lambda: not app.trainer.paused, what="training to carry on")
            assert _footer(app)["p"] == "pause"

            # s, as its binding runs it; read the footer's keys before the loop can end the run (a stop
            # takes a batch: waiting here for the stopping state would race the training thread).
            await app.run_action(app.screen.active_bindings["s"].binding.action)
            keys = _footer(app)  # stopping: it saves last.pt, no key can hurry or undo that
            assert "s" not in keys and "p" not in keys and "r" not in keys
            await wait_until(pilot, lambda: not app.training, timeout=60, what="the stop")
            await pilot.pause()
            assert app.last_result.reason == "stopped"
            keys = _footer(app)
            assert keys["s"] == "start" and keys["r"] == "resume" and "p" not in keys
            await wait_until(pilot, lambda: "r resume" in screen_text(app), what="the footer to offer r")
            assert "pause" not in screen_text(app).splitlines()[-1]

    asyncio.run(scenario())


def test_the_whole_runs_eta_names_the_time_limit_and_is_a_bound_under_patience(
    prepared_dataset, tmp_path, one_thread
):
    # A time limit far sooner than a budget of a million epochs, and patience short of both: the ETA is
    # the time limit's, said as a bound (an early stop may come first).
    config = training_config(
        prepared_dataset, tmp_path / "run", epochs=1_000_000, patience=2, time_limit_s=3600.0
    )
    app = make_app(config)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            panel = app.train_screen.query_one(BatchPanel)
            etas = _record_results(panel, "run_eta")  # each one drawn
            await pilot.press("s")
            await wait_until(pilot, lambda: any(etas), what="a batch report")
            assert panel.last.time_left_s is not None and 0 < panel.last.time_left_s <= 3600
            await send_keys(pilot, "s")  # or an early stop ends it: either way the run ends soon
            await wait_until(pilot, lambda: not app.training, timeout=60, what="the end of the run")
            await pilot.pause()
            assert all(
                re.fullmatch(r"run ETA ≤ ~\d+ min \(its time limit; sooner on an early stop\)", eta)
                for eta in etas
                if eta  # "" once the run has ended
            ), etas
            assert "run ETA" not in screen_text(app)

    asyncio.run(scenario())


def test_a_new_run_beside_an_earlier_one_goes_to_its_own_folder_and_s_carries_that_one_on(
    prepared_dataset, tiny_run, tmp_path, one_thread
):
    """Yesterday's run in the run folder: s trains beside it (run-2) without touching it, and after a
    stop, s carries on run-2, not yesterday's."""
    earlier = tmp_path / "run"
    shutil.copytree(tiny_run, earlier)
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    app = make_app(training_config(prepared_dataset, earlier, epochs=50, batch_size=10))
    beside = tmp_path / "run-2"

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            panel = app.train_screen.query_one(BatchPanel)
            await pilot.press("s")
            await wait_until(pilot, lambda: panel.last is not None, what="training to be under way")
            assert app.config.out == beside
            assert f"{earlier}holdsanearlierrun,keptasitis:thisonegoesto{beside}" in _log_text(app)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.last_result, ev.Finished), what="the stop")
            assert app.last_result.last_checkpoint == str(beside / "last.pt")
            await pilot.press("s")  # carries on run-2 from its last.pt
            await wait_until(pilot, lambda: "resumedfrom" in _log_text(app), timeout=60, what="the resume")
            assert f"resumedfrom{beside / 'last.pt'}" in _log_text(app)
            await send_keys(pilot, "q")
            await wait_for_exit(app, timeout=60)

    asyncio.run(scenario())
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before
    assert not (tmp_path / "run-3").exists()


def test_the_command_palette_offers_the_keys_that_act_now(prepared_dataset, tmp_path, one_thread):
    """Ctrl+P listed only Textual's own commands (keys, screenshot, theme, quit); now the app's keys that
    act on the screen it was opened from are there too, with their key, and run as the key does."""
    app = make_app(training_config(prepared_dataset, tmp_path / "run", epochs=50))

    def offered(screen) -> list[str]:
        return [command.title for command in app.get_system_commands(screen)]

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            titles = offered(app.screen)
            assert {"Start (s)", "Device (d)", "Eval (e)", "Label (l)", "Runs (h)"} <= set(titles), titles
            assert "Stop (s)" not in titles and "Pause (p)" not in titles
            await pilot.press("ctrl+p")
            await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
            await pilot.press(*"start", "enter")
            await wait_until(pilot, lambda: app.training, what="training started from the palette")
            titles = offered(app.train_screen)
            assert "Stop (s)" in titles and "Pause (p)" in titles and "Start (s)" not in titles
            app.action_stop_training()
            await wait_until(pilot, lambda: not app.training, timeout=120, what="the run to stop")

    asyncio.run(scenario())
