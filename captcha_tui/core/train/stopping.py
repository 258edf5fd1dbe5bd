"""When a run ends, and which epoch is its best.

One object per stop rule, as Lightning's callbacks are: each holds its check (:meth:`StopRule.stops`),
how far it is from ending the run (:meth:`StopRule.epochs_left`, which the countdown compares) and its
words: ``finished`` (how a finish says it) and :meth:`StopRule.summary` (how a :class:`~..events.Countdown`
says it). Its ``reason`` is the :class:`~..events.Finished` reason, the one name front ends key on.
:class:`StopRules` holds a run's active rules and asks them in order.

:class:`BestScore` is the other decision a run makes after each epoch, written once for the trainer and
for whoever reads a run's history.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .. import events as ev
from ..durations import rough_duration

if TYPE_CHECKING:
    from .config import TrainConfig

PATIENCE = 5  # epochs without a new best, by default
# The least a default patience waits, in images seen: 5 epochs of 240 hand-labelled images are 1,200 images
# (seconds, at chance level), where 5 epochs of the default 48,000 are 240,000.
PATIENCE_IMAGES = 50_000


def patience_for(patience: int | None, budgeted: bool, train_images: int) -> int | None:
    """The epochs without a new best that end a run early; None: no early stop.

    A patience given is kept as it is. By default there is none under a time limit or an image budget
    (``budgeted``): the schedule anneals over that budget, so stopping before it is spent ends the run at a
    high learning rate, with time the user gave unused (best.pt holds the best epoch either way).
    Otherwise :data:`PATIENCE` epochs, but at least :data:`PATIENCE_IMAGES` images' worth."""
    if patience is not None:
        return patience
    if budgeted:
        return None
    return max(PATIENCE, math.ceil(PATIENCE_IMAGES / max(train_images, 1)))


@dataclass(frozen=True)
class Standing:
    """Where the run stands when the rules are asked."""

    epoch: int  # epochs completed
    best_epoch: int  # 0: no best yet
    best_accuracy: float
    images_seen: int
    session_s: float  # this session's training time, pauses excluded
    val_accuracy: float | None = None  # of the epoch just ended; None inside an epoch
    epoch_s: float = 0.0  # how long the last epoch took: what turns seconds left into epochs left
    patience_from: int = 0  # where a new learning-rate cycle began: its first epochs are no stagnation


def _epochs(count: int) -> str:
    return f"{count} more epoch{'s' if count != 1 else ''}"


class StopRule:
    reason: ClassVar[str]  # the Finished reason
    finished: ClassVar[str]  # how a finish says it: "finished: reached the last epoch after …"
    name: ClassVar[str] = ""  # how the countdown and the run's ETA name a rule they can foresee
    spent: ClassVar[str] = ""  # a budget that can run out inside an epoch: how to say it did
    scores_test: ClassVar[bool] = True  # whether the run then scores the test split with its best weights

    def stops(self, at: Standing) -> bool:
        raise NotImplementedError

    def epochs_left(self, at: Standing) -> float | None:
        """Epochs until this rule ends the run, if no new best comes; None: it cannot be foreseen."""
        return None

    def notice(self, at: Standing) -> str | None:
        """What the trainer says when this rule has ended the run (None: the finish says it all)."""
        return None

    @staticmethod
    def summary(countdown: ev.Countdown) -> str:
        """How a countdown whose ``ends_by`` is this rule says when the run ends."""
        raise NotImplementedError


@dataclass(frozen=True)
class EpochBudget(StopRule):
    """``--epochs``: the run's total, a resumed run's earlier epochs included."""

    epochs: int
    reason: ClassVar[str] = "max_epochs"
    finished: ClassVar[str] = "reached the last epoch"
    name: ClassVar[str] = "its epoch budget"

    def stops(self, at: Standing) -> bool:
        return at.epoch >= self.epochs

    def left(self, at: Standing) -> int:
        return self.epochs - at.epoch

    def epochs_left(self, at: Standing) -> float:
        return float(self.left(at))

    @staticmethod
    def summary(countdown: ev.Countdown) -> str:
        left = max(countdown.budget_left, 0)
        if left == 0:
            return "ends now: its epoch budget is done"
        return f"ends after {_epochs(left)} ({EpochBudget.name})"


@dataclass(frozen=True)
class ImageBudget(StopRule):
    """``--train-images``: ends the run at the mini-batch that reaches it, inside an epoch or at its end."""

    images: int
    train_count: int  # training images an epoch: what turns images left into epochs left
    reason: ClassVar[str] = "image_budget"
    finished: ClassVar[str] = "trained on its budget of images"
    name: ClassVar[str] = "its image budget"
    spent: ClassVar[str] = "image budget spent"

    def stops(self, at: Standing) -> bool:
        return at.images_seen >= self.images

    def left(self, at: Standing) -> int:
        return max(0, self.images - at.images_seen)

    def epochs_left(self, at: Standing) -> float:
        return self.left(at) / max(self.train_count, 1)

    @staticmethod
    def summary(countdown: ev.Countdown) -> str:
        left = max(countdown.images_left or 0, 0)
        return (
            f"ends after {left:,} more images ({ImageBudget.name})"
            if left
            else f"ends now: {ImageBudget.spent}"
        )


