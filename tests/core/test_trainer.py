from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import torch

from captcha_tui.core import events as ev
from captcha_tui.core.checkpoint import load_checkpoint
from captcha_tui.core.dataset import load_dataset, prepare
from captcha_tui.core.model import build_model, to_model_input
from captcha_tui.core.predictor import Predictor
from captcha_tui.core.spec import CodeSpec
from captcha_tui.core.trainer import (
    TrainConfig,
    Trainer,
    TrainingError,
    first_limit,
    lr_factor,
    patience_for,
    peak_learning_rate,
    resolve_init,
    schedule_progress,
    short_run_notice,
    train_step,
    transfer_weights,
)
from captcha_tui.words import describe_event
from tests.helpers import events_of, history_rows, spec_for


def test_end_to_end_run_emits_the_whole_story(trained_run):
    run_dir, events = trained_run
    assert isinstance(events[0], ev.RunStarted)
    assert events[0].train_count + events[0].val_count + events[0].test_count == 300
    assert [e.epoch for e in events_of(events, ev.EpochEnd)] == [1, 2]
    assert events_of(events, ev.BatchProgress), "progress is reported inside each epoch"
    assert all(0 <= e.accuracy <= 1 and e.loss > 0 for e in events_of(events, ev.BatchProgress))
    assert events_of(events, ev.NewBest)[0].epoch == 1
    countdowns = events_of(events, ev.Countdown)
    # The default patience on 240 training images is 50,000 images' worth (209 epochs), not 5: the
    # 2-epoch budget ends the run, and the countdown says so.
    assert [(c.patience_left, c.budget_left, c.ends_by) for c in countdowns][0] == (209, 1, "max_epochs")
    assert countdowns[-1].budget_left == 0 and countdowns[-1].time_left_s is None
    finished = events[-1]
    assert isinstance(finished, ev.Finished) and finished.reason == "max_epochs"
    assert finished.test_accuracy is not None and 0 <= finished.test_char_accuracy <= 1
    assert finished.images_seen >= 2 * 200
    history = history_rows(run_dir)
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"train_accuracy", "val_accuracy", "val_char_accuracy"} <= history[0].keys()


def test_training_learns_something(trained_run):
    _, events = trained_run
    ends = events_of(events, ev.EpochEnd)
    assert ends[-1].train_loss < ends[0].train_loss
    assert ends[-1].train_char_accuracy > 1 / 31  # better than guessing characters


def test_best_checkpoint_predicts_and_carries_its_metadata(trained_run, captcha_dir):
    run_dir, _ = trained_run
    data = load_checkpoint(run_dir / "best.pt")
    assert data.meta.preset == "tiny" and data.meta.spec.max_length == 4
    assert data.optimizer is None, "the best checkpoint is for predicting"
    assert load_checkpoint(run_dir / "last.pt").optimizer is not None
    predictor = Predictor.load(run_dir / "best.pt")
    image = sorted(captcha_dir.iterdir())[0]
    prediction = predictor.predict_image(image)
    assert len(prediction.code) == 4 and all(c in predictor.spec.charset for c in prediction.code)
    assert len(prediction.confidences) == 4 and all(0 < p <= 1 for p in prediction.confidences)


def test_progress_reports_are_coalesced(prepared_dataset, tmp_path):
    events = []
    config = TrainConfig(
        data=prepared_dataset,
        out=tmp_path,
        preset="tiny",
        epochs=1,
        device="cpu",
        batch_size=4,
        report_interval_s=1000.0,
    )
    Trainer(config, events.append).run()
    progress = events_of(events, ev.BatchProgress)
    # 60 batches, but with a long interval only the final batch of the epoch is reported.
    assert len(progress) == 1 and progress[0].batch == progress[0].batches


