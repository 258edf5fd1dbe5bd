"""Training, by concern: ``config`` (what a run is asked to do), ``schedule`` (the learning rate),
``stopping`` (the rules that end a run, and its best epoch), ``start`` (a new run, a fine-tune, a resume),
``step`` (one optimisation step, a split's scores) and ``loop`` (the :class:`Trainer` that runs them)."""

from .config import (
    BEST,
    DEFAULT_DATA_DIR,
    DEFAULT_RUN_DIR,
    HISTORY,
    LAST,
    LOG,
    ConfigError,
    TrainConfig,
    TrainingError,
)
from .loop import Trainer, train
from .schedule import lr_factor, peak_learning_rate, schedule_progress, short_run_notice
from .start import resolve_init, transfer_weights
from .step import Scores, evaluate, mixed_precision, train_step
from .stopping import StopRules, best_epoch, patience_for

__all__ = [
    "BEST",
    "DEFAULT_DATA_DIR",
    "DEFAULT_RUN_DIR",
    "HISTORY",
    "LAST",
    "LOG",
    "ConfigError",
    "Scores",
    "StopRules",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "best_epoch",
    "evaluate",
    "lr_factor",
    "mixed_precision",
    "patience_for",
    "peak_learning_rate",
    "resolve_init",
    "schedule_progress",
    "short_run_notice",
    "train",
    "train_step",
    "transfer_weights",
]