@dataclass(frozen=True)
class TimeLimit(StopRule):
    """``--time-limit``: this session's training time (a resumed run gets it afresh), pauses excluded."""

    seconds: float
    reason: ClassVar[str] = "time_limit"
    finished: ClassVar[str] = "reached the time limit"
    name: ClassVar[str] = "its time limit"
    spent: ClassVar[str] = "out of time"

    def stops(self, at: Standing) -> bool:
        return at.session_s >= self.seconds

    def left_s(self, at: Standing) -> float:
        return max(0.0, self.seconds - at.session_s)

    def epochs_left(self, at: Standing) -> float:
        return self.left_s(at) / max(at.epoch_s, 1e-9)

    @staticmethod
    def summary(countdown: ev.Countdown) -> str:
        left = max(countdown.time_left_s or 0.0, 0.0)
        if not left:
            return f"ends now: {TimeLimit.spent}"
        return f"ends in about {rough_duration(left)} ({TimeLimit.name})"


@dataclass(frozen=True)
class Patience(StopRule):
    """``--patience``: epochs without a new best. Not certain: a new best puts it off."""

    epochs: int
    reason: ClassVar[str] = "early_stop"
    finished: ClassVar[str] = "stopped early (no improvement)"

    def stops(self, at: Standing) -> bool:
        return self.left(at) <= 0

    def left(self, at: Standing) -> int:
        return self.epochs - (at.epoch - max(at.best_epoch, at.patience_from))

    def epochs_left(self, at: Standing) -> float:
        return float(self.left(at))

    def notice(self, at: Standing) -> str:
        since = "in the first" if at.patience_from > at.best_epoch else "for"
        cycle = " of its new learning-rate cycle" if at.patience_from > at.best_epoch else ""
        return (
            f"early stop: no new best {since} {self.epochs} epochs{cycle} "
            f"(best {at.best_accuracy:.3f} at epoch {at.best_epoch})"
        )

    @staticmethod
    def summary(countdown: ev.Countdown) -> str:
        left = max(countdown.patience_left or 0, 0)
        if left == 0:
            return "stops now: no improvement for its whole patience"
        return f"stops after {_epochs(left)} without improvement"


@dataclass(frozen=True)
class Target(StopRule):
    """``--target``: validation accuracy reached at the end of an epoch."""

    accuracy: float
    reason: ClassVar[str] = "target_reached"
    finished: ClassVar[str] = "reached the target accuracy"

    def stops(self, at: Standing) -> bool:
        return at.val_accuracy is not None and at.val_accuracy >= self.accuracy

    def notice(self, at: Standing) -> str:
        return f"validation accuracy {at.val_accuracy:.3f} reached the target {self.accuracy:.3f}"


@dataclass(frozen=True)
class StopRequest(StopRule):
    """A stop asked for (s in the dashboard, Ctrl+C headless), from any thread."""

    event: threading.Event
    reason: ClassVar[str] = "stopped"
    finished: ClassVar[str] = "stopped by request"
    scores_test: ClassVar[bool] = False  # the run is to be resumed, not judged

    def stops(self, at: Standing) -> bool:
        return self.event.is_set()

    def notice(self, at: Standing) -> str:
        return f"stopped in epoch {at.epoch + 1}; continue with --resume"


RULES: tuple[type[StopRule], ...] = (Target, EpochBudget, ImageBudget, Patience, StopRequest, TimeLimit)
FINISH_WORDS = {rule.reason: rule.finished for rule in RULES}  # by Finished reason
_FORESEEN = {rule.reason: rule for rule in (EpochBudget, ImageBudget, TimeLimit, Patience)}


def countdown_summary(countdown: ev.Countdown) -> str:
    """``stops after 3 more epochs without improvement``, ``ends after 2 more epochs (its epoch budget)``
    or ``ends in about 4 min (its time limit)``: the words of the rule the countdown names."""
    return _FORESEEN.get(countdown.ends_by, Patience).summary(countdown)


# Several processes training one run (distributed.py): which of the rules fired on any of them, the same
# answer on all, so that none carries on alone into a collective the others have left.
Agree = Callable[[list[bool]], list[bool]]


def _first(rules: tuple[StopRule | None, ...], at: Standing, agree: Agree | None) -> StopRule | None:
    """The first of ``rules`` that stops the run (on any process, given ``agree``), or None."""
    fired = [rule is not None and rule.stops(at) for rule in rules]
    if agree is not None:
        fired = agree(fired)
    return next((rule for rule, stops in zip(rules, fired, strict=True) if stops), None)


