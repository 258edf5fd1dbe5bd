"""The stop rules, one object each (check, epochs left, words), the order they are asked in, and the
best-epoch rule the trainer and the run summary share."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict

import pytest

from captcha_tui import words
from captcha_tui.core import events as ev
from captcha_tui.core.train import TrainConfig
from captcha_tui.core.train.stopping import (
    ANNEALED,
    FINISH_WORDS,
    NO_BEST,
    RULES,
    SMALL_VALIDATION,
    BestScore,
    EpochBudget,
    ImageBudget,
    Patience,
    Standing,
    StopRequest,
    StopRules,
    Target,
    TimeLimit,
    best_epoch,
    countdown_summary,
    keeps_final_weights,
    patience_for,
)
from captcha_tui.tui.run_info import read_run_summary


def at(epoch=0, best_epoch=0, images_seen=0, session_s=0.0, val_accuracy=None, epoch_s=10.0, best=0.5):
    return Standing(epoch, best_epoch, best, images_seen, session_s, val_accuracy, epoch_s)


def test_the_epoch_budget_ends_the_run_at_its_last_epoch():
    rule = EpochBudget(3)
    assert not rule.stops(at(epoch=2)) and rule.stops(at(epoch=3))
    assert rule.epochs_left(at(epoch=1)) == 2.0 and rule.left(at(epoch=1)) == 2
    assert rule.reason == "max_epochs" and rule.finished == "reached the last epoch"
    assert rule.notice(at(epoch=3)) is None  # the finish says it all


def test_the_image_budget_ends_the_run_at_the_batch_that_reaches_it():
    rule = ImageBudget(500, train_count=240)
    assert not rule.stops(at(images_seen=499)) and rule.stops(at(images_seen=580))
    assert rule.left(at(images_seen=480)) == 20 and rule.left(at(images_seen=580)) == 0
    assert rule.epochs_left(at(images_seen=20)) == pytest.approx(2.0)  # 480 images: two epochs of 240
    assert rule.spent == "image budget spent" and rule.scores_test


def test_the_time_limit_counts_this_sessions_training_time():
    rule = TimeLimit(60.0)
    assert not rule.stops(at(session_s=59.9)) and rule.stops(at(session_s=60.0))
    assert rule.left_s(at(session_s=45.0)) == 15.0 and rule.left_s(at(session_s=75.0)) == 0.0
    assert rule.epochs_left(at(session_s=45.0, epoch_s=10.0)) == pytest.approx(1.5)
    assert rule.spent == "out of time"


def test_patience_counts_epochs_since_the_best_and_says_which_it_kept():
    rule = Patience(3)
    assert not rule.stops(at(epoch=5, best_epoch=3)) and rule.stops(at(epoch=6, best_epoch=3))
    assert rule.epochs_left(at(epoch=5, best_epoch=3)) == 1.0
    assert rule.notice(at(epoch=6, best_epoch=3, best=0.875)) == (
        "early stop: no new best for 3 epochs (best 0.875 at epoch 3)"
    )


def test_patience_counts_from_a_new_learning_rate_cycles_start():
    """A finished run given more epochs trains them on a new cycle (Schedule.restarted): its first epochs,
    warming up from the old floor, are not epochs without a new best since the old run's best."""
    rule = Patience(3)
    cycle = dict(best_epoch=2, patience_from=10)
    assert not rule.stops(Standing(12, 2, 0.5, 0, 0.0, patience_from=10))
    assert rule.stops(Standing(13, **cycle, best_accuracy=0.5, images_seen=0, session_s=0.0))
    assert rule.left(Standing(11, **cycle, best_accuracy=0.5, images_seen=0, session_s=0.0)) == 2
    assert rule.notice(Standing(13, **cycle, best_accuracy=0.875, images_seen=0, session_s=0.0)) == (
        "early stop: no new best in the first 3 epochs of its new learning-rate cycle (best 0.875 at epoch 2)"
    )
    assert rule.left(Standing(14, 12, 0.5, 0, 0.0, patience_from=10)) == 1  # a best in the cycle counts