def test_stop_then_resume_continues_from_the_saved_epoch(prepared_dataset, tmp_path):
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="tiny", epochs=3, device="cpu", batch_size=20
    )
    first: list = []
    trainer = Trainer(config, first.append)

    def stop_in_second_epoch(epoch, batch, size):
        if epoch == 2 and batch == 3:
            trainer.request_stop()

    trainer._step_hook = stop_in_second_epoch
    result = trainer.run()
    assert isinstance(result, ev.Finished) and result.reason == "stopped"
    saved = load_checkpoint(tmp_path / "last.pt").trainer
    # The stop is seen before the next batch: three batches (60 images) of epoch 2 were trained.
    assert saved["epoch"] == 1 and saved["position"] == 60

    # --epochs is the run's total budget: 1 epoch is already spent (and part of the next), so it is refused
    # before anything is written.
    before = (tmp_path / "last.pt").read_bytes()
    refused = Trainer(replace(config, resume=True, epochs=1)).run()
    assert isinstance(refused, ev.Failed) and "\n" not in refused.message
    assert "already trained 1 epoch and part of epoch 2" in refused.message
    assert "--epochs 1 is the run's total epoch budget" in refused.message
    assert "pass --epochs 2 or more" in refused.message
    assert (tmp_path / "last.pt").read_bytes() == before
    # A command to change, not a fault: no traceback, no error.log (issue 25).
    assert refused.usage and refused.traceback == "" and not (tmp_path / "error.log").exists()

    second: list = []
    result = Trainer(replace(config, resume=True), second.append).run()
    assert isinstance(result, ev.Finished) and result.reason == "max_epochs"
    assert events_of(second, ev.RunStarted)[0].start_epoch == 2
    assert [e.epoch for e in events_of(second, ev.EpochEnd)] == [2, 3]
    assert any(
        "resumed" in n.message and "--epochs 3 is the run's total: up to 2 more epochs" in n.message
        for n in events_of(second, ev.Notice)
    )
    history = [row["epoch"] for row in history_rows(tmp_path)]
    assert history == [1, 2, 3]


def test_early_stop_is_announced(prepared_dataset, tmp_path):
    events = []
    config = TrainConfig(
        data=prepared_dataset,
        out=tmp_path,
        preset="tiny",
        epochs=30,
        device="cpu",
        patience=1,
        lr=1e-9,
        schedule="constant",
    )
    result = Trainer(config, events.append).run()
    assert result.reason == "early_stop"
    assert result.epochs_run < 30
    assert any("early stop" in n.message for n in events_of(events, ev.Notice))
    last = events_of(events, ev.Countdown)[-1]
    assert last.patience_left == 0 and last.ends_by == "early_stop"


def test_pause_blocks_until_resumed(prepared_dataset, tmp_path):
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="tiny", epochs=1, device="cpu", batch_size=20
    )
    events: list = []
    trainer = Trainer(config, events.append)
    trainer.pause()
    thread = threading.Thread(target=trainer.run)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive() and not events_of(events, ev.BatchProgress), "paused before the first batch"
    trainer.resume()
    thread.join(60)
    assert not thread.is_alive() and isinstance(events[-1], ev.Finished)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 0}, "batch size"),
        ({"epochs": 0}, "epochs"),
        ({"preset": "huge"}, "unknown preset"),
        ({"device": "cuda:7"}, "cuda:7"),
        ({"label_smoothing": 1.0}, "label smoothing"),
    ],
)
def test_bad_settings_fail_with_a_reason(prepared_dataset, tmp_path, change, message):
    result = Trainer(TrainConfig(data=prepared_dataset, out=tmp_path, **change)).run()
    assert isinstance(result, ev.Failed) and message in result.message


def test_missing_dataset_fails_with_advice(tmp_path):
    result = Trainer(TrainConfig(data=tmp_path / "nothing", out=tmp_path / "run", device="cpu")).run()
    assert isinstance(result, ev.Failed) and "captcha-tui prepare" in result.message


def test_one_cycle_schedule_warms_up_then_decays():
    values = [lr_factor(p / 100, "onecycle") for p in range(101)]
    peak = values.index(max(values))
    assert values[0] < 0.1 and 5 <= peak <= 15 and values[-1] <= 0.02
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1 :], strict=False))
    assert lr_factor(0.5, "constant") == 1.0


