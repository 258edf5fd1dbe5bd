from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from captcha_tui.core import events as ev
from captcha_tui.core.checkpoint import load_checkpoint
from captcha_tui.core.model import build_model, to_model_input
from captcha_tui.core.predictor import Predictor
from captcha_tui.core.trainer import TrainConfig, Trainer, lr_factor, schedule_progress, train_step
from tests.helpers import events_of, history_rows


def test_end_to_end_run_emits_the_whole_story(trained_run):
    run_dir, events = trained_run
    assert isinstance(events[0], ev.RunStarted)
    assert events[0].train_count + events[0].val_count + events[0].test_count == 300
    assert [e.epoch for e in events_of(events, ev.EpochEnd)] == [1, 2]
    assert events_of(events, ev.BatchProgress), "progress is reported inside each epoch"
    assert all(0 <= e.accuracy <= 1 and e.loss > 0 for e in events_of(events, ev.BatchProgress))
    assert events_of(events, ev.NewBest)[0].epoch == 1
    assert [e.epochs_left for e in events_of(events, ev.Countdown)][0] == 20
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
    assert data["meta"]["preset"] == "tiny" and data["meta"]["length"] == 4
    assert "optimizer" not in data, "the best checkpoint is for predicting"
    assert "optimizer" in load_checkpoint(run_dir / "last.pt")
    predictor = Predictor.load(run_dir / "best.pt")
    image = sorted(captcha_dir.iterdir())[0]
    prediction = predictor.predict_image(image)
    assert len(prediction.code) == 4 and all(c in predictor.charset for c in prediction.code)
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
    saved = load_checkpoint(tmp_path / "last.pt")["trainer"]
    # The stop is seen before the next batch: three batches (60 images) of epoch 2 were trained.
    assert saved["epoch"] == 1 and saved["position"] == 60

    second: list = []
    result = Trainer(replace(config, resume=True), second.append).run()
    assert isinstance(result, ev.Finished) and result.reason == "max_epochs"
    assert events_of(second, ev.RunStarted)[0].start_epoch == 2
    assert [e.epoch for e in events_of(second, ev.EpochEnd)] == [2, 3]
    assert any("resumed" in n.message for n in events_of(second, ev.Notice))
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
    assert events_of(events, ev.Countdown)[-1].epochs_left == 0


def test_pause_blocks_until_resumed(prepared_dataset, tmp_path):
    import threading

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


def test_a_time_limit_shorter_than_the_epochs_anneals_on_the_clock():
    # 2 of 15 epochs done, but 600 of 900 s gone: the schedule is two thirds through, not 13%.
    assert schedule_progress(2 / 15, 600, 900) == pytest.approx(2 / 3)
    # The epochs run out first: they set the pace.
    assert schedule_progress(0.5, 100, 900) == 0.5
    assert schedule_progress(0.25, 1e6, None) == 0.25
    # At the limit the learning rate is at its floor.
    assert lr_factor(schedule_progress(0.4, 900, 900), "onecycle") == pytest.approx(0.01)


def test_label_smoothing_spreads_the_target_and_zero_is_plain_cross_entropy():
    torch.manual_seed(0)
    model = build_model("tiny", 4, 31, (40, 16)).eval()  # eval: the same logits on every call
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