def test_the_target_is_read_off_the_epoch_just_validated_and_cannot_be_foreseen():
    rule = Target(0.9)
    assert rule.stops(at(val_accuracy=0.9)) and not rule.stops(at(val_accuracy=0.89))
    assert not rule.stops(at(val_accuracy=None))  # inside an epoch there is nothing to compare
    assert rule.epochs_left(at()) is None
    assert rule.notice(at(val_accuracy=0.925)) == "validation accuracy 0.925 reached the target 0.900"


def test_a_stop_request_ends_the_run_without_scoring_the_test_split():
    event = threading.Event()
    rule = StopRequest(event)
    assert not rule.stops(at())
    event.set()
    assert rule.stops(at()) and not rule.scores_test and rule.epochs_left(at()) is None
    assert rule.notice(at(epoch=2)) == "stopped in epoch 3; continue with --resume"


def test_every_finish_reason_has_its_rule_and_words():
    assert sorted(FINISH_WORDS) == sorted(
        ["early_stop", "image_budget", "max_epochs", "stopped", "target_reached", "time_limit"]
    )
    assert len({rule.reason for rule in RULES}) == len(RULES)
    assert words.FINISH_REASONS["image_budget"] == ImageBudget.finished  # words asks the rules


def _every_rule(request: threading.Event) -> StopRules:
    """Every rule at once: a budget of 5 epochs and 1,000 images, a minute, patience 2, target 0.9."""
    return StopRules(
        EpochBudget(5),
        images=ImageBudget(1000, 100),
        time=TimeLimit(60.0),
        patience=Patience(2),
        target=Target(0.9),
        request=StopRequest(request),
    )


def test_after_an_epoch_the_natural_ends_come_before_a_stop_request():
    request = threading.Event()
    rules = _every_rule(request)
    assert rules.after_epoch(at(epoch=1, best_epoch=1, val_accuracy=0.5)) is None
    assert rules.after_epoch(at(epoch=5, val_accuracy=0.95)).reason == "target_reached"
    request.set()
    # Pressed while the last epoch was validated: the run still ends on its budget (and scores the test).
    assert rules.after_epoch(at(epoch=5, best_epoch=5, val_accuracy=0.5)).reason == "max_epochs"
    assert rules.after_epoch(at(epoch=3, best_epoch=3, images_seen=1000)).reason == "image_budget"
    assert rules.after_epoch(at(epoch=3, best_epoch=1)).reason == "early_stop"
    assert rules.after_epoch(at(epoch=3, best_epoch=3, session_s=60.0)).reason == "stopped"
    request.clear()
    assert rules.after_epoch(at(epoch=3, best_epoch=3, session_s=60.0)).reason == "time_limit"


def test_before_a_batch_only_the_rules_that_can_end_an_epoch_early_are_asked():
    request = threading.Event()
    rules = _every_rule(request)
    # Patience, the budget and the target wait for the epoch's end.
    assert rules.before_batch(at(epoch=5, best_epoch=1, val_accuracy=0.95)) is None
    assert rules.before_batch(at(images_seen=1000, session_s=60.0)).reason == "image_budget"
    assert rules.before_batch(at(session_s=60.0)).reason == "time_limit"
    request.set()
    assert rules.before_batch(at(images_seen=1000, session_s=60.0)).reason == "stopped"