def test_the_peak_learning_rate_follows_the_preset_the_set_size_and_a_fine_tune():
    assert peak_learning_rate("fast", 48_000, fine_tune=False) == pytest.approx(3e-3)
    assert peak_learning_rate("crnn-fast", 48_000, fine_tune=False) == pytest.approx(6e-3)
    assert peak_learning_rate("crnn-fast", 48_000, fine_tune=True) == pytest.approx(2e-3)
    # A few hundred images: never above 3e-3 (a CTC preset's 6e-3 overfits them), a third for a fine-tune.
    assert peak_learning_rate("crnn-fast", 240, fine_tune=False) == pytest.approx(3e-3)
    assert peak_learning_rate("crnn-fast", 240, fine_tune=True) == pytest.approx(1e-3)
    assert peak_learning_rate("fast", 240, fine_tune=True) == pytest.approx(1e-3)
    assert peak_learning_rate("crnn-fast", 240, fine_tune=True, lr=0.02) == 0.02  # --lr wins


def test_a_small_set_with_the_default_epochs_is_warned_with_what_to_pass():
    notice = short_run_notice(240, 15)
    assert notice.level == "warning"
    assert "240 training images × 15 epochs is only 3,600 images seen" in notice.message
    assert "try --epochs 250," in notice.message and "--epochs 1000 --time-limit 300" in notice.message
    assert short_run_notice(240, 250) is None  # enough epochs: no warning
    assert short_run_notice(48_000, 15) is None  # a generated set: the defaults suit it
    assert short_run_notice(0, 15) is None


def test_a_time_limit_shorter_than_the_epochs_anneals_on_the_clock():
    # 2 of 15 epochs done, but 600 of 900 s gone: the schedule is two thirds through, not 13%.
    assert schedule_progress(2 / 15, 600, 900) == pytest.approx(2 / 3)
    # The epochs run out first: they set the pace.
    assert schedule_progress(0.5, 100, 900) == 0.5
    assert schedule_progress(0.25, 1e6, None) == 0.25
    # A resumed session's limit covers the rest of the schedule from where it was, never going back.
    assert schedule_progress(0.5, 0, 900, start=0.6) == 0.6
    assert schedule_progress(0.5, 450, 900, start=0.6) == pytest.approx(0.8)
    assert schedule_progress(0.5, 0, None, start=0.6) == 0.6
    # At the limit the learning rate is at its floor.
    assert lr_factor(schedule_progress(0.4, 900, 900), "onecycle") == pytest.approx(0.01)


def test_label_smoothing_spreads_the_target_and_zero_is_plain_cross_entropy():
    torch.manual_seed(0)
    model = build_model("tiny", spec_for(4, 31, (40, 16))).eval()  # eval: the same logits on every call
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # a step that leaves the weights alone
    images = to_model_input(torch.randint(0, 256, (8, 16, 40, 3), dtype=torch.uint8))
    targets = torch.randint(0, 31, (8, 4))
    for smoothing in (0.0, 0.1):
        logits, loss = train_step(model, optimizer, images, targets, label_smoothing=smoothing)
        log_probs = torch.log_softmax(logits.detach().float(), -1).flatten(0, 1)
        right = -log_probs.gather(1, targets.flatten()[:, None]).mean().item()
        spread = -log_probs.mean().item()  # the uniform share, over all 31 characters
        assert right != pytest.approx(spread)
        assert loss.item() == pytest.approx((1 - smoothing) * right + smoothing * spread, rel=1e-5)


@pytest.mark.cuda
def test_trains_on_cuda_with_amp(prepared_dataset, tmp_path):
    import numpy as np

    events = []
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="tiny", epochs=1, device="cuda", amp=True
    )
    # This run's own allocation, not the process's: the peak is reset just before it and measured from
    # what earlier tests left allocated.
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = Trainer(config, events.append).run()
    torch.cuda.synchronize()
    grown = torch.cuda.max_memory_allocated() - before
    assert isinstance(result, ev.Finished), getattr(result, "message", "")
    started = events_of(events, ev.RunStarted)[0]
    assert started.device.startswith("cuda") and started.amp
    # At its peak it held at least the train and validation images (uint8, on the GPU for the whole run)
    # and, for every parameter, float32 weights, gradients and AdamW's two moments.
    split_bytes = sum(
        np.load(prepared_dataset / f"{split}_images.npy", mmap_mode="r").nbytes for split in ("train", "val")
    )
    assert grown >= split_bytes + 4 * 4 * started.parameters, (grown, split_bytes, started.parameters)


