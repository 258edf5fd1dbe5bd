"""The Trainer end to end: a run's events, its stop rules in action, pauses, resumes and the clock."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import torch

from captcha_tui.core import events as ev
from captcha_tui.core.checkpoint import load_checkpoint
from captcha_tui.core.model import build_model, to_model_input
from captcha_tui.core.predictor import Predictor
from captcha_tui.core.runs import read_run
from captcha_tui.core.train import TrainConfig, Trainer, lr_factor, train_step
from captcha_tui.core.train.stopping import best_epoch
from captcha_tui.tui.run_info import read_run_summary
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
    log_before = (tmp_path / "train.log").read_bytes()
    refused = Trainer(replace(config, resume=True, epochs=1)).run()
    assert isinstance(refused, ev.Failed) and "\n" not in refused.message
    assert "already trained 1 epoch and part of epoch 2" in refused.message
    assert "--epochs 1 is the run's total epoch budget" in refused.message
    assert "pass --epochs 2 or more" in refused.message
    assert (tmp_path / "last.pt").read_bytes() == before
    # Nor logged: the run's record (`captcha-tui runs`) still ends with its own stop, not "failed".
    assert (tmp_path / "train.log").read_bytes() == log_before
    assert read_run(tmp_path).status == "stopped"
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


def test_more_epochs_for_a_finished_run_train_on_a_new_gentler_cycle(prepared_dataset, tmp_path):
    """`--resume --epochs 4` on a run that finished its 2: the schedule had ended at its floor, where the
    two epochs added would learn nothing; they follow a new cycle at a fine-tune's peak instead, and a stop
    and resume inside it carries that cycle on."""
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset="tiny", epochs=2, device="cpu", batch_size=20
    )
    first: list = []
    assert Trainer(config, first.append).run().reason == "max_epochs"
    peak = events_of(first, ev.RunStarted)[0].learning_rate
    floor = history_rows(tmp_path)[-1]["learning_rate"]
    assert floor < peak * 0.02  # the one-cycle's end

    second: list = []
    trainer = Trainer(replace(config, resume=True, epochs=4), second.append)

    def stop_in_fourth_epoch(epoch, batch, size):
        if epoch == 4 and batch == 3:
            trainer.request_stop()

    trainer._step_hook = stop_in_fourth_epoch
    assert trainer.run().reason == "stopped"
    gentle = events_of(second, ev.RunStarted)[0].learning_rate
    assert gentle == pytest.approx(peak / 3)
    assert any("schedule had ended" in n.message for n in events_of(second, ev.Notice))
    # Half-way through the new cycle, the learning rate is far above the floor the run had ended on.
    assert events_of(second, ev.EpochEnd)[0].learning_rate > 10 * floor
    saved = load_checkpoint(tmp_path / "last.pt").trainer
    assert saved["cycle_origin"] == [2.0, 2 * 240]

    third: list = []
    assert Trainer(replace(config, resume=True, epochs=4), third.append).run().reason == "max_epochs"
    assert events_of(third, ev.RunStarted)[0].learning_rate == pytest.approx(gentle)  # the same cycle
    assert not any("schedule had ended" in n.message for n in events_of(third, ev.Notice))
    assert [row["epoch"] for row in history_rows(tmp_path)] == [1, 2, 3, 4]
    assert history_rows(tmp_path)[-1]["learning_rate"] < gentle * 0.02  # the new cycle ends at its floor
    # The budget already spent is still refused, not restarted.
    refused = Trainer(replace(config, resume=True, epochs=4)).run()
    assert isinstance(refused, ev.Failed) and "nothing to train" in refused.message

    # That cycle ended too: more epochs get a cycle of their own again, not its floor.
    fourth: list = []
    assert Trainer(replace(config, resume=True, epochs=6), fourth.append).run().reason == "max_epochs"
    assert any("schedule had ended" in n.message for n in events_of(fourth, ev.Notice))
    assert events_of(fourth, ev.EpochEnd)[0].learning_rate > 10 * floor
    assert load_checkpoint(tmp_path / "last.pt").trainer["cycle_origin"] == [4.0, 4 * 240]


def test_a_new_cycle_stopped_before_its_first_step_restarts_on_the_next_resume(prepared_dataset, tmp_path):
    """A run that spent its image budget inside an epoch, resumed with a larger one and stopped before its
    first step: last.pt (saved for the unfinished epoch) kept the old schedule's end beside the new cycle's
    origin, and every later resume trained at the floor."""
    config = TrainConfig(
        data=prepared_dataset,
        out=tmp_path,
        preset="tiny",
        epochs=20,
        device="cpu",
        batch_size=20,
        train_images=300,  # 240 a epoch: it ends 60 images into epoch 2
    )
    assert Trainer(config).run().reason == "image_budget"
    assert load_checkpoint(tmp_path / "last.pt").trainer["position"] == 60
    more = replace(config, resume=True, train_images=1500)
    stopped = Trainer(more)
    stopped.request_stop()  # before anything is trained
    assert stopped.run().reason == "stopped"
    saved = load_checkpoint(tmp_path / "last.pt").trainer
    assert saved["schedule_at"] == 0.0 and saved["cycle_origin"] is not None
    events: list = []
    assert Trainer(more, events.append).run().reason == "image_budget"
    gentle = events_of(events, ev.RunStarted)[0].learning_rate
    rates = [e.learning_rate for e in events_of(events, ev.EpochEnd)]
    assert max(rates) > 0.5 * gentle  # the new cycle's peak, not the old one's floor


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
    assert load_checkpoint(tmp_path / "best.pt").meta.epoch == 1  # the epoch its weights are from


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


def test_a_small_validation_split_keeps_the_annealed_final_weights(prepared_dataset, tmp_path, one_thread):
    # 30 validation images (the 300-label fine-tune's): the highest-scoring epoch is a draw among them, so
    # a run whose one-cycle schedule has annealed keeps its final weights in best.pt, and says so.
    def run(out, **overrides):
        events: list = []
        config = TrainConfig(
            data=prepared_dataset,
            out=out,
            preset="tiny",
            device="cpu",
            epochs=8,
            lr=0.02,
            seed=3,
            **overrides,
        )
        return Trainer(config, events.append).run(), events

    result, events = run(tmp_path / "onecycle")
    history = history_rows(tmp_path / "onecycle")
    assert isinstance(result, ev.Finished) and result.reason == "max_epochs" and len(history) == 8
    assert result.best_epoch == 8 and result.best_val_accuracy == history[-1]["val_accuracy"]
    best, last = (
        load_checkpoint(tmp_path / "onecycle" / "best.pt"),
        load_checkpoint(tmp_path / "onecycle" / "last.pt"),
    )
    assert all(torch.equal(best.model[k], last.model[k]) for k in last.model)
    highest = best_epoch(events_of(events, ev.EpochEnd))
    said = [n.message for n in events_of(events, ev.Notice) if "too few to choose an epoch" in n.message]
    # This seed's run scores best at epoch 7 here; where another CPU's arithmetic makes it the last, there is
    # nothing to say.
    assert said == (
        [
            "a validation split of 30 images is too few to choose an epoch by (one image is 3.3 points): "
            f"best.pt keeps the final weights, where the schedule ends (epoch 8, "
            f"{history[-1]['val_accuracy']:.1%}), not epoch {highest.epoch}'s ({highest.val_accuracy:.1%})"
        ]
        if highest.epoch != 8
        else []
    )
    # The runs screen and the dashboard (opened on the folder) show the epoch best.pt holds.
    assert read_run(tmp_path / "onecycle").best_epoch == 8
    assert read_run_summary(tmp_path / "onecycle").best.epoch == 8

    # A constant learning rate never anneals: best.pt stays the highest-scoring epoch, as on a large split.
    result, events = run(tmp_path / "constant", schedule="constant")
    highest = best_epoch(events_of(events, ev.EpochEnd))
    assert result.best_epoch == highest.epoch and result.best_val_accuracy == highest.val_accuracy
    assert not [n for n in events_of(events, ev.Notice) if "too few to choose an epoch" in n.message]


@pytest.mark.parametrize(
    ("preset", "asked", "trained"), [("crnn-fast", None, 50), ("crnn-fast", 20, 20), ("tiny", None, 100)]
)
def test_a_run_takes_its_presets_mini_batch_unless_told(
    prepared_dataset, tmp_path, one_thread, preset, asked, trained
):
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path, preset=preset, device="cpu", epochs=1, train_images=100,
        batch_size=asked,
    )  # fmt: skip
    events: list = []
    Trainer(config, events.append).run()
    started = events_of(events, ev.RunStarted)[0]
    assert (started.batch_size, started.batches_per_epoch) == (trained, -(-240 // trained))
    assert load_checkpoint(tmp_path / "last.pt").trainer["batch_size"] == trained
