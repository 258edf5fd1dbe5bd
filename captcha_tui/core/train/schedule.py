"""The learning rate: its peak, and the one-cycle schedule over the run's budget (epochs, the clock or
images, whichever ends the run first), which never runs backwards on a resume."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .. import events as ev
from ..augment import SMALL_SET
from ..model import DEFAULT_LR, PRESETS
from .stopping import ANNEALED

if TYPE_CHECKING:
    from .config import TrainConfig

WARMUP = 0.1  # share of the one-cycle schedule spent warming up
# A fine-tune starts from weights that already read captchas: a third of the preset's peak is enough to
# adapt them without wrecking them, and only the (possibly rebuilt) output layer needs a warm-up.
FINE_TUNE_LR_SHARE = 1 / 3
FINE_TUNE_WARMUP = 0.05
# A resumed run whose schedule had reached this (its learning rate at the floor) and was given at least
# MIN_ADDED_BUDGET more of it (epochs, images or a time limit) starts a new cycle (Schedule.restarted).
SCHEDULE_ENDED = ANNEALED
MIN_ADDED_BUDGET = 0.1
# About what bench fine-tune's five minutes show a set of 240 (250 epochs): what a small set needs.
SMALL_SET_IMAGES_SEEN = 60_000


def lr_factor(progress: float, schedule: str, warmup: float = WARMUP) -> float:
    """One-cycle: a short linear warm-up, then cosine decay to 1% (progress 0..1 over all epochs)."""
    if schedule == "constant":
        return 1.0
    if progress < warmup:
        return 0.05 + 0.95 * progress / warmup
    done = min(1.0, (progress - warmup) / (1 - warmup))
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * done))


def peak_learning_rate(preset: str, train_images: int, fine_tune: bool, lr: float | None = None) -> float:
    """The one-cycle schedule's peak: ``lr`` if given; else the preset's (model.py) for a generated-size
    set, but never above the per-position default for a small one (under ``SMALL_SET``), and a third of
    that for a fine-tune. Measured with ``bench fine-tune`` (docs/performance.md): from scratch on 240
    images, a CTC preset read 59.1% at 3e-3 and 44.1% at its own 6e-3."""
    if lr is not None:
        return lr
    peak = PRESETS[preset].lr if train_images >= SMALL_SET else min(PRESETS[preset].lr, DEFAULT_LR)
    return peak * FINE_TUNE_LR_SHARE if fine_tune else peak


def schedule_progress(
    epochs_done: float, elapsed_s: float, time_limit_s: float | None, start: float = 0.0
) -> float:
    """How far through the learning-rate schedule a step is (0..1): by epochs, or by the clock when a
    time limit would end the run first, so that it ends on a low learning rate instead of being cut off
    mid-schedule. ``epochs_done`` is the fraction of the epoch budget done, ``elapsed_s`` this session's
    training time and ``start`` where a resumed run's schedule was when the session began: the session's
    time limit covers the rest of the schedule, which never runs backwards."""
    by_clock = start + (1 - start) * elapsed_s / time_limit_s if time_limit_s else 0.0
    return max(epochs_done, start, by_clock)


@dataclass(frozen=True)
class Schedule:
    """One run's schedule: its shape and peak, and the budgets it spans."""

    kind: str  # "onecycle" or "constant"
    peak_lr: float
    warmup: float
    epochs: int
    time_limit_s: float | None
    train_images: int | None  # the image budget, where it ends the run first the schedule ends with it
    start: float = 0.0  # where the schedule was when this session began (0: a new run)
    # Where a new cycle began on a finished run given more budget (restarted): the budgets count from here.
    origin_epochs: float = 0.0
    origin_images: int = 0

    @classmethod
    def for_run(
        cls, config: TrainConfig, preset: str, train_count: int, fine_tune: bool, start: float = 0.0
    ) -> Schedule:
        """A fine-tune (or a resumed one: its checkpoints say so) gets the gentler peak and warm-up."""
        return cls(
            kind=config.schedule,
            peak_lr=peak_learning_rate(preset, train_count, fine_tune, config.lr),
            warmup=FINE_TUNE_WARMUP if fine_tune else WARMUP,
            epochs=config.epochs,
            time_limit_s=config.time_limit_s,
            train_images=config.train_images,
            start=start,
        )

    def progress(self, epochs_trained: float, images_seen: int, session_s: float) -> float:
        """How far through the schedule a step taken after ``epochs_trained`` epochs (a fraction inside
        one) and ``images_seen`` images is, ``session_s`` into this session."""
        epochs_done = (epochs_trained - self.origin_epochs) / max(self.epochs - self.origin_epochs, 1e-9)
        if self.train_images is not None:  # the image budget sets the pace where it ends the run first
            budget = max(self.train_images - self.origin_images, 1)
            epochs_done = max(epochs_done, (images_seen - self.origin_images) / budget)
        return schedule_progress(epochs_done, session_s, self.time_limit_s, self.start)

    def restarted(self, epochs_trained: float, images_seen: int, fine_tune_peak: float) -> Schedule | None:
        """A new, gentler cycle over the budget added to a run whose schedule had ended (``start`` at its
        end), or None where there is none to add or the schedule goes on. Without it, `--resume --epochs 30`
        on a finished 15-epoch run trained 15 more epochs at the floor (1% of the peak) and learnt nothing."""
        if self.kind != "onecycle" or self.start < SCHEDULE_ENDED:
            return None
        fresh = replace(self, start=0.0).progress(epochs_trained, images_seen, 0.0)
        if fresh > 1 - MIN_ADDED_BUDGET:
            return None  # a few more steps of the same budget: they finish the tail, not a new cycle
        return self.cycle_from(epochs_trained, images_seen, fine_tune_peak, start=0.0)

    def cycle_from(self, epochs_trained: float, images_seen: int, peak_lr: float, start: float) -> Schedule:
        """The cycle that began at ``epochs_trained`` and ``images_seen`` (RunState.cycle_origin), ``start``
        through it: the budgets count from there."""
        return replace(
            self,
            peak_lr=peak_lr,
            warmup=FINE_TUNE_WARMUP,
            start=start,
            origin_epochs=epochs_trained,
            origin_images=images_seen,
        )

    def learning_rate(self, progress: float) -> float:
        return self.peak_lr * lr_factor(progress, self.kind, self.warmup)


def short_run_notice(train_images: int, epochs: int) -> ev.Notice | None:
    """A warning when a small set would be seen too few times to learn from: the default 15 epochs suit
    48,000 generated images, while 240 hand-labelled ones want a few hundred (bench fine-tune's five
    minutes show them about 250 times, docs/performance.md)."""
    if not 0 < train_images < SMALL_SET or epochs * train_images >= SMALL_SET_IMAGES_SEEN // 3:
        return None
    wanted = math.ceil(SMALL_SET_IMAGES_SEEN / train_images / 10) * 10
    return ev.Notice(
        f"{train_images:,} training images × {epochs} epochs is only {epochs * train_images:,} images seen, "
        f"too few to learn from a small set: try --epochs {wanted}, "
        "or --epochs 1000 --time-limit 300 (five minutes, the schedule on the clock)",
        "warning",
    )