def test_time_limit_inside_an_epoch_keeps_the_weights_trained_so_far(prepared_dataset, tmp_path):
    import time

    events: list = []
    config = TrainConfig(
        data=prepared_dataset,
        out=tmp_path,
        preset="tiny",
        epochs=5,
        device="cpu",
        batch_size=10,
        time_limit_s=1.0,
    )
    trainer = Trainer(config, events.append, step_hook=lambda epoch, batch, size: time.sleep(0.2))
    result = trainer.run()
    assert isinstance(result, ev.Finished) and result.reason == "time_limit"
    assert result.epochs_run == 0 and 0 < result.images_seen < 240  # stopped inside the first epoch
    assert result.best_checkpoint is not None and result.test_accuracy is not None
    assert any("out of time in epoch 1" in n.message for n in events_of(events, ev.Notice))


# ---- training time: pauses excluded, a resumed time limit counts its own session ----------------------------

STEP_S = 0.5  # what each training step "takes" on the test clock
PAUSE_S = 1000.0  # how long the pause "lasts": far longer than any time limit below


class TestClock:
    """Training time that the test decides, so nothing depends on how fast this machine is: each step takes
    STEP_S (the step hook moves the clock), and the first reading the trainer takes while paused moves it
    by PAUSE_S, as if the pause it then blocks in lasted that long."""

    __test__ = False  # not a test class

    def __init__(self):
        self.now = 0.0
        self.trainer: Trainer | None = None
        self.read_while_paused = threading.Event()

    def __call__(self) -> float:
        now = self.now
        if self.trainer is not None and self.trainer.paused and not self.read_while_paused.is_set():
            self.now += PAUSE_S
            self.read_while_paused.set()
        return now

    def step(self, epoch: int, batch: int, size: int) -> None:
        self.now += STEP_S


def test_pauses_count_in_neither_the_rate_the_eta_the_time_limit_nor_the_schedule(prepared_dataset, tmp_path):
    """A real run paused from another thread for longer than its whole time limit."""
    clock = TestClock()
    config = TrainConfig(
        data=prepared_dataset,
        out=tmp_path,
        preset="tiny",
        epochs=2,
        device="cpu",
        batch_size=20,  # 12 batches an epoch: 6 s of training on the test clock
        time_limit_s=8.0,
        report_interval_s=0.0,  # a report after every batch
        threads=1,
    )
    events: list = []
    pause_wanted, paused = threading.Event(), threading.Event()

    def on_event(event) -> None:
        events.append(event)
        if isinstance(event, ev.BatchProgress) and (event.epoch, event.batch) == (1, 3):
            pause_wanted.set()  # the other thread pauses now, while the trainer waits here
            assert paused.wait(60)

    trainer = Trainer(config, on_event, step_hook=clock.step, clock=clock)
    clock.trainer = trainer
    worker = threading.Thread(target=trainer.run)
    worker.start()
    assert pause_wanted.wait(60)
    trainer.pause()
    paused.set()
    assert clock.read_while_paused.wait(60), "the trainer never blocked in the pause"
    trainer.resume()
    worker.join(120)
    assert not worker.is_alive()

    assert [e.state for e in events_of(events, ev.StateChanged)] == ["paused", "running"]
    finished = events[-1]
    # 16 steps of 0.5 s reach the 8 s limit in epoch 2; the 1000 s pause did not end the run in epoch 1.
    assert isinstance(finished, ev.Finished) and finished.reason == "time_limit"
    assert finished.images_seen == 16 * 20 and finished.elapsed_s == pytest.approx(8.0)
    after_pause = next(e for e in events_of(events, ev.BatchProgress) if (e.epoch, e.batch) == (1, 4))
    assert after_pause.images_per_s == pytest.approx(80 / 2.0)  # 4 batches in 2 s, not in 1002 s
    assert after_pause.eta_s == pytest.approx(160 / 40)
    first = events_of(events, ev.EpochEnd)[0]
    assert first.seconds == pytest.approx(6.0) and first.images_per_s == pytest.approx(40.0)
    # The schedule's clock: epoch 1's last step came 5.5 s into the 8 s limit (not 1005.5 s, the floor).
    assert first.learning_rate == pytest.approx(3e-3 * lr_factor(5.5 / 8.0, "onecycle"))
    countdown = events_of(events, ev.Countdown)[0]
    assert countdown.time_left_s == pytest.approx(2.0) and countdown.ends_by == "time_limit"


