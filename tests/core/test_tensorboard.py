"""``train --log-dir``: a real tiny run's TensorBoard files, read back with TensorBoard's own reader."""

from __future__ import annotations

import json
import sys

import pytest

from captcha_tui.core import events as ev
from captcha_tui.core.train import TrainConfig, Trainer


def test_a_run_writes_tensorboard_scalars_on_an_axis_of_images_seen(prepared_dataset, tmp_path, one_thread):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = tmp_path / "tb"
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path / "run", preset="tiny", device="cpu", epochs=2, log_dir=logs
    )
    result = Trainer(config).run()
    assert isinstance(result, ev.Finished)
    board = EventAccumulator(str(logs))
    board.Reload()
    scalars = board.Tags()["scalars"]
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    val = board.Scalars("epoch/val_accuracy")
    # One point an epoch, at the images seen by its end (240 training images an epoch), as in history.jsonl.
    assert [(p.step, round(p.value, 5)) for p in val] == [
        (240 * row["epoch"], round(row["val_accuracy"], 5)) for row in history
    ]
    assert {
        "epoch/train_loss",
        "epoch/learning_rate",
        "batch/loss",
        "batch/accuracy",
        "test/accuracy",
    } <= set(scalars)
    batch_steps = [p.step for p in board.Scalars("batch/loss")]
    assert batch_steps == sorted(batch_steps) and 0 < batch_steps[-1] <= 480
    assert board.Scalars("test/accuracy")[0].value == pytest.approx(result.test_accuracy)


def test_without_tensorboard_log_dir_is_a_usage_error_and_nothing_trains(
    prepared_dataset, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    config = TrainConfig(
        data=prepared_dataset,
        out=tmp_path / "run",
        preset="tiny",
        device="cpu",
        epochs=1,
        log_dir=tmp_path / "tb",
    )
    result = Trainer(config).run()
    assert isinstance(result, ev.Failed) and result.usage
    assert "pip install 'captcha-tui[tensorboard]'" in result.message
    assert not (tmp_path / "run" / "best.pt").exists()
