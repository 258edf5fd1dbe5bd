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