class StopRules:
    """A run's active rules. The epoch budget is always on; the others as the config asks."""

    def __init__(
        self,
        epochs: EpochBudget,
        *,
        images: ImageBudget | None = None,
        time: TimeLimit | None = None,
        patience: Patience | None = None,
        target: Target | None = None,
        request: StopRequest | None = None,
    ):
        self.epochs, self.images, self.time = epochs, images, time
        self.patience, self.target, self.request = patience, target, request
        # What the countdown compares, in its tie-break order: the certain ends first (the epoch budget,
        # then the image budget, then the clock), patience last, since a new best puts it off.
        self.foreseen: tuple[StopRule, ...] = tuple(
            rule for rule in (epochs, images, time, patience) if rule is not None
        )

    @classmethod
    def for_run(
        cls, config: TrainConfig, patience: int | None, train_count: int, request: threading.Event
    ) -> StopRules:
        return cls(
            EpochBudget(config.epochs),
            images=None if config.train_images is None else ImageBudget(config.train_images, train_count),
            time=None if config.time_limit_s is None else TimeLimit(config.time_limit_s),
            patience=None if patience is None else Patience(patience),
            target=None if config.target_accuracy is None else Target(config.target_accuracy),
            request=StopRequest(request),
        )

    def after_epoch(self, at: Standing, agree: Agree | None = None) -> StopRule | None:
        """The rule that ends the run after an epoch, or None to carry on. The run's natural ends come
        first, so a stop pressed while the last epoch is validated still scores the test split; then what
        also ends it inside an epoch."""
        return _first(
            (self.target, self.epochs, self.images, self.patience, self.request, self.images, self.time),
            at,
            agree,
        )

    def before_batch(self, at: Standing, agree: Agree | None = None) -> StopRule | None:
        """The rule that ends the run before its next mini-batch, or None to carry on."""
        return _first((self.request, self.images, self.time), at, agree)

    def ends_by(self, at: Standing) -> StopRule:
        """The rule that ends the run first if no new best comes: the fewest epochs left, a tie going to
        the rule listed first in :attr:`foreseen`."""
        return min(enumerate(self.foreseen), key=lambda pair: (pair[1].epochs_left(at), pair[0]))[1]

    def time_left_s(self, at: Standing) -> float | None:
        return None if self.time is None else self.time.left_s(at)

    def images_left(self, at: Standing) -> int | None:
        return None if self.images is None else self.images.left(at)

    def countdown(self, at: Standing) -> ev.Countdown:
        return ev.Countdown(
            best_accuracy=at.best_accuracy,
            best_epoch=at.best_epoch,
            patience_left=None if self.patience is None else self.patience.left(at),
            patience=None if self.patience is None else self.patience.epochs,
            budget_left=self.epochs.left(at),
            time_left_s=self.time_left_s(at),
            ends_by=self.ends_by(at).reason,
            images_left=self.images_left(at),
        )


@dataclass(frozen=True, order=True)
class BestScore:
    """What makes an epoch the best, as Lightning's ModelCheckpoint monitors its metric in mode "max":
    the higher validation accuracy; between equal ones, more characters right (character accuracy, or
    1 − the character error rate for CTC models), which tells epochs apart early on while whole-code
    accuracy is still 0. Only a higher score beats: between equal ones the earlier epoch stays."""

    accuracy: float
    chars: float

    @classmethod
    def of(cls, accuracy: float, char_accuracy: float | None, char_error_rate: float | None) -> BestScore:
        if char_accuracy is not None:
            return cls(accuracy, char_accuracy)
        return cls(accuracy, 1.0 - (char_error_rate or 0.0))

    @classmethod
    def of_epoch(cls, e: ev.EpochEnd) -> BestScore:
        return cls.of(e.val_accuracy, e.val_char_accuracy, e.val_char_error_rate)

    def beats(self, other: BestScore) -> bool:
        return self > other


NO_BEST = BestScore(-1.0, -1.0)  # beaten by any epoch

# Below this many validation images, chance moves whole-code accuracy by more than a fine-tune's epochs
# differ (30 images, a user's 300 labels: one image is 3.3 points, a standard error about 6 near 85%), so
# the epoch that scores highest is a draw. A run whose one-cycle schedule has annealed then keeps its final
# weights: on the `captcha` package's style, 300 labels + 3,000 unlabelled, the highest-scoring of 50 epochs
# (17th, 86.7% on 30) read 82.9% of 1,000 unseen captchas and the final weights 90.1% (docs/performance.md).
SMALL_VALIDATION = 200
ANNEALED = 0.9  # how far through the schedule counts as its end: the learning rate under 4% of its peak


def keeps_final_weights(val_count: int, schedule: str, schedule_at: float) -> bool:
    """Whether a run ending now keeps its final weights as the best (best.pt), whatever they score: a
    small validation split, and a one-cycle schedule that has annealed (not a stop by request or patience
    halfway through it)."""
    return 0 < val_count < SMALL_VALIDATION and schedule != "constant" and schedule_at >= ANNEALED


def best_epoch(epochs: Iterable[ev.EpochEnd]) -> ev.EpochEnd | None:
    """The epoch a run kept as its best (best.pt), chosen from its history as the trainer chose it."""
    best, score = None, NO_BEST
    for e in epochs:
        if BestScore.of_epoch(e).beats(score):
            best, score = e, BestScore.of_epoch(e)
    return best