def test_the_countdown_names_the_rule_that_ends_the_run_first():
    def ends_by(rules: StopRules, standing: Standing) -> str:
        return rules.ends_by(standing).reason

    budget_and_patience = StopRules(EpochBudget(10), patience=Patience(5))
    assert ends_by(budget_and_patience, at(epoch=7, best_epoch=7)) == "max_epochs"  # 3 epochs vs 5
    assert ends_by(budget_and_patience, at(epoch=2, best_epoch=-1)) == "early_stop"  # 8 vs 2
    clock = StopRules(EpochBudget(10), time=TimeLimit(100.0), patience=Patience(5))
    assert ends_by(clock, at(epoch=2, best_epoch=2, session_s=75.0)) == "time_limit"  # 2.5 epochs of time
    # Ties go to the certain ends: the budget, then the image budget, then the clock, then patience.
    assert ends_by(clock, at(epoch=8, best_epoch=5, session_s=80.0)) == "max_epochs"  # 2, 2, 2
    assert ends_by(clock, at(epoch=7, best_epoch=4, session_s=80.0)) == "time_limit"  # 3, 2, 2
    images = StopRules(EpochBudget(10), images=ImageBudget(1000, 100), time=TimeLimit(100.0))
    assert ends_by(images, at(epoch=8, images_seen=800, session_s=0.0)) == "max_epochs"  # 2, 2, 10
    assert ends_by(images, at(epoch=7, images_seen=800, session_s=80.0)) == "image_budget"  # 3, 2, 2
    assert [rule.reason for rule in clock.foreseen] == ["max_epochs", "time_limit", "early_stop"]


def test_the_countdown_event_carries_each_rules_numbers_and_says_them_in_its_words():
    rules = StopRules(
        EpochBudget(10), images=ImageBudget(1000, 100), time=TimeLimit(100.0), patience=Patience(5)
    )
    countdown = rules.countdown(at(epoch=4, best_epoch=3, images_seen=740, session_s=40.0, best=0.875))
    assert countdown == ev.Countdown(
        best_accuracy=0.875,
        best_epoch=3,
        patience_left=4,
        patience=5,
        budget_left=6,
        time_left_s=60.0,
        ends_by="image_budget",  # 260 images: 2.6 epochs, against 6 of time and 4 of patience
        images_left=260,
    )
    assert countdown.summary() == "ends after 260 more images (its image budget)"
    plain = StopRules(EpochBudget(10)).countdown(at(epoch=4))
    assert (plain.patience, plain.patience_left, plain.time_left_s, plain.images_left) == (None,) * 4


def test_each_rule_says_its_countdown_in_its_own_words():
    def countdown(**change) -> ev.Countdown:
        values = dict(
            best_accuracy=0.9,
            best_epoch=4,
            patience_left=2,
            patience=5,
            budget_left=3,
            time_left_s=None,
            ends_by="early_stop",
        )
        return ev.Countdown(**{**values, **change})

    assert countdown().summary() == "stops after 2 more epochs without improvement"
    assert countdown(patience_left=1).summary() == "stops after 1 more epoch without improvement"
    assert countdown(patience_left=0).summary() == "stops now: no improvement for its whole patience"
    assert countdown(ends_by="max_epochs").summary() == "ends after 3 more epochs (its epoch budget)"
    assert countdown(ends_by="max_epochs", budget_left=0).summary() == "ends now: its epoch budget is done"
    assert (
        countdown(ends_by="time_limit", time_left_s=240.0).summary() == "ends in about 4 min (its time limit)"
    )
    assert countdown(ends_by="time_limit", time_left_s=0.0).summary() == "ends now: out of time"
    assert countdown(ends_by="image_budget", images_left=0).summary() == "ends now: image budget spent"
    assert countdown(ends_by="image_budget", images_left=1500).summary() == (
        "ends after 1,500 more images (its image budget)"
    )
    # The words are the rules' own: the event asks them.
    assert countdown_summary(countdown(ends_by="time_limit", time_left_s=75.0)) == TimeLimit.summary(
        countdown(time_left_s=75.0)
    )


