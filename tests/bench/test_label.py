"""``bench label`` drives the real label screen: each Enter saves a row and shows another image."""

from __future__ import annotations

import pytest

from captcha_tui.bench.label import format_result, run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:textual_image")


def test_each_enter_saves_a_row_and_is_timed_to_the_next_image(tiny_run):
    result = run(images=100, presses=3, model=tiny_run / "best.pt")
    timed = [r for r in (result["while_scoring"], result["after_scoring"]) if r]
    assert result["after_scoring"]["n"] == 3
    # Every timed Enter wrote one row; none was lost or doubled.
    assert result["rows_written"] == sum(r["n"] for r in timed)
    assert all(0 < r["median_ms"] <= r["p95_ms"] <= r["max_ms"] for r in timed)
    assert "Enter → next image, after scoring" in format_result(result)


def test_while_training_times_enter_during_a_fine_tune_and_says_the_load(tiny_run):
    result = run(images=100, presses=3, model=tiny_run / "best.pt", while_training=True, learn_time_limit_s=2)
    timed = [r for r in (result["while_scoring"], result["after_scoring"], result["while_training"]) if r]
    assert result["while_training"]["n"] >= 1
    assert result["rows_written"] >= sum(r["n"] for r in timed)
    assert len(result["load_before"]) == len(result["load_after"]) == 3
    assert "learnt from" in result["round"], result["round"]
    text = format_result(result)
    assert "Enter → next image, while training" in text and "load average" in text