def test_a_resumed_time_limit_counts_this_session_only(prepared_dataset, tmp_path):
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="tiny", epochs=3, device="cpu", batch_size=20, threads=1
    )
    clock = TestClock()
    trainer = Trainer(config, step_hook=clock.step, clock=clock)

    def stop_in_epoch_2(epoch, batch, size):
        clock.step(epoch, batch, size)
        if (epoch, batch) == (2, 2):
            trainer.request_stop()

    trainer._step_hook = stop_in_epoch_2
    first = trainer.run()
    assert first.reason == "stopped" and first.elapsed_s == pytest.approx(14 * STEP_S)  # 7 s

    events: list = []
    clock = TestClock()
    resumed = replace(config, resume=True, time_limit_s=3.0)  # less than the 7 s the run has behind it
    result = Trainer(resumed, events.append, step_hook=clock.step, clock=clock).run()
    assert isinstance(result, ev.Finished) and result.reason == "time_limit"
    # This session trained its own 3 s (6 steps) on top of the first session's 280 images.
    assert result.images_seen == 280 + 6 * 20 and result.elapsed_s == pytest.approx(7.0 + 3.0)
    assert events_of(events, ev.RunStarted)[0].time_limit_s == 3.0
    assert any("counts this session's training only" in n.message for n in events_of(events, ev.Notice))
    saved = load_checkpoint(tmp_path / "last.pt").trainer  # out of time inside an epoch: progress kept
    assert (saved["epoch"], saved["position"]) == (1, 40 + 6 * 20)


def test_the_countdown_names_the_rule_that_ends_the_run_first():
    # (budget left, patience left, time left, seconds an epoch)
    assert first_limit(3, 5, None, 10.0) == "max_epochs"
    assert first_limit(8, 2, None, 10.0) == "early_stop"
    assert first_limit(8, 5, 25.0, 10.0) == "time_limit"  # 2.5 epochs of time left
    assert first_limit(2, 2, 20.0, 10.0) == "max_epochs"  # ties go to the certain end
    assert first_limit(3, 2, 20.0, 10.0) == "time_limit"

    def countdown(**change) -> ev.Countdown:
        values = dict(
            best_accuracy=0.9,
            best_epoch=4,
            patience_left=2,
            patience=5,
            budget_left=3,
            time_left_s=None,
            ends_by="early_stop",
        )
        return ev.Countdown(**{**values, **change})

    assert countdown().summary() == "stops after 2 more epochs without improvement"
    assert countdown(patience_left=0).summary() == "stops now: no improvement for its whole patience"
    assert countdown(ends_by="max_epochs").summary() == "ends after 3 more epochs (its epoch budget)"
    assert countdown(ends_by="max_epochs", budget_left=0).summary() == "ends now: its epoch budget is done"
    assert (
        countdown(ends_by="time_limit", time_left_s=240.0).summary() == "ends in about 4 min (its time limit)"
    )


def test_the_default_patience_follows_the_set_and_the_time_limit():
    defaults = TrainConfig()
    # The default 48,000 generated images: 5 epochs, which can stop a run within its 15-epoch budget.
    assert patience_for(defaults.patience, False, 48_000) == 5 < defaults.epochs
    # 240 hand-labelled images: 50,000 images' worth, not 5 epochs (1,200 images: seconds at chance level).
    assert patience_for(None, False, 240) == 209
    # Under a time limit or an image budget the run uses it all (the schedule anneals over it).
    assert patience_for(None, True, 240) is None and patience_for(None, True, 12_800) is None
    # A patience given is kept, time limit or not.
    assert patience_for(7, True, 240) == 7 and patience_for(3, False, 48_000) == 3