def test_the_default_patience_follows_the_set_and_the_time_limit():
    defaults = TrainConfig()
    # The default 48,000 generated images: 5 epochs, which can stop a run within its 15-epoch budget.
    assert patience_for(defaults.patience, False, 48_000) == 5 < defaults.epochs
    # 240 hand-labelled images: 50,000 images' worth, not 5 epochs (1,200 images: seconds at chance level).
    assert patience_for(None, False, 240) == 209
    # Under a time limit or an image budget the run uses it all (the schedule anneals over it).
    assert patience_for(None, True, 240) is None and patience_for(None, True, 12_800) is None
    # A patience given is kept, time limit or not.
    assert patience_for(7, True, 240) == 7 and patience_for(3, False, 48_000) == 3


def test_the_stop_rules_follow_the_config():
    request = threading.Event()
    rules = StopRules.for_run(TrainConfig(epochs=7), None, 240, request)
    assert rules.epochs == EpochBudget(7) and rules.request == StopRequest(request)
    assert (rules.images, rules.time, rules.patience, rules.target) == (None,) * 4
    config = TrainConfig(epochs=7, train_images=500, time_limit_s=30.0, target_accuracy=0.8)
    rules = StopRules.for_run(config, 4, 240, request)
    assert rules.images == ImageBudget(500, 240) and rules.time == TimeLimit(30.0)
    assert rules.patience == Patience(4) and rules.target == Target(0.8)


def epoch_end(epoch: int, accuracy: float, chars: float | None = None, cer: float | None = None):
    return ev.EpochEnd(epoch, 1.0, 0.5, None, 1.0, accuracy, chars, 1.0, 100.0, 1e-3, val_char_error_rate=cer)


def test_the_best_epoch_is_the_most_accurate_then_the_most_characters_right_then_the_earliest():
    assert BestScore(0.5, 0.1).beats(BestScore(0.4, 0.9))  # whole codes first
    assert BestScore(0.0, 0.3).beats(BestScore(0.0, 0.2))  # characters break ties, early on
    assert not BestScore(0.5, 0.8).beats(BestScore(0.5, 0.8))  # an equal score keeps the earlier epoch
    assert BestScore(0.0, 0.0).beats(NO_BEST)
    # CTC models: fewer character errors is better.
    assert BestScore.of(0.5, None, 0.1).beats(BestScore.of(0.5, None, 0.2))
    history = [epoch_end(1, 0.0, 0.3), epoch_end(2, 0.0, 0.4), epoch_end(3, 0.6, 0.9), epoch_end(4, 0.6, 0.9)]
    assert best_epoch(history).epoch == 3
    assert best_epoch([epoch_end(1, 0.5, cer=0.2), epoch_end(2, 0.5, cer=0.1)]).epoch == 2
    assert best_epoch([]) is None


def test_the_run_summary_picks_the_best_epoch_by_the_trainers_rule(tmp_path):
    history = [
        epoch_end(1, 0.0, 0.3),
        epoch_end(2, 0.7, 0.9),
        epoch_end(3, 0.7, 0.95),
        epoch_end(4, 0.7, 0.95),
    ]
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(asdict(e)) + "\n" for e in history))
    assert read_run_summary(tmp_path).best.epoch == 3


def test_the_run_summary_agrees_with_the_run_it_reads(trained_run):
    run_dir, events = trained_run
    finished = events[-1]
    assert read_run_summary(run_dir).best.epoch == finished.best_epoch


def test_only_a_small_validation_split_under_an_annealed_schedule_keeps_the_final_weights():
    assert keeps_final_weights(30, "onecycle", 0.96)
    assert keeps_final_weights(SMALL_VALIDATION - 1, "onecycle", ANNEALED)
    assert not keeps_final_weights(SMALL_VALIDATION, "onecycle", 1.0)  # enough images to choose by
    assert not keeps_final_weights(30, "onecycle", 0.5)  # stopped halfway: the highest-scoring epoch
    assert not keeps_final_weights(30, "constant", 1.0)  # a constant rate never anneals
    assert not keeps_final_weights(0, "onecycle", 1.0)  # no validation split: nothing was chosen by it
