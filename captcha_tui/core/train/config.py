"""What a run is asked to do: :class:`TrainConfig` (every option of `train` and of the dashboard is one
of its fields), the run folder's file names, and the errors a run reports to the user."""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..augment import SMALL_SET
from ..devices import DEVICE_LIST_HELP
from ..model import CTC_LR, DEFAULT_LR, PRESETS, batch_size_rule, default_preset_rule
from .self_training import PSEUDO_THRESHOLD, UNLABELLED_LIMIT
from .stopping import PATIENCE, PATIENCE_IMAGES

DEFAULT_DATA_DIR = Path("data/dataset")  # where `prepare` puts it
DEFAULT_RUN_DIR = Path("runs/default")
BEST, LAST, HISTORY, LOG = "best.pt", "last.pt", "history.jsonl", "train.log"
CONFIG = "config.json"
RUN_FILES = (CONFIG, HISTORY, LOG, BEST, LAST)  # any one of them makes a folder a run folder
MAX_DIST_TIMEOUT_S = (
    7 * 24 * 3600.0
)  # a week; torch turns the timeout into whole milliseconds (inf overflows)


# What `--resume` takes from the run's config.json where the command line does not say: the data and the
# recipe (the device, threads and logging may change from one sitting to the next). A time limit counts
# each sitting's training, and a sitting gets the run's own unless one is typed: a run of `--epochs 1000
# --time-limit 300`, resumed as its last line says, is not 1,000 epochs long with the patience it had off.
RESUMED_FIELDS = (
    "data",
    "time_limit_s",
    "preset",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "augment",
    "label_smoothing",
    "schedule",
    "patience",
    "seed",
    "target_accuracy",
    "train_images",
    "unlabelled",
    "pseudo_threshold",
    "unlabelled_limit",
    "generated",
)
PATH_FIELDS = ("data", "unlabelled")


