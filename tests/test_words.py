"""The event words: one vocabulary for the headless printer and the dashboard, with no UI underneath."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from captcha_tui.core import events as ev
from captcha_tui.headless import HeadlessPrinter
from captcha_tui.words import (
    FINISH_REASONS,
    describe_event,
    epochs_run_words,
    format_duration,
    percent,
    resume_command,
    rough_duration,
    run_eta,
)


def test_words_import_no_ui_library():
    code = "import sys, captcha_tui.words; print(sorted({'textual', 'rich'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_numbers_and_durations():
    assert percent(0.9861) == "98.6%" and percent(0.5, digits=0) == "50%" and percent(None) == "n/a"
    assert format_duration(59.9) == "00:59" and format_duration(3725) == "1:02:05"
    assert format_duration(-3) == "00:00"


FINISHED = ev.Finished(
    reason="time_limit",
    epochs_run=3,
    best_epoch=2,
    best_val_accuracy=0.875,
    test_accuracy=0.9,
    test_char_accuracy=0.97,
    best_checkpoint="runs/x/best.pt",
    last_checkpoint="runs/x/last.pt",
    elapsed_s=65,
    images_seen=1200,
)


def test_a_finish_reads_the_same_in_the_printer_and_the_log():
    line = describe_event(FINISHED)
    assert line.startswith(f"finished: {FINISH_REASONS['time_limit']} after 3 epochs in 01:05")
    assert "best validation accuracy 87.5% at epoch 2" in line and "test accuracy 90.0%" in line
    out = io.StringIO()
    HeadlessPrinter(out=out, err=out)(FINISHED)
    assert out.getvalue() == line + "\n"
    assert describe_event(ev.BatchSizeReduced(old=8, new=4, epoch=1, batch=2, device="cpu")) is None


def test_a_run_whose_best_weights_are_a_part_epoch_says_so():
    # An image budget spent inside epoch 5, whose weights then scored best: 4 whole epochs, best at 5.
    finished = replace(
        FINISHED,
        reason="image_budget",
        epochs_run=4,
        best_epoch=5,
        best_val_accuracy=0.883,
        elapsed_s=120,
        images_seen=500,
    )
    line = describe_event(finished)
    assert " after 4 epochs and part of epoch 5 in 02:00 (500 images seen)" in line
    assert "best validation accuracy 88.3% at epoch 5" in line
    assert epochs_run_words(replace(finished, epochs_run=1, best_epoch=1)) == "1 epoch"


def test_a_run_stopped_in_its_first_epoch_has_no_validation_score_to_give():
    stopped = replace(FINISHED, reason="stopped", epochs_run=0, best_epoch=0, best_val_accuracy=0.0)
    line = describe_event(stopped)
    assert "no epoch ended: nothing validated yet" in line and "best validation accuracy" not in line


def test_the_run_eta_names_the_rule_that_ends_the_run_and_is_a_bound_under_patience():
    # 30 s left of this epoch, epochs of 60 s: 5 more epochs make 5.5 min by the budget.
    assert run_eta(30.0, 60.0, 5, None, None) == "run ETA ~6 min (its epoch budget)"
    # A time limit sooner than the budget ends the run; a later one does not.
    assert run_eta(30.0, 60.0, 5, 120.0, None) == "run ETA ~2 min (its time limit)"
    assert run_eta(30.0, 60.0, 5, 3600.0, None) == "run ETA ~6 min (its epoch budget)"
    # Patience could end it after 2 more epochs (no new best): the budget is only an upper bound…
    assert run_eta(30.0, 60.0, 5, None, 2) == "run ETA ≤ ~6 min (its epoch budget; sooner on an early stop)"
    assert run_eta(30.0, 60.0, 5, 120.0, 0) == "run ETA ≤ ~2 min (its time limit; sooner on an early stop)"
    # …unless the other rules end it first anyway.
    assert run_eta(30.0, 60.0, 5, None, 5) == "run ETA ~6 min (its epoch budget)"
    assert run_eta(30.0, 60.0, 5, 90.0, 1) == "run ETA ~90 s (its time limit)"
    assert run_eta(12.0, 60.0, 0, None, 0) == "run ETA ~12 s (its epoch budget)"  # the last epoch
    # An image budget (--train-images) is as certain as the clock: 1,000 epochs are not the plan.
    assert run_eta(30.0, 60.0, 999, None, None, 200.0) == "run ETA ~3 min (its image budget)"
    assert run_eta(30.0, 60.0, 999, 90.0, None, 200.0) == "run ETA ~90 s (its time limit)"
    assert rough_duration(75) == "75 s" and rough_duration(330) == "6 min" and rough_duration(9000) == "2.5 h"


def test_the_resume_command_names_the_run_folder_unless_it_is_the_default():
    assert resume_command(Path("runs/default/last.pt")) == "captcha-tui train --resume"
    assert resume_command("runs/default-2/last.pt") == "captcha-tui train --resume --out runs/default-2"
    assert resume_command("my runs/a/last.pt") == "captcha-tui train --resume --out 'my runs/a'"
