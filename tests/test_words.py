"""The event words: one vocabulary for the headless printer and the dashboard, with no UI underneath."""

from __future__ import annotations

import io
import subprocess
import sys

from captcha_tui.core import events as ev
from captcha_tui.headless import HeadlessPrinter
from captcha_tui.words import FINISH_REASONS, describe_event, format_duration, percent


def test_words_import_no_ui_library():
    code = "import sys, captcha_tui.words; print(sorted({'textual', 'rich'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_numbers_and_durations():
    assert percent(0.9861) == "98.6%" and percent(0.5, digits=0) == "50%" and percent(None) == "n/a"
    assert format_duration(59.9) == "00:59" and format_duration(3725) == "1:02:05"
    assert format_duration(-3) == "00:00"


def test_a_finish_reads_the_same_in_the_printer_and_the_log():
    finished = ev.Finished(
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
    line = describe_event(finished)
    assert line.startswith(f"finished: {FINISH_REASONS['time_limit']} after 3 epochs in 01:05")
    assert "best validation accuracy 87.5% at epoch 2" in line and "test accuracy 90.0%" in line
    out = io.StringIO()
    HeadlessPrinter(out=out, err=out)(finished)
    assert out.getvalue() == line + "\n"
    assert describe_event(ev.BatchSizeReduced(old=8, new=4, epoch=1, batch=2, device="cpu")) is None
