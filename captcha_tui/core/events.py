"""The vocabulary the trainer speaks.

Every consumer (the TUI, the headless printer, tests) reads these frozen dataclasses and nothing else;
nobody reaches into the trainer. Events are emitted from the training thread, so listeners must be quick
and thread-safe (the TUI only queues them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .spec import CodeSpec


@dataclass(frozen=True)
class RunStarted:
    """Emitted once, before the first batch."""

    dataset: str
    train_count: int
    val_count: int
    test_count: int
    spec: CodeSpec
    preset: str
    device: str
    batch_size: int
    learning_rate: float
    amp: bool
    patience: int
    max_epochs: int
    start_epoch: int  # 1 for a fresh run; later when resuming
    batches_per_epoch: int
    run_dir: str
    parameters: int


@dataclass(frozen=True)
class BatchProgress:
    """Training progress inside an epoch.

    Sent at most about ten times a second (and always for the last batch of an epoch): the trainer keeps
    running sums on the device and only reads them back when a report is due, so a GPU is not synced on
    every batch just to show a number. Loss and accuracies cover the batches since the previous report.
    """

    epoch: int
    batch: int  # 1-based index of the last batch included
    batches: int  # batches in this epoch
    loss: float
    accuracy: float  # whole code right
    char_accuracy: float  # single characters right
    images_per_s: float  # over this epoch so far
    eta_s: float  # for the rest of this epoch
    batch_size: int


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    train_loss: float
    train_accuracy: float
    train_char_accuracy: float
    val_loss: float
    val_accuracy: float
    val_char_accuracy: float
    seconds: float
    images_per_s: float
    learning_rate: float


@dataclass(frozen=True)
class NewBest:
    epoch: int
    val_accuracy: float
    previous: float | None


@dataclass(frozen=True)
class Countdown:
    """Early-stopping state after each epoch: how many more epochs without a new best until it stops."""

    best_accuracy: float
    best_epoch: int
    epochs_left: int
    patience: int


@dataclass(frozen=True)
class CheckpointSaved:
    path: str
    kind: str  # "best" or "last"
    epoch: int


@dataclass(frozen=True)
class BatchSizeReduced:
    """The device ran out of memory; the same batch is retried with a smaller mini-batch."""

    old: int
    new: int
    epoch: int
    batch: int
    device: str


@dataclass(frozen=True)
class StateChanged:
    state: str  # "running", "paused", "stopping"


@dataclass(frozen=True)
class Notice:
    """Something worth a line in the event log (resumed, a warning, ...)."""

    message: str
    level: str = "info"  # "info", "warning", "error"


@dataclass(frozen=True)
class Finished:
    reason: str  # "early_stop", "max_epochs", "stopped", "target_reached", "time_limit"
    epochs_run: int
    best_epoch: int
    best_val_accuracy: float
    test_accuracy: float | None  # None when stopped before any best weights existed
    test_char_accuracy: float | None
    best_checkpoint: str | None
    last_checkpoint: str | None
    elapsed_s: float
    images_seen: int


@dataclass(frozen=True)
class Failed:
    message: str
    traceback: str = ""
    log_path: str | None = None
    hint: str = field(default="")


TrainerEvent = (
    RunStarted
    | BatchProgress
    | EpochEnd
    | NewBest
    | Countdown
    | CheckpointSaved
    | BatchSizeReduced
    | StateChanged
    | Notice
    | Finished
    | Failed
)