def test_an_image_budget_ends_the_run_and_the_schedule_on_its_last_image(
    prepared_dataset, tmp_path, one_thread
):
    events: list = []
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="tiny", device="cpu", epochs=1000, train_images=500
    )
    result = Trainer(config, events.append).run()
    # 240 training images in mini-batches of 100, 100 and 40: 480 after two epochs, and the first batch of
    # epoch 3 reaches the budget (580): the run stops before the next.
    assert isinstance(result, ev.Finished) and result.reason == "image_budget"
    assert result.images_seen == 580 and result.test_accuracy is not None
    started = events_of(events, ev.RunStarted)[0]
    assert started.patience is None  # a budget the schedule anneals over: no early stop by default
    countdowns = events_of(events, ev.Countdown)
    assert [(c.images_left, c.ends_by) for c in countdowns] == [(260, "image_budget"), (20, "image_budget")]
    assert countdowns[0].summary() == "ends after 260 more images (its image budget)"
    # The one-cycle schedule spans the 500 images, not the 1,000 epochs: well down after epoch 2.
    rates = [e.learning_rate for e in events_of(events, ev.EpochEnd)]
    assert rates[-1] < started.learning_rate * 0.1
    assert "trained on its budget of images" in describe_event(result)


def test_a_time_limited_run_on_a_small_set_is_not_stopped_early(prepared_dataset, tmp_path, one_thread):
    # Issue 21: a 300-image fine-tune under --time-limit 290 was stopped by patience after 4-6 seconds.
    events: list = []
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="tiny", device="cpu", epochs=100_000, time_limit_s=2.0
    )
    result = Trainer(config, events.append).run()
    assert isinstance(result, ev.Finished) and result.reason == "time_limit"
    assert events_of(events, ev.RunStarted)[0].patience is None
    countdowns = events_of(events, ev.Countdown)
    assert countdowns and all(c.patience_left is None and c.ends_by == "time_limit" for c in countdowns)
    assert "patience off" in describe_event(events_of(events, ev.RunStarted)[0])


# ---- fine-tuning from a checkpoint ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_charset_dataset(captcha_dir, prepared_dataset, tmp_path_factory):
    """The same captchas read with another charset: reversed (so no character keeps its index) plus '#'."""
    charset = "#" + load_dataset(prepared_dataset).spec.charset[::-1]
    out = tmp_path_factory.mktemp("other_charset") / "dataset"
    prepare(captcha_dir, out, charset=charset, workers=1, seed=0)
    return out


def test_fine_tuning_with_the_same_charset_starts_from_the_checkpoint_weights(
    tiny_run, prepared_dataset, tmp_path, one_thread
):
    source = tiny_run / "best.pt"
    events: list = []
    # A vanishing learning rate: after the epoch the weights are still the ones it started from.
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="tiny", epochs=1, device="cpu", init=source, lr=1e-12
    )
    result = Trainer(config, events.append).run()
    assert isinstance(result, ev.Finished), getattr(result, "message", "")
    start, tuned = load_checkpoint(source), load_checkpoint(tmp_path / "last.pt")
    assert torch.allclose(tuned.model["stem.0.weight"], start.model["stem.0.weight"], atol=1e-8)
    assert torch.allclose(tuned.model["head.2.weight"], start.model["head.2.weight"], atol=1e-8)
    notices = [n.message for n in events_of(events, ev.Notice)]
    layers = len({name.rpartition(".")[0] for name in start.model})
    assert f"fine-tuning from {source}: {layers} of {layers} layers copied" in notices
    started = events_of(events, ev.RunStarted)[0]
    assert started.init == str(source) and started.learning_rate == 1e-12  # a given learning rate is kept
    assert tuned.meta.init == str(source) and load_checkpoint(tmp_path / "best.pt").meta.init == str(source)


