"""Run records read from real tiny run folders (JSON only), damaged ones, and the config diff."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from captcha_tui.core import events as ev
from captcha_tui.core.runs import (
    FAILED,
    UNFINISHED,
    config_diff,
    find_runs,
    list_runs,
    read_history,
    read_run,
)
from captcha_tui.core.train import TrainConfig, Trainer, best_epoch
from captcha_tui.words import run_cells


def test_each_real_run_reads_as_its_finish_said(three_runs):
    root, finished = three_runs
    records = list_runs(root)
    assert [r.name for r in records] == ["a-tiny", "b-ctc", "c-tiny-lr"]
    for record in records:
        done = finished[record.name]
        epochs, damaged = read_history(record.path)
        assert damaged == 0 and record.epochs == epochs and len(epochs) == done.epochs_run
        assert record.problems == () and record.failure is None and record.has_best
        assert record.status == done.reason == "max_epochs" and record.finished
        assert record.best_epoch == done.best_epoch == best_epoch(epochs).epoch
        assert record.best_val_accuracy == pytest.approx(done.best_val_accuracy)
        assert record.test_accuracy == pytest.approx(done.test_accuracy)
        assert record.images_seen == done.images_seen > 0
        assert record.training_s == pytest.approx(done.elapsed_s)
        assert record.val_curve == tuple((e.epoch, e.val_accuracy) for e in epochs)
        assert record.config["out"] == str(record.path) and record.data == record.config["data"]
    assert [r.preset for r in records] == ["tiny", "crnn-tiny", "tiny"]
    assert [len(r.epochs) for r in records] == [1, 2, 2]


def test_the_preset_a_run_picked_comes_from_its_start(three_runs, tmp_path):
    """config.json says preset null when train chose the default; RunStarted says which it chose."""
    run = shutil.copytree(three_runs[0] / "a-tiny", tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(config | {"preset": None}))
    record = read_run(run)
    assert record.config["preset"] is None and record.preset == "tiny"


def test_checkpoints_are_never_opened(three_runs, tmp_path, monkeypatch):
    run = shutil.copytree(three_runs[0] / "b-ctc", tmp_path / "run")
    (run / "best.pt").write_bytes(b"not a pickle")

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was opened")

    monkeypatch.setattr(torch, "load", refuse)
    record = read_run(run)
    assert record.has_best and record.problems == () and len(record.epochs) == 2


def test_a_damaged_run_still_lists_with_what_is_known_and_says_what_is_wrong(three_runs, tmp_path):
    run = shutil.copytree(three_runs[0] / "c-tiny-lr", tmp_path / "run")
    good = read_run(run)
    lines = (run / "history.jsonl").read_text().splitlines()
    (run / "history.jsonl").write_text(lines[0] + "\n" + lines[1][:20] + "\n{}\n")  # epoch 2 cut short
    (run / "config.json").write_text("{not json")
    with (run / "train.log").open("a") as log:
        log.write("2026-01-01 00:00:00 Finished {cut\n")
    record = read_run(run)
    assert [e.epoch for e in record.epochs] == [1]
    assert record.best_epoch == 1 and record.best_val_accuracy == good.epochs[0].val_accuracy
    assert record.config == {} and record.data == good.data  # the data folder from RunStarted instead
    assert record.preset == "tiny" and record.status == "max_epochs"  # from train.log, still readable
    assert record.test_accuracy == good.test_accuracy and record.images_seen == good.images_seen
    assert record.problems == (
        "config.json cannot be read: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        "history.jsonl: 2 damaged lines skipped",
        "train.log: 1 damaged line skipped",
    )


def test_history_rows_of_the_wrong_types_are_skipped_not_listed(three_runs, tmp_path):
    """A hand-edited row (a null accuracy, a number as a string) is damaged, as a cut one is: before, it
    reached the best-epoch sort and the whole listing died on a TypeError."""
    run = shutil.copytree(three_runs[0] / "c-tiny-lr", tmp_path / "run")
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    null_accuracy = {**rows[0], "val_accuracy": None}
    text_seconds = {**rows[0], "seconds": "1.0"}
    true_epoch = {**rows[0], "epoch": True}
    lines = [null_accuracy, text_seconds, true_epoch, rows[1], [1, 2]]
    (run / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in lines))
    epochs, damaged = read_history(run)
    assert [e.epoch for e in epochs] == [2] and damaged == 4
    assert isinstance(epochs[0].val_accuracy, float) and epochs[0].pseudo_labels is None
    record = read_run(run)
    assert record.best_epoch == 2 and "history.jsonl: 4 damaged lines skipped" in record.problems
    assert [r.name for r in list_runs(tmp_path)] == ["run"]


def test_a_run_with_no_history_takes_its_best_from_its_finish(three_runs, tmp_path):
    run = shutil.copytree(three_runs[0] / "b-ctc", tmp_path / "run")
    done = three_runs[1]["b-ctc"]
    (run / "history.jsonl").unlink()
    record = read_run(run)
    assert record.epochs == () and record.val_curve == ()
    assert record.best_epoch == done.best_epoch and record.best_val_accuracy == pytest.approx(
        done.best_val_accuracy
    )
    assert record.problems == ("no history.jsonl",)


def _without_finish(run) -> None:
    lines = (run / "train.log").read_text().splitlines()
    kept = [line for line in lines if line.split(" ")[2] != "Finished"]
    assert len(kept) == len(lines) - 1
    (run / "train.log").write_text("\n".join(kept) + "\n")


def test_a_run_without_an_end_is_unfinished_and_a_failed_one_says_why(three_runs, tmp_path):
    run = shutil.copytree(three_runs[0] / "c-tiny-lr", tmp_path / "run")
    _without_finish(run)
    record = read_run(run)
    assert record.status == UNFINISHED and not record.finished
    assert record.images_seen is None and record.test_accuracy is None
    assert record.training_s == pytest.approx(sum(e.seconds for e in record.epochs))  # its epochs so far
    assert record.best_epoch == best_epoch(record.epochs).epoch

    with (run / "train.log").open("a") as log:
        log.write('2026-01-01 00:00:00 Failed {"message": "CUDA out of memory", "traceback": ""}\n')
    record = read_run(run)
    assert record.status == FAILED and record.failure == "CUDA out of memory"
    assert len(record.epochs) == 2  # what it trained before it failed still shows

    crashed = tmp_path / "crashed"  # no train.log at all, only the error log a failure leaves
    crashed.mkdir()
    (crashed / "error.log").write_text("boom")
    (crashed / "config.json").write_text("{}")
    assert read_run(crashed).status == FAILED


def test_find_runs_takes_the_folders_that_hold_run_files(three_runs, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(three_runs[0] / "a-tiny", root / "z-run")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run")
    (root / "loose.json").write_text("{}")
    (root / "only-log").mkdir()
    (root / "only-log" / "train.log").write_text("")
    assert [p.name for p in find_runs(root)] == ["only-log", "z-run"]
    with pytest.raises(FileNotFoundError):
        find_runs(tmp_path / "missing")


def test_config_diff_keeps_only_the_fields_that_differ(three_runs):
    records = list_runs(three_runs[0])
    diff = config_diff(records)
    assert diff["preset"] == ["tiny", "crnn-tiny", "tiny"]
    assert diff["epochs"] == [1, 2, 2]
    assert diff["lr"] == [None, 0.002, 0.003]
    assert set(diff) == {"preset", "epochs", "lr"}  # not data, batch_size…; nor out, which always differs
    assert config_diff(records[1:]) == {"preset": ["crnn-tiny", "tiny"], "lr": [0.002, 0.003]}
    assert config_diff(records[:1]) == {}


def test_config_diff_counts_a_missing_field_as_none(three_runs, tmp_path):
    old, new = (read_run(three_runs[0] / "a-tiny") for _ in range(2))
    old.config.pop("seed")
    new.config["seed"] = 3
    assert config_diff([old, new]) == {"seed": [None, 3]}


def test_a_run_stopped_in_its_first_epoch_lists_no_validation_score(prepared_dataset, tmp_path):
    """Stopped before any epoch ended, nothing was validated: n/a, not 0.0%."""
    config = TrainConfig(data=prepared_dataset, out=tmp_path / "run", preset="tiny", epochs=2, device="cpu")
    trainer = Trainer(config, step_hook=lambda epoch, batch, size: trainer.request_stop())
    result = trainer.run()
    assert isinstance(result, ev.Finished) and result.reason == "stopped" and result.best_epoch == 0
    record = read_run(tmp_path / "run")
    assert record.best_val_accuracy is None and record.best_epoch is None and record.status == "stopped"
    assert run_cells(record)[4:6] == ("n/a", "n/a")


def test_a_run_that_kept_the_weights_of_its_unfinished_last_epoch_lists_them(prepared_dataset, tmp_path):
    """Its image budget spent inside epoch 2 with a small validation split: best.pt holds epoch 2's final
    weights (stopping.keeps_final_weights), which have no history row; the listing showed epoch 1's score
    instead, against the run's own last line."""
    config = TrainConfig(
        data=prepared_dataset,
        out=tmp_path / "run",
        preset="tiny",
        epochs=20,
        device="cpu",
        batch_size=20,
        train_images=300,  # 240 a epoch: it ends 60 images into epoch 2
    )
    result = Trainer(config).run()
    assert isinstance(result, ev.Finished) and result.reason == "image_budget" and result.best_epoch == 2
    assert [row.epoch for row in read_history(tmp_path / "run")[0]] == [1]
    record = read_run(tmp_path / "run")
    assert (record.best_epoch, record.best_val_accuracy) == (2, pytest.approx(result.best_val_accuracy))
