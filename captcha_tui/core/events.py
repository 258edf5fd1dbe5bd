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
    patience: int | None  # epochs without a new best that end the run; None: no early stop
    max_epochs: int
    start_epoch: int  # 1 for a fresh run; later when resuming
    batches_per_epoch: int
    run_dir: str
    parameters: int
    init: str | None = None  # the checkpoint a fine-tune started from (None: a new model)
    # This session's limit on training time (a resumed run gets it afresh); pauses do not count.
    time_limit_s: float | None = None
    # Under torchrun: the processes training the run together and their backend (gloo, nccl); batch_size
    # is each process's, and the images/s reported are the run's.
    processes: int = 1
    backend: str | None = None


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
    char_accuracy: float | None  # single characters right (per-position models; None for CTC)
    images_per_s: float  # over this epoch so far, pauses excluded
    eta_s: float  # for the rest of this epoch, at that rate
    batch_size: int
    # CTC models, whose codes vary in length: edit distance ÷ characters, of the last batch reported.
    char_error_rate: float | None = None
    # Of this session's time limit, pauses excluded (None without one): with ``eta_s`` it tells a front end
    # which rule ends the whole run and when.
    time_left_s: float | None = None
    images_left: int | None = None  # of the run's image budget (--train-images); None without one


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    train_loss: float
    train_accuracy: float
    train_char_accuracy: float | None  # per-position models
    val_loss: float
    val_accuracy: float
    val_char_accuracy: float | None
    seconds: float
    images_per_s: float
    learning_rate: float
    # CTC models: character error rate (edit distance ÷ characters); for training, of the batches sampled
    # at each report, for validation, of the whole split.
    train_char_error_rate: float | None = None
    val_char_error_rate: float | None = None
    # train --unlabelled: pseudo-labelled images in this epoch, and how often the model's confident reads
    # of the held-out images agree with their labels (self_training.py).
    pseudo_labels: int | None = None
    pseudo_agreement: float | None = None


@dataclass(frozen=True)
class NewBest:
    epoch: int
    val_accuracy: float
    previous: float | None


@dataclass(frozen=True)
class Countdown:
    """After each epoch: the best so far, and which rule will end the run first if no new best comes.

    ``ends_by`` is a :class:`Finished` reason: ``"max_epochs"`` (the epoch budget), ``"time_limit"`` or
    ``"early_stop"`` (patience), or ``"image_budget"``; :meth:`summary` says it in words."""

    best_accuracy: float
    best_epoch: int
    patience_left: int | None  # epochs without a new best until an early stop; None: no early stop
    patience: int | None
    budget_left: int  # epochs left in the --epochs budget
    time_left_s: float | None  # of this session's time limit; None without one
    ends_by: str
    images_left: int | None = None  # of the run's image budget (--train-images); None without one

    def summary(self) -> str:
        """``stops after 3 more epochs without improvement``, ``ends after 2 more epochs (its epoch
        budget)`` or ``ends in about 4 min (its time limit)``: in the words of the rule (stopping.py)."""
        from .train.stopping import countdown_summary  # here, not at the top: stopping imports events

        return countdown_summary(self)


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
    # A stop rule's reason (train/stopping.py): "early_stop", "max_epochs", "image_budget", "stopped",
    # "target_reached" or "time_limit".
    reason: str
    epochs_run: int
    best_epoch: int
    best_val_accuracy: float
    test_accuracy: float | None  # None when stopped before any best weights existed
    test_char_accuracy: float | None
    best_checkpoint: str | None
    last_checkpoint: str | None
    elapsed_s: float  # training time of the whole run (a resumed run's earlier sessions too), pauses excluded
    images_seen: int
    test_char_error_rate: float | None = None  # CTC models


@dataclass(frozen=True)
class Failed:
    message: str
    traceback: str = ""
    log_path: str | None = None
    hint: str = field(default="")
    usage: bool = False  # what was asked cannot be done as asked (exit 2): not a fault, no traceback


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