def test_fine_tuning_with_another_charset_rebuilds_the_output_layer(
    tiny_run, other_charset_dataset, tmp_path, one_thread
):
    source = tiny_run / "best.pt"
    events: list = []
    config = TrainConfig(
        data=other_charset_dataset, out=tmp_path, preset="tiny", epochs=1, device="cpu", init=source
    )
    result = Trainer(config, events.append).run()
    assert isinstance(result, ev.Finished), getattr(result, "message", "")
    notice = next(n.message for n in events_of(events, ev.Notice) if n.message.startswith("fine-tuning"))
    old = load_checkpoint(source).meta.spec.charset
    assert f"output layer rebuilt for charset {old!r} ≠ '#{old[::-1]}'" in notice
    assert f"the rows of the {len(old)} characters both charsets share copied" in notice
    layers = len({name.rpartition(".")[0] for name in load_checkpoint(source).model})
    assert f"{layers - 1} of {layers} layers copied" in notice
    # A fine-tune's default peak learning rate is a third of a new run's; resuming it keeps that.
    assert events_of(events, ev.RunStarted)[0].learning_rate == pytest.approx(3e-3 / 3)
    again: list = []
    Trainer(replace(config, init=None, resume=True, epochs=2), again.append).run()
    started = events_of(again, ev.RunStarted)[0]
    assert started.learning_rate == pytest.approx(1e-3) and started.init == str(source)


def test_transfer_weights_copies_output_rows_by_character():
    torch.manual_seed(0)
    source_spec = CodeSpec.fixed("abcd", 2, (40, 16))
    target_spec = CodeSpec.fixed(
        "#dcxa", 3, (40, 16)
    )  # d, c and a shared, at other indices; one more position
    source, target = build_model("tiny", source_spec), build_model("tiny", target_spec)
    fresh = target.head[2].weight.detach().clone()
    done = transfer_weights(target, source.state_dict(), source_spec, target_spec)
    assert done.output_rebuilt and done.shared_characters == 3 and done.copied == done.layers - 1
    assert torch.equal(target.stem[0].weight, source.stem[0].weight)
    theirs, mine = source.head[2].weight, target.head[2].weight
    for position in range(2):
        for char in "dca":
            row = position * 5 + target_spec.charset.index(char)
            assert torch.equal(mine[row], theirs[position * 4 + source_spec.charset.index(char)])
        assert torch.equal(mine[position * 5], fresh[position * 5])  # '#' is new: left as built
    assert torch.equal(mine[2 * 5 :], fresh[2 * 5 :])  # the third position is new too


def test_fine_tuning_from_another_preset_is_refused_with_the_preset_named(
    tiny_run, prepared_dataset, tmp_path
):
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="fast", device="cpu", init=tiny_run / "best.pt"
    )
    result = Trainer(config).run()
    assert isinstance(result, ev.Failed)
    assert "holds a 'tiny' model and this run's preset is 'fast'; pass --preset tiny" in result.message


def test_init_and_resume_together_are_refused(tiny_run, prepared_dataset, tmp_path):
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="tiny", init=tiny_run / "best.pt", resume=True
    )
    result = Trainer(config).run()
    assert isinstance(result, ev.Failed) and "--init and --resume do not go together" in result.message


def test_a_bad_init_gives_the_one_line_checkpoint_error(prepared_dataset, tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    for init, words in (
        (tmp_path / "nowhere.pt", "checkpoint not found"),
        (tmp_path / "empty.pt", "is empty"),
    ):
        config = TrainConfig(
            data=prepared_dataset, out=tmp_path / "run", preset="tiny", device="cpu", init=init
        )
        result = Trainer(config).run()
        assert isinstance(result, ev.Failed) and "\n" not in result.message
        assert result.message.startswith("cannot fine-tune: ") and words in result.message


def test_init_base_says_so_when_this_install_has_no_base_model(tmp_path, monkeypatch):
    from captcha_tui.core import trainer

    assert resolve_init(tmp_path / "best.pt") == tmp_path / "best.pt"
    monkeypatch.setattr(trainer, "base_model_path", lambda: None)
    with pytest.raises(TrainingError, match="this install of captcha-tui has no base model"):
        resolve_init("base")