def saved_recipe(run_dir: Path) -> dict:
    """The :data:`RESUMED_FIELDS` of ``run_dir``'s config.json ({} where it has none or it cannot be
    read: resume then says what is missing)."""
    try:
        saved = json.loads((Path(run_dir) / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict):
        return {}
    recipe = {name: saved[name] for name in RESUMED_FIELDS if name in saved}
    for name in PATH_FIELDS:
        if recipe.get(name) is not None:
            recipe[name] = Path(recipe[name])
    return recipe


def seconds(text: str) -> float | None:
    """``--time-limit``'s value: seconds, or ``none`` for no limit."""
    return None if text.strip().lower() in ("none", "off") else float(text)


def with_saved_recipe(config: TrainConfig, recipe: dict, given: Collection[str]) -> TrainConfig:
    """``config`` to resume a run with: its ``recipe`` (:func:`saved_recipe`) wherever an option was not
    ``given`` (typed), as `train --resume` takes it."""
    return replace(config, **{name: value for name, value in recipe.items() if name not in given})


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` has any of a run's files (a checkpoint, the history, the log or the config)."""
    return any((Path(folder) / name).exists() for name in RUN_FILES)


@dataclass
class TrainConfig:
    # A field with "help" in its metadata is a command-line option of `train` and of the dashboard, built
    # by cli.py from these declarations (flag: --field-name, or "flag"; a bool that defaults to True is
    # --no-field-name), so each default and help text is written here and nowhere else.
    data: Path = field(default=DEFAULT_DATA_DIR, metadata={"help": "dataset folder"})
    out: Path = field(default=DEFAULT_RUN_DIR, metadata={"help": "run folder for checkpoints"})
    # None: per-position "fast" for codes of one length, CTC "crnn-fast" for several (or the preset of the
    # checkpoint resumed or fine-tuned from).
    preset: str | None = field(
        default=None,
        metadata={
            "help": f"model (default: {default_preset_rule()})",
            "choices": tuple(sorted(PRESETS)),
        },
    )
    # One device, or a list trained data-parallel, one process each (devices.parse_device_list).
    device: str = field(default="auto", metadata={"help": DEVICE_LIST_HELP, "metavar": "DEVICE[,DEVICE…]"})
    # The one-cycle schedule spans these (or the time limit, if shorter).
    epochs: int = field(default=15, metadata={"help": "epochs of the learning-rate schedule"})
    # None: the preset's (model.run_batch_size).
    batch_size: int | None = field(
        default=None, metadata={"help": f"mini-batch size (default: {batch_size_rule()})"}
    )
    # None: peak_learning_rate decides (the preset's peak; lower for a small set and for a fine-tune).
    lr: float | None = field(
        default=None,
        metadata={
            "help": f"peak learning rate (default: the preset's, {DEFAULT_LR:g}, CTC presets {CTC_LR:g}; at most "
            f"{DEFAULT_LR:g} under {SMALL_SET:,} training images; a third of that for a fine-tune)"
        },
    )
    weight_decay: float = 0.05
    # On the device: shifts of a few pixels for a generated set, random warps and colour changes for a
    # small (hand-labelled) one (augment.py).
    augment: bool = field(default=True, metadata={"help": "train on the images exactly as they are"})
    # Aim for 90% (not 100%) on the right class: stops the model from growing ever more certain of the
    # training captchas, which it would otherwise start memorising within a few epochs.
    label_smoothing: float = field(
        default=0.1,
        metadata={"help": "share of each target spread over the other characters; 0: off", "metavar": "X"},
    )
    schedule: str = field(
        default="onecycle",
        metadata={
            "help": "onecycle: warm-up, then cosine decay; constant: one fixed learning rate",
            "choices": ("onecycle", "constant"),
        },
    )
    # None: patience_for decides (off under a time limit; else 5 epochs, and never fewer than
    # PATIENCE_IMAGES images' worth, so a small set is not stopped at chance level in its first seconds).
    patience: int | None = field(
        default=None,
        metadata={
            "help": f"epochs without a new best before stopping early (default: {PATIENCE}, and at least "
            f"{PATIENCE_IMAGES:,} training images' worth; off under --time-limit, which the run then uses "
            "to the end)"
        },
    )
    # None: on where the device has fast bf16/fp16 (devices.py).
    amp: bool | None = field(
        default=None,
        metadata={
            "help": "mixed precision (bf16/fp16); default: on for CUDA and for CPUs with bf16 units (AMX, AVX512-BF16)"
        },
    )
    resume: bool = field(default=False, metadata={"help": "continue from the run folder's last checkpoint"})
    seed: int = field(
        default=0, metadata={"help": "random seed of the initial weights, the batch order and the shifts"}
    )
    target_accuracy: float | None = field(
        default=None,
        metadata={"help": "stop once validation accuracy reaches this (0-1)", "flag": "--target"},
    )
    time_limit_s: float | None = field(
        default=None,
        metadata={
            "help": "stop after this many seconds of this sitting's training; the learning-rate schedule "
            "then ends on time (none: no limit, where a resumed run would keep its own)",
            "flag": "--time-limit",
            "metavar": "SECONDS|none",
            "parse": seconds,
        },
    )
    # A budget that does not depend on the machine's speed: recipes are compared at equal images seen.
    train_images: int | None = field(
        default=None,
        metadata={
            "help": "stop once the run has trained on this many images in all (at the mini-batch that "
            "reaches N); the learning-rate schedule then ends on the last of them",
            "metavar": "N",
        },
    )
    report_interval_s: float = 0.1  # at most ~10 progress events a second
    threads: int | None = field(default=None, metadata={"help": "CPU threads for PyTorch"})
    init: Path | None = field(
        default=None,
        metadata={
            "help": "start from this checkpoint's weights (fine-tune; 'base': the base model shipped with "
            "captcha-tui); a fine-tune peaks at a third of the preset's learning rate unless --lr sets it",
            "metavar": "CHECKPOINT",
        },
    )
    # Self-training (self_training.py): the user's unlabelled captchas, pseudo-labelled by the model itself
    # where it is confident; and generated captchas mixed in, to keep the built-in style readable.
    unlabelled: Path | None = field(
        default=None,
        metadata={
            "help": "also learn from the images in DIR (not labelled): the model's own confident reads of "
            "them, read anew as the run goes on",
            "metavar": "DIR",
        },
    )
    pseudo_threshold: float = field(
        default=PSEUDO_THRESHOLD,
        metadata={
            "help": "with --unlabelled: the least probability of every character of a read that is "
            "trained on",
            "metavar": "P",
        },
    )
    # With --unlabelled: the most of its images kept (chosen at random beyond it). Each is read now and then,
    # so the label screen's short fine-tunes keep fewer than a long run.
    unlabelled_limit: int = UNLABELLED_LIMIT
    # Off by default: at an equal budget, 1,000 of them in every epoch of a 300-label fine-tune with
    # --unlabelled cost 12 points on the user's own style (71.4% → 59.4%, docs/performance.md).
    generated: int = field(
        default=0,
        metadata={
            "help": "captchas of the built-in style mixed into every epoch, with the data's characters and "
            "lengths: the model keeps reading that style, at some cost on yours",
            "metavar": "N",
        },
    )
    # Under torchrun: how long a process waits in a collective for the others before the run ends with an
    # error (a peer that died or hangs); torchrun itself ends the others when one dies.
    dist_timeout_s: float = field(
        default=120.0,
        metadata={
            "help": "under torchrun: seconds a training process waits for the others before ending the run",
            "flag": "--dist-timeout",
            "metavar": "SECONDS",
        },
    )
    log_dir: Path | None = field(
        default=None,
        metadata={
            "help": "also write TensorBoard event files into DIR (needs pip install 'captcha-tui[tensorboard]')",
            "metavar": "DIR",
        },
    )

    @property
    def budgeted(self) -> bool:
        """A time limit or an image budget: the schedule anneals over it, so by default nothing stops the
        run before it is spent (stopping.patience_for)."""
        return self.time_limit_s is not None or self.train_images is not None

    @property
    def patience_known(self) -> bool:
        """Whether the run's patience is known before its data is (else it follows the set's size)."""
        return self.patience is not None or self.budgeted

    def validate(self) -> None:
        """Raise ValueError for settings that cannot work, with what to do instead."""
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1 (got {self.batch_size})")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1 (got {self.epochs})")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be at least 1 (got {self.patience})")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"learning rate must be a positive number (got {self.lr})")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        if self.schedule not in ("onecycle", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; use onecycle or constant")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label smoothing must be in [0, 1) (got {self.label_smoothing})")
        if self.time_limit_s is not None and not 0 < self.time_limit_s < math.inf:
            raise ValueError(f"--time-limit must be a positive number of seconds (got {self.time_limit_s})")
        if self.train_images is not None and self.train_images < 1:
            raise ValueError(f"--train-images must be at least 1 (got {self.train_images})")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise ValueError("target accuracy must be in (0, 1]")
        if not 0 < self.dist_timeout_s <= MAX_DIST_TIMEOUT_S:
            raise ValueError(
                f"--dist-timeout must be a number of seconds from 0 to {MAX_DIST_TIMEOUT_S:,.0f} (a week; "
                f"got {self.dist_timeout_s})"
            )
        if not 0 < self.pseudo_threshold <= 1:
            raise ValueError(f"--pseudo-threshold must be in (0, 1] (got {self.pseudo_threshold})")
        if self.unlabelled_limit < 1:
            raise ValueError(f"unlabelled_limit must be at least 1 (got {self.unlabelled_limit})")
        if self.generated < 0:
            raise ValueError(f"--generated takes 0 or more captchas (got {self.generated})")
        if self.init is not None and self.resume:
            raise ValueError(
                "--init and --resume do not go together: --resume carries on from the run folder's own "
                "last.pt; to fine-tune, train with --init into a new --out"
            )


class TrainingError(RuntimeError):
    """A failure with a message meant for the user (no traceback needed)."""


class ConfigError(TrainingError):
    """What was asked cannot be done as asked (a setting, or a dataset or run folder that does not fit
    it): the user changes the command. A usage error: one line, exit 2, no traceback and no error.log."""
