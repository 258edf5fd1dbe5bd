"""The learning rate: its peak and the one-cycle schedule over the run's budget."""

from __future__ import annotations

import pytest

from captcha_tui.core.train import TrainConfig
from captcha_tui.core.train.schedule import (
    Schedule,
    lr_factor,
    peak_learning_rate,
    schedule_progress,
    short_run_notice,
)


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


def test_a_runs_schedule_spans_whichever_budget_ends_it_first():
    def schedule(start: float = 0.0, fine_tune: bool = False, **change) -> Schedule:
        return Schedule.for_run(TrainConfig(epochs=10, **change), "fast", 48_000, fine_tune, start)

    assert schedule().progress(2.5, 120_000, 30.0) == pytest.approx(0.25)  # by epochs
    # An image budget sooner than the epochs sets the pace: 120,000 of 240,000 images are half the schedule.
    assert schedule(train_images=240_000).progress(2.5, 120_000, 30.0) == pytest.approx(0.5)
    assert schedule(time_limit_s=60.0).progress(2.5, 120_000, 30.0) == pytest.approx(0.5)  # by the clock
    assert schedule(start=0.7).progress(2.5, 120_000, 30.0) == 0.7  # a resume never goes back
    fresh = schedule()
    assert fresh.peak_lr == pytest.approx(3e-3) and fresh.warmup == 0.1
    assert fresh.learning_rate(0.1) == pytest.approx(3e-3) and fresh.learning_rate(1.0) == pytest.approx(3e-5)
    tuned = schedule(fine_tune=True)
    assert tuned.peak_lr == pytest.approx(1e-3) and tuned.warmup == 0.05  # a fine-tune's gentler start
    assert schedule(lr=0.02, schedule="constant").learning_rate(0.0) == 0.02


def test_a_finished_schedule_given_more_budget_restarts_gently_and_only_then():
    def schedule(start: float, **change) -> Schedule:
        return Schedule.for_run(TrainConfig(**{"epochs": 20, **change}), "fast", 48_000, False, start)

    # 10 epochs of an ended schedule, now 20: a new cycle over epochs 10..20 at the gentle peak.
    again = schedule(1.0).restarted(10.0, 480_000, 1e-3)
    assert again is not None and again.peak_lr == 1e-3 and again.warmup == 0.05
    assert again.progress(10.0, 480_000, 0.0) == 0.0 and again.progress(15.0, 720_000, 0.0) == 0.5
    assert again.learning_rate(0.05) == pytest.approx(1e-3)  # its peak, after the short warm-up
    # By images: a budget raised from 480,000 to 960,000 is counted from where the run was.
    by_images = schedule(1.0, epochs=1000, train_images=960_000).restarted(10.0, 480_000, 1e-3)
    assert by_images.progress(12.0, 720_000, 0.0) == pytest.approx(0.5)
    # A session's time limit spans the new cycle.
    timed = schedule(1.0, epochs=1000, time_limit_s=300.0).restarted(10.0, 480_000, 1e-3)
    assert timed.progress(10.5, 500_000, 150.0) == pytest.approx(0.5)
    # A schedule still going, one that adds too little to be a cycle, and a constant rate: no restart.
    assert schedule(0.6).restarted(12.0, 576_000, 1e-3) is None
    assert schedule(1.0).restarted(19.5, 936_000, 1e-3) is None
    assert schedule(1.0, schedule="constant").restarted(10.0, 480_000, 1e-3) is None
    # Carried on in a later session from where it was.
    later = schedule(0.0).cycle_from(10.0, 480_000, 1e-3, start=0.5)
    assert later.progress(15.0, 720_000, 0.0) == 0.5 and later.progress(17.5, 840_000, 0.0) == 0.75
