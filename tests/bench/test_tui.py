"""The dashboard-cost benchmark (``captcha-tui bench tui``) on a tiny run: it measures what it says."""

from __future__ import annotations

import asyncio

import pytest

from captcha_tui.bench.tui import latency_run, throughput
from captcha_tui.core.train import TrainConfig


def test_key_to_frame_latency_is_measured_idle_and_while_training(prepared_dataset, tmp_path, one_thread):
    # A run its own rules would end within a second: the benchmark must keep it training until the
    # presses are done, however fast the machine (issue 22: it failed on a faster CPU).
    config = TrainConfig(
        data=prepared_dataset, out=tmp_path / "run", preset="tiny", device="cpu", epochs=1, patience=1
    )
    result = asyncio.run(latency_run(config, presses=4))
    for state in ("idle", "training"):
        figures = result[state]
        assert figures["n"] == 4  # d opens the device picker, Escape closes it, twice
        assert 0 < figures["median_ms"] <= figures["p95_ms"] <= figures["max_ms"] < 5000
    assert result["training_throughout"]


@pytest.mark.slow
def test_throughput_compares_headless_thread_and_tui_runs_in_fresh_processes(prepared_dataset, tmp_path):
    base = TrainConfig(data=prepared_dataset, out=tmp_path / "run", preset="tiny", device="cpu")
    summary = throughput(base, tmp_path, rounds=1, epochs=2)
    for mode in ("headless", "thread", "tui"):
        (run,) = summary[mode]["epochs_images_per_s"]
        assert len(run) == 2 and all(rate > 0 for rate in run)
    assert summary["tui_over_headless"] == round(summary["tui"]["steady"] / summary["headless"]["steady"], 3)
    assert len(summary["tui_over_headless_by_round"]) == 1
    (share,) = summary["ui_thread_cpu_share"]
    assert 0 < share < 1  # the UI thread's CPU time while training, as a share of one core
