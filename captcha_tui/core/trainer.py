"""The training loop. No UI here: it reports through events (see ``events.py``) and runs in any thread.

Read ``Trainer._train`` top to bottom for the whole story: set up (the dataset on the device, the model,
fresh, fine-tuned from ``init`` or resumed), then epochs of (train, validate, keep the best, save, ask the
stop rules), then the test split scored with the best weights. Every rule that ends a run is decided in
:meth:`Trainer._stop_reason`.

Time is training time: a pause counts in neither the images/s rate, the ETA, the time limit nor the
learning-rate schedule's clock. On ``resume``, ``epochs`` stays the run's total epoch budget (so the
one-cycle schedule carries on where it was; a budget already spent is refused with the number to pass),
while ``time_limit_s`` counts this session's training only and anneals what is left of the schedule.

A fine-tune (``init``) copies every weight of the checkpoint that fits the dataset's spec, rebuilds the
output layer where the charset or length differ (keeping the rows of shared characters), and trains at a
third of its preset's peak learning rate (unless ``lr`` is set) after a 5% warm-up.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import events as ev
from .augment import SMALL_SET, WARP, augment, augmentation_for
from .base_model import BASE_MODEL, base_model_path
from .checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, save_checkpoint
from .dataset import Dataset, DatasetError, load_dataset
from .devices import DeviceError, resolve_amp, resolve_device
from .model import (
    CTC_LR,
    DEFAULT_LR,
    DEFAULT_PRESET,
    PRESETS,
    CaptchaNet,
    build_model,
    count_parameters,
    default_preset,
    default_preset_rule,
    prefers_channels_last,
    preset_spec,
    to_model_input,
)
from .objectives import CtcObjective, Objective, character_errors, objective_for
from .spec import PAD, CodeSpec

PATIENCE = 5  # epochs without a new best, by default
# The least a default patience waits, in images seen: 5 epochs of 240 hand-labelled images are 1,200 images
# (seconds, at chance level), where 5 epochs of the default 48,000 are 240,000.
PATIENCE_IMAGES = 50_000
DEFAULT_DATA_DIR = Path("data/dataset")  # where `prepare` puts it
DEFAULT_RUN_DIR = Path("runs/default")
BEST, LAST, HISTORY, LOG = "best.pt", "last.pt", "history.jsonl", "train.log"
EVAL_BATCH = 1000
WARMUP = 0.1  # share of the one-cycle schedule spent warming up
# A fine-tune starts from weights that already read captchas: a third of the preset's peak is enough to
# adapt them without wrecking them, and only the (possibly rebuilt) output layer needs a warm-up.
FINE_TUNE_LR_SHARE = 1 / 3
# About what bench fine-tune's five minutes show a set of 240 (250 epochs): what a small set needs.
SMALL_SET_IMAGES_SEEN = 60_000
FINE_TUNE_WARMUP = 0.05

EventSink = Callable[[ev.TrainerEvent], None]
# Called before every optimisation step with (epoch, batch, batch_size): a seam for fault-injection tests.
StepHook = Callable[[int, int, int], None]
Clock = Callable[[], float]  # seconds, monotonic: time.perf_counter unless a test injects one


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
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps"})
    # The one-cycle schedule spans these (or the time limit, if shorter).
    epochs: int = field(default=15, metadata={"help": "epochs of the learning-rate schedule"})
    batch_size: int = field(default=100, metadata={"help": "mini-batch size"})
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
            "help": "stop after this many seconds; the learning-rate schedule then ends on time",
            "flag": "--time-limit",
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

    def validate(self) -> None:
        """Raise ValueError for settings that cannot work, with what to do instead."""
        if self.batch_size < 1:
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
        if self.train_images is not None and self.train_images < 1:
            raise ValueError(f"--train-images must be at least 1 (got {self.train_images})")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise ValueError("target accuracy must be in (0, 1]")
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


@dataclass
class _State:
    """What a resumable checkpoint must carry beyond the weights."""

    epoch: int = 0  # completed epochs
    position: int = 0  # images of epoch + 1 already trained on (an interrupted epoch)
    best_val: float = -1.0
    best_char: float = -1.0  # breaks ties early on, while whole-code accuracy is still 0
    best_epoch: int = 0
    batch_size: int = 100
    images_seen: int = 0
    elapsed_s: float = 0.0  # training time of the whole run so far, every session's, pauses excluded
    schedule_at: float = 0.0  # how far through the learning-rate schedule the last step was (0..1)
    history: list[dict] = field(default_factory=list)


@dataclass
class _Loop:
    """What the loop works with, passed around as one: the data on the device and the model it trains."""

    data: Dataset
    model: CaptchaNet
    optimizer: torch.optim.Optimizer
    autocast: torch.autocast | None
    scaler: torch.amp.GradScaler | None
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    spec: CodeSpec | None = None  # what the model reads: the dataset's codes, with the preset's decoder
    objective: Objective | None = None
    preset: str = DEFAULT_PRESET
    init: str | None = None  # the checkpoint this run was fine-tuned from
    peak_lr: float = 0.0
    warmup: float = WARMUP
    schedule_start: float = 0.0  # where the schedule was when this session began (0: a new run)
    augmentation: str | None = None  # augment.py's kind for this run's training set; None: off
    best_weights: dict | None = None
    last_batch: tuple[torch.Tensor, torch.Tensor] | None = None  # (decoded, targets), for the CER sample


class _Tally:
    """Loss × images, whole codes right and characters right: summed on the device, read back only when
    reported, so a GPU is not synced on every batch."""

    def __init__(self, device: torch.device, ctc: bool = False):
        self.sums = torch.zeros(3, device=device)
        self.images = 0
        self.ctc = ctc
        self.errors = self.characters = 0  # CTC: edit distances of the batches sampled at reports

    def add(self, stats: torch.Tensor, images: int) -> None:
        self.sums += stats
        self.images += images

    def add_errors(self, errors: int, characters: int) -> None:
        self.errors += errors
        self.characters += characters

    def means(self, length: int) -> Scores:
        """Loss, whole-code accuracy, and character accuracy (per-position models) or the character
        error rate of the sampled batches (CTC); one device sync."""
        loss, right, chars = self.sums.tolist()
        images = max(self.images, 1)
        if self.ctc:
            cer = self.errors / self.characters if self.characters else None
            return Scores(loss / images, right / images, None, cer)
        return Scores(loss / images, right / images, chars / (images * length), None)

    def clear(self) -> None:
        self.sums.zero_()
        self.images = 0
        self.errors = self.characters = 0


@dataclass(frozen=True)
class Scores:
    """A split's (or a stretch of batches') loss and accuracies. Per-position models report character
    accuracy; CTC models, whose codes vary in length, the character error rate (edit distance ÷ characters)."""

    loss: float
    accuracy: float
    char_accuracy: float | None
    char_error_rate: float | None

    @property
    def char_score(self) -> float:
        """Higher is better, for breaking ties between equal whole-code accuracies."""
        if self.char_accuracy is not None:
            return self.char_accuracy
        return 1.0 - (self.char_error_rate or 0.0)


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


def first_limit(
    budget_left: int,
    patience_left: int | None,
    time_left_s: float | None,
    epoch_s: float,
    images_left_epochs: float | None = None,
) -> str:
    """Which rule ends the run first if no new best comes: ``"max_epochs"``, ``"image_budget"``,
    ``"time_limit"`` or ``"early_stop"`` (the names of :class:`~.events.Finished` reasons; ``None``: that
    rule is off). ``images_left_epochs``: the image budget left, in epochs. A tie goes to the rule that is
    certain: the epoch budget, then the image budget, then the clock, then patience."""
    candidates = [(float(budget_left), 0, "max_epochs")]
    if images_left_epochs is not None:
        candidates.append((images_left_epochs, 0.5, "image_budget"))
    if patience_left is not None:
        candidates.append((float(patience_left), 2, "early_stop"))
    if time_left_s is not None:
        candidates.append((time_left_s / max(epoch_s, 1e-9), 1, "time_limit"))
    return min(candidates)[2]


def resolve_init(value: str | Path) -> Path:
    """The checkpoint ``init`` names: a path, or ``"base"`` for the base model shipped in the package
    (a file of that name is ``./base``). Raises :class:`TrainingError` when the base model is asked for
    and this install has none."""
    if str(value) != BASE_MODEL:
        return Path(value)
    shipped = base_model_path()
    if shipped is None:
        raise TrainingError(
            "this install of captcha-tui has no base model (captcha_tui/assets/base.pt): give --init a "
            f"checkpoint file (such as {DEFAULT_RUN_DIR / BEST})"
        )
    return shipped


@dataclass(frozen=True)
class Transfer:
    """What :func:`transfer_weights` carried over."""

    copied: int  # layers whose every tensor was copied
    layers: int
    output_rebuilt: bool  # the output layer did not fit and starts afresh (but for shared rows)
    shared_characters: int  # characters whose output rows were copied into a rebuilt output layer


def transfer_weights(
    model: torch.nn.Module, weights: dict[str, torch.Tensor], source: CodeSpec, target: CodeSpec
) -> Transfer:
    """Copy ``weights`` (a checkpoint's, read with ``source``) into ``model`` (built for ``target``): every
    tensor whose name and shape match, except the output layer when the two read different codes. That
    one is rebuilt; for per-position models with the same input, the rows of the characters both charsets
    share are copied by character (and position), so they need not be learnt again."""
    own = model.state_dict()  # the model's own tensors: copying into them changes the model
    output = _output_layer(own)
    same_codes = (source.charset, source.max_length, source.decoder) == (
        target.charset,
        target.max_length,
        target.decoder,
    )
    copied: set[str] = set()
    with torch.no_grad():
        for name, tensor in own.items():
            theirs = weights.get(name)
            if theirs is None or theirs.shape != tensor.shape:
                continue
            if name.rpartition(".")[0] == output and not same_codes:
                continue
            tensor.copy_(theirs)
            copied.add(name)
        shared = 0
        if output and not same_codes and source.decoder == target.decoder == "positional":
            shared = _copy_shared_rows(own, weights, output, source, target)
    layers: dict[str, bool] = {}
    for name in own:
        module = name.rpartition(".")[0]
        layers[module] = layers.get(module, True) and name in copied
    return Transfer(
        copied=sum(layers.values()),
        layers=len(layers),
        output_rebuilt=bool(output) and not layers.get(output, False),
        shared_characters=shared,
    )


def _output_layer(weights: dict[str, torch.Tensor]) -> str:
    """The name of the model's last linear layer (``head.2``), as checkpoint.py finds it; '' if none."""
    names = [
        k for k, v in weights.items() if k.startswith("head.") and k.endswith(".weight") and v.dim() == 2
    ]
    return names[-1].rpartition(".")[0] if names else ""


def _copy_shared_rows(own, weights, output: str, source: CodeSpec, target: CodeSpec) -> int:
    """Per-position output rows are ``position × classes + character``: copy those of shared characters."""
    weight, bias = own[f"{output}.weight"], own.get(f"{output}.bias")
    theirs, their_bias = weights.get(f"{output}.weight"), weights.get(f"{output}.bias")
    if theirs is None or theirs.dim() != 2 or theirs.shape[1] != weight.shape[1]:
        return 0  # another input size: no row fits
    chars = [(j, source.charset.index(c)) for j, c in enumerate(target.charset) if c in source.charset]
    rows, their_rows = [], []
    for position in range(min(source.max_length, target.max_length)):
        rows += [position * target.classes + j for j, _ in chars]
        their_rows += [position * source.classes + i for _, i in chars]
    if not rows:
        return 0
    rows_t, their_t = torch.tensor(rows), torch.tensor(their_rows)
    weight[rows_t.to(weight.device)] = theirs[their_t.to(theirs.device)].to(weight)
    if bias is not None and their_bias is not None:
        bias[rows_t.to(bias.device)] = their_bias[their_t.to(their_bias.device)].to(bias)
    return len(chars)


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        on_event: EventSink | None = None,
        step_hook: StepHook | None = None,
        clock: Clock = time.perf_counter,
    ):
        self.config = config
        self._sink = on_event or (lambda event: None)
        self._step_hook = step_hook
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self.run_dir = Path(config.out)
        self.device: torch.device | None = None
        # Epochs without a new best that end the run (None: no early stop); set from the training set's
        # size once the data is loaded (patience_for).
        self.patience: int | None = config.patience
        self._clock = clock
        self._session_zero = clock()
        self._paused_s = 0.0  # of this session, spent blocked in a pause
        self._before_s = 0.0  # training time of a resumed run's earlier sessions

    def _session_s(self) -> float:
        """Training seconds of this session: pauses excluded."""
        return self._clock() - self._session_zero - self._paused_s

    def _time_left(self) -> float | None:
        """Training seconds left of this session's time limit; None without one."""
        limit = self.config.time_limit_s
        return None if limit is None else max(0.0, limit - self._session_s())

    def _elapsed(self) -> float:
        """Training seconds of the whole run: a resumed run's earlier sessions and this one."""
        return self._before_s + self._session_s()

    # ---- control, from any thread -------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        if self._running.is_set() and not self._stop.is_set():
            self._running.clear()
            self._emit(ev.StateChanged("paused"))

    def resume(self) -> None:
        if not self._running.is_set():
            self._running.set()
            self._emit(ev.StateChanged("running"))

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    # ---- entry point ------------------------------------------------------------------------------------
    def run(self) -> ev.Finished | ev.Failed:
        """Train to the end; never raises. Returns the last event (also emitted)."""
        try:
            try:
                self.config.validate()
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            return self._train()
        except ConfigError as exc:
            return self._fail(str(exc), usage=True)
        except (TrainingError, DatasetError, DeviceError, CheckpointError, ValueError) as exc:
            return self._fail(str(exc), traceback.format_exc())
        except Exception as exc:  # noqa: BLE001 - anything else is a bug worth a full traceback
            return self._fail(f"{type(exc).__name__}: {exc}", traceback.format_exc())

    def _train(self) -> ev.Finished:
        loop, state, notices = self._setup()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(_jsonable(asdict(self.config)), indent=2) + "\n")
        self._emit(self._run_started(loop, state))
        for notice in notices:
            self._emit(notice)

        self._session_zero, self._paused_s, self._before_s = self._clock(), 0.0, state.elapsed_s
        reason = None
        while reason is None:
            epoch, started = state.epoch + 1, self._elapsed()
            trained, reason = self._train_epoch(loop, state, epoch)
            if reason is not None:
                break  # stopped, or out of time, inside the epoch
            train = trained.means(loop.train_y.shape[1])
            val = self._validate(loop) if len(loop.val_x) else train
            state.epoch, state.position = epoch, 0
            seconds = self._elapsed() - started
            end = ev.EpochEnd(
                epoch,
                train_loss=train.loss,
                train_accuracy=train.accuracy,
                train_char_accuracy=train.char_accuracy,
                val_loss=val.loss,
                val_accuracy=val.accuracy,
                val_char_accuracy=val.char_accuracy,
                seconds=seconds,
                images_per_s=trained.images / seconds if seconds else 0.0,
                learning_rate=loop.optimizer.param_groups[0]["lr"],
                train_char_error_rate=train.char_error_rate,
                val_char_error_rate=val.char_error_rate,
            )
            state.history.append(asdict(end))
            self._emit(end)
            self._consider_best(loop, state, val, epoch)
            self._save_last(loop, state)
            self._emit(self._countdown(loop, state, seconds))
            reason = self._stop_reason(state, end)
        return self._end(reason, loop, state)

    def _stop_reason(self, state: _State, epoch_end: ev.EpochEnd | None = None) -> str | None:
        """Why the run ends here (a :class:`~.events.Finished` reason), or None to carry on: every stop
        rule, in one place. Asked before each batch (a stop request, the time limit) and after each epoch
        (``epoch_end``: the run's natural ends first, so a stop pressed while the last epoch is validated
        still scores the test split; the certain ends before patience, in the order :func:`first_limit`
        breaks ties)."""
        cfg = self.config
        if epoch_end is not None:
            if cfg.target_accuracy is not None and epoch_end.val_accuracy >= cfg.target_accuracy:
                return "target_reached"
            if state.epoch >= cfg.epochs:
                return "max_epochs"
            if cfg.train_images is not None and state.images_seen >= cfg.train_images:
                return "image_budget"
            if self.patience is not None and state.epoch - state.best_epoch >= self.patience:
                return "early_stop"
        if self._stop.is_set():
            return "stopped"
        if cfg.train_images is not None and state.images_seen >= cfg.train_images:
            return "image_budget"
        if cfg.time_limit_s is not None and self._session_s() >= cfg.time_limit_s:
            return "time_limit"
        return None

    def _train_epoch(self, loop: _Loop, state: _State, epoch: int) -> tuple[_Tally, str | None]:
        """One pass over the training split from ``state.position`` on. Returns its sums, and None or the
        reason it ended inside the epoch."""
        cfg = self.config
        images, labels = loop.train_x, loop.train_y
        n, length = len(images), labels.shape[1]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        order = order.to(images.device)
        ctc = loop.spec.decoder == "ctc"
        epoch_sums, window = _Tally(images.device, ctc), _Tally(images.device, ctc)  # window: since a report
        started, last_report = self._elapsed(), time.perf_counter()
        batch = state.position // state.batch_size
        loop.model.train()
        while state.position < n:
            self._wait_while_paused()
            reason = self._stop_reason(state)
            if reason is not None:
                return epoch_sums, reason
            size = state.batch_size
            index = order[state.position : state.position + size]
            if len(index) < 2 and state.position > 0:
                break  # a lone leftover image: BatchNorm cannot train on a batch of one
            batch += 1
            epochs_done = (epoch - 1 + state.position / n) / cfg.epochs
            if cfg.train_images is not None:  # the image budget sets the pace where it ends the run first
                epochs_done = max(epochs_done, state.images_seen / cfg.train_images)
            self._set_learning_rate(loop, state, epochs_done)
            try:
                if self._step_hook:
                    self._step_hook(epoch, batch, size)
                stats = self._step(loop, images[index], labels[index])
            except torch.OutOfMemoryError:
                stats = None
            if stats is None:  # out of memory; outside the except block the failed step's tensors are freed
                state.batch_size = self._handle_oom(loop.optimizer, epoch, batch, size)
                batch -= 1
                continue  # the same images again, with the smaller mini-batch
            epoch_sums.add(stats, len(index))
            window.add(stats, len(index))
            state.position += len(index)
            state.images_seen += len(index)

            if time.perf_counter() - last_report >= cfg.report_interval_s or state.position >= n - 1:
                if ctc:  # the last batch's edit distances, read back with the report's sums
                    errors = character_errors(*loop.last_batch)
                    window.add_errors(*errors)
                    epoch_sums.add_errors(*errors)
                scores = window.means(length)  # the one sync per report
                rate = epoch_sums.images / max(self._elapsed() - started, 1e-9)
                left = n - state.position
                self._emit(
                    ev.BatchProgress(
                        epoch=epoch,
                        batch=batch,
                        batches=batch + math.ceil(left / size),
                        loss=scores.loss,
                        accuracy=scores.accuracy,
                        char_accuracy=scores.char_accuracy,
                        char_error_rate=scores.char_error_rate,
                        images_per_s=rate,
                        eta_s=left / rate if rate else 0.0,
                        batch_size=size,
                        time_left_s=self._time_left(),
                        images_left=None
                        if cfg.train_images is None
                        else max(0, cfg.train_images - state.images_seen),
                    )
                )
                window.clear()
                last_report = time.perf_counter()  # wall time: it paces the events, not the accounts
        return epoch_sums, None

    def _step(self, loop: _Loop, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One optimisation step on a mini-batch. Returns its (loss × images, whole codes right,
        characters right: per-position models only), left on the device."""
        if loop.augmentation is not None:
            images = augment(images, loop.augmentation)
        logits, loss = train_step(
            loop.model,
            loop.optimizer,
            to_model_input(images),
            labels,
            loop.autocast,
            loop.scaler,
            loop.objective,
        )
        with torch.no_grad():
            decoded = loop.objective.decode(logits.detach())
            hits = loop.objective.hits(decoded, labels)
            loop.last_batch = (decoded, labels)
            chars = (
                (decoded[:, : labels.shape[1]] == labels).sum()
                if loop.spec.decoder != "ctc"
                else hits.sum() * 0
            )
            return torch.stack((loss.detach().float() * len(labels), hits.sum().float(), chars.float()))

    def _set_learning_rate(self, loop: _Loop, state: _State, epochs_done: float) -> None:
        cfg = self.config
        progress = schedule_progress(epochs_done, self._session_s(), cfg.time_limit_s, loop.schedule_start)
        state.schedule_at = progress
        for group in loop.optimizer.param_groups:
            group["lr"] = loop.peak_lr * lr_factor(progress, cfg.schedule, loop.warmup)

    def _wait_while_paused(self) -> None:
        """Block while paused; the time spent here is not training time."""
        if self._running.is_set():
            return
        blocked = self._clock()
        while not self._running.wait(0.1):
            pass
        self._paused_s += self._clock() - blocked

    def _validate(self, loop: _Loop) -> Scores:
        loop.model.eval()
        scores = evaluate(loop.model, loop.val_x, loop.val_y, loop.autocast, loop.objective)
        loop.model.train()
        return scores

    def _consider_best(self, loop: _Loop, state: _State, val: Scores, epoch: int) -> bool:
        """Keep these weights, and save them as best.pt, if they beat the best so far (whole codes first,
        single characters break ties). Returns whether they did."""
        val_acc = val.accuracy
        if (val_acc, val.char_score) <= (state.best_val, state.best_char):
            return False
        previous = state.best_val if state.best_val >= 0 else None
        state.best_val, state.best_char, state.best_epoch = val_acc, val.char_score, epoch
        loop.best_weights = {k: v.detach().clone() for k, v in loop.model.state_dict().items()}
        self._emit(ev.NewBest(epoch, val_acc, previous))
        self._save(BEST, loop, state, with_optimizer=False)
        return True

    def _countdown(self, loop: _Loop, state: _State, epoch_s: float) -> ev.Countdown:
        cfg = self.config
        patience = self.patience
        patience_left = None if patience is None else patience - (state.epoch - state.best_epoch)
        budget_left = cfg.epochs - state.epoch
        time_left = self._time_left()
        images_left = None if cfg.train_images is None else max(0, cfg.train_images - state.images_seen)
        return ev.Countdown(
            best_accuracy=state.best_val,
            best_epoch=state.best_epoch,
            patience_left=patience_left,
            patience=patience,
            budget_left=budget_left,
            time_left_s=time_left,
            ends_by=first_limit(
                budget_left,
                patience_left,
                time_left,
                epoch_s,
                None if images_left is None else images_left / max(len(loop.train_x), 1),
            ),
            images_left=images_left,
        )

    def _end(self, reason: str, loop: _Loop, state: _State) -> ev.Finished:
        """Say why the run ended, keep what an unfinished epoch trained, and score the test split once,
        with the best weights (it is never used to choose anything)."""
        cfg = self.config
        if state.position:  # ended inside an epoch: last.pt keeps its progress for --resume
            self._save_last(loop, state)
        if reason == "stopped":
            self._emit(ev.Notice(f"stopped in epoch {state.epoch + 1}; continue with --resume"))
            return self._finish(reason, state, None)
        if reason == "target_reached":
            accuracy = state.history[-1]["val_accuracy"]
            self._emit(
                ev.Notice(f"validation accuracy {accuracy:.3f} reached the target {cfg.target_accuracy:.3f}")
            )
        elif reason == "early_stop":
            self._emit(
                ev.Notice(
                    f"early stop: no new best for {self.patience} epochs "
                    f"(best {state.best_val:.3f} at epoch {state.best_epoch})"
                )
            )
        elif (
            # Out of time (or images) inside an epoch: the weights trained so far may be the best ones.
            reason in ("time_limit", "image_budget")
            and state.position
            and len(loop.val_x)
            and self._consider_best(loop, state, self._validate(loop), state.epoch + 1)
        ):
            spent = "out of time" if reason == "time_limit" else "image budget spent"
            self._emit(ev.Notice(f"{spent} in epoch {state.epoch + 1}: its weights are the best yet"))
        test = None
        if loop.best_weights is not None and loop.data.count("test"):
            loop.model.load_state_dict(loop.best_weights)
            loop.model.eval()
            test_x, test_y = _to_device(loop.data, "test", self.device)
            test = evaluate(loop.model, test_x, test_y, loop.autocast, loop.objective)
        return self._finish(reason, state, test)

    def _handle_oom(self, optimizer, epoch: int, batch: int, size: int) -> int:
        """Free what the failed step held and return the halved mini-batch (or give up below 1)."""
        optimizer.zero_grad(set_to_none=True)
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.empty_cache()
        smaller = size // 2
        if smaller < 1:
            raise TrainingError(
                f"out of memory on {self.device} even with a mini-batch of 1: use a smaller preset "
                "or another device (--device cpu)"
            )
        self._emit(ev.BatchSizeReduced(size, smaller, epoch, batch, str(self.device)))
        self._emit(
            ev.Notice(f"out of memory on {self.device}: mini-batch {size} → {smaller}, retrying", "warning")
        )
        return smaller

    # ---- setting up: a new run, a fine-tune, a resumed run ------------------------------------------------
    def _setup(self) -> tuple[_Loop, _State, list[ev.Notice]]:
        """The device, the dataset on it, the model (fresh, fine-tuned or resumed) and its optimiser, the
        state to start from, and the notices to give once the run has started."""
        cfg = self.config
        device = self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
        torch.manual_seed(cfg.seed)
        data = load_dataset(cfg.data)
        # The whole dataset lives on the device as uint8 (NHWC); each batch is converted there.
        train_x, train_y = _to_device(data, "train", device)
        val_x, val_y = _to_device(data, "val", device)
        preset = self._choose_preset(data.spec)
        spec = self._model_spec(preset, data)
        model = build_model(preset, spec).to(device)
        self._check_steps(preset, model, data)
        model.set_channels_last(prefers_channels_last(preset, device))
        # Its learning rate is set before every step, from loop.peak_lr and the schedule.
        optimizer = torch.optim.AdamW(model.parameters(), weight_decay=cfg.weight_decay)
        autocast, scaler = mixed_precision(cfg.amp, device)
        loop = _Loop(data, model, optimizer, autocast, scaler, train_x, train_y, val_x, val_y)
        loop.spec, loop.preset = spec, preset
        loop.objective = objective_for(spec, cfg.label_smoothing)

        state, notices = _State(batch_size=cfg.batch_size), []
        if cfg.augment:
            loop.augmentation = augmentation_for(len(train_x))
            if loop.augmentation == WARP:
                notices.append(
                    ev.Notice(
                        f"{len(train_x):,} training images (under {SMALL_SET:,}): each is shown randomly "
                        "rotated, scaled, sheared and recoloured (--no-augment: as they are)"
                    )
                )
        budgeted = cfg.time_limit_s is not None or cfg.train_images is not None
        self.patience = patience_for(cfg.patience, budgeted, len(train_x))
        short = short_run_notice(len(train_x), cfg.epochs)
        if short is not None and not cfg.resume:
            notices.append(short)
        if cfg.init is not None:
            notices.append(self._fine_tune(loop))
        if cfg.resume:
            state, notice = self._resume(loop)
            notices.append(notice)
        # A fine-tune (or a resumed one: its checkpoints say so) gets the gentler schedule.
        fine_tune = loop.init is not None
        loop.peak_lr = peak_learning_rate(preset, len(train_x), fine_tune, cfg.lr)
        loop.warmup = FINE_TUNE_WARMUP if fine_tune else WARMUP
        loop.schedule_start = state.schedule_at
        if cfg.time_limit_s is not None and state.elapsed_s > 0:
            notices.append(
                ev.Notice(
                    f"time limit {cfg.time_limit_s:g} s: it counts this session's training only (the run "
                    f"trained {state.elapsed_s:.0f} s before it); pauses do not count"
                )
            )
        if len(val_x) == 0:
            notices.append(
                ev.Notice("no validation images: the best model is chosen by training accuracy", "warning")
            )
        return loop, state, notices

    def _choose_preset(self, spec: CodeSpec) -> str:
        """``--preset``, else the preset of the checkpoint resumed or fine-tuned from, else the default for
        these codes (per-position for one length, CTC for several)."""
        cfg = self.config
        if cfg.preset is not None:
            return cfg.preset
        source = self.run_dir / LAST if cfg.resume else (resolve_init(cfg.init) if cfg.init else None)
        if source is not None and source.exists():
            try:
                return load_checkpoint(source, map_location="cpu").meta.preset
            except CheckpointError:
                pass  # resume / fine-tune says what is wrong with it
        return default_preset(spec)

    def _model_spec(self, preset: str, data: Dataset) -> CodeSpec:
        """The dataset's codes with the preset's decoder; a per-position preset reads one length only."""
        if PRESETS[preset].decoder == "positional" and not data.spec.fixed_length:
            ctc = ", ".join(name for name, p in PRESETS.items() if p.decoder == "ctc")
            raise ConfigError(
                f"{data.path} holds codes of {data.spec.lengths} characters, but preset {preset!r} reads one "
                f"fixed length: use a CTC preset ({ctc}), or leave --preset out"
            )
        return preset_spec(preset, data.spec)

    @staticmethod
    def _check_steps(preset: str, model: CaptchaNet, data: Dataset) -> None:
        """A CTC model emits one symbol per time step, with a blank between repeated neighbours: refuse
        codes that cannot fit, naming the limit, instead of training on an infinite loss."""
        if model.decoder != "ctc":
            return
        labels = np.concatenate([data.labels[s] for s in ("train", "val", "test")])
        needed = (labels != PAD).sum(1) + ((labels[:, 1:] == labels[:, :-1]) & (labels[:, 1:] != PAD)).sum(1)
        if len(needed) and int(needed.max()) > model.steps:
            worst = int(needed.max())
            raise ConfigError(
                f"some codes need {worst} time steps (their length plus a blank between repeated "
                f"characters), but preset {preset!r} has {model.steps} per image: keep shorter codes "
                f"(prepare --length), or a preset with more steps (--preset crnn has 30)"
            )

    def _fine_tune(self, loop: _Loop) -> ev.Notice:
        """Start from ``init``'s weights: all that fit, the output layer rebuilt where the codes differ."""
        cfg = self.config
        path = resolve_init(cfg.init)
        try:
            source = load_checkpoint(path, map_location=self.device)
        except CheckpointError as exc:
            raise TrainingError(f"cannot fine-tune: {exc}") from None
        if source.meta.preset != loop.preset:
            raise ConfigError(
                f"cannot fine-tune from {path}: it holds a {source.meta.preset!r} model and this run's "
                f"preset is {loop.preset!r}; pass --preset {source.meta.preset}"
            )
        spec = loop.spec
        done = transfer_weights(loop.model, source.model, source.meta.spec, spec)
        loop.init = str(path)
        copied = f"{done.copied} of {done.layers} layers copied"
        if not done.output_rebuilt:
            return ev.Notice(f"fine-tuning from {path}: {copied}")
        differences = "; ".join(source.meta.spec.differences(spec)) or "another input size"
        shared = (
            f" (the rows of the {done.shared_characters} characters both charsets share copied)"
            if done.shared_characters
            else ""
        )
        return ev.Notice(f"fine-tuning from {path}: output layer rebuilt for {differences}{shared}; {copied}")

    def _resume(self, loop: _Loop) -> tuple[_State, ev.Notice]:
        cfg = self.config
        path = self.run_dir / LAST
        if not path.exists():
            notice = ev.Notice(f"nothing to resume in {self.run_dir}: starting a new run", "warning")
            return _State(batch_size=cfg.batch_size), notice
        try:
            checkpoint = load_checkpoint(path, map_location=self.device)
        except CheckpointError as exc:
            raise TrainingError(
                f"cannot resume: {exc}; train without --resume to start afresh (or use another --out)"
            ) from None
        meta = checkpoint.meta
        mismatch = meta.spec.differences(loop.spec)
        if meta.preset != loop.preset:
            mismatch.insert(0, f"preset {meta.preset!r} ≠ {loop.preset!r}")
        if mismatch:
            raise ConfigError(
                f"cannot resume from {path}: it was trained with another setup ({'; '.join(mismatch)})"
            )
        saved = checkpoint.trainer
        state = _State(**{k: v for k, v in saved.items() if k in _State.__dataclass_fields__})
        if state.epoch >= cfg.epochs:
            # Refused before anything is written: --epochs is the run's total, not epochs to add.
            part = f" and part of epoch {state.epoch + 1}" if state.position else ""
            raise ConfigError(
                f"nothing to train: {path} has already trained {state.epoch} epoch"
                f"{'s' if state.epoch != 1 else ''}{part}, and --epochs {cfg.epochs} is the run's total "
                f"epoch budget, not epochs to add; pass --epochs {state.epoch + 1} or more to continue it"
            )
        loop.model.load_state_dict(checkpoint.model)
        if checkpoint.optimizer is not None:
            loop.optimizer.load_state_dict(checkpoint.optimizer)
        state.history = list(checkpoint.history)
        loop.init = meta.init
        if (self.run_dir / BEST).exists():
            loop.best_weights = load_checkpoint(self.run_dir / BEST, map_location=self.device).model
        where = f"epoch {state.epoch + 1}" + (f", image {state.position}" if state.position else "")
        best = f"best {state.best_val:.3f} at epoch {state.best_epoch}" if state.best_epoch else "no best yet"
        left = cfg.epochs - state.epoch
        return state, ev.Notice(
            f"resumed from {path} at {where} ({best}); --epochs {cfg.epochs} is the run's total: "
            f"up to {left} more epoch{'s' if left != 1 else ''}"
        )

    def _run_started(self, loop: _Loop, state: _State) -> ev.RunStarted:
        cfg = self.config
        return ev.RunStarted(
            dataset=str(cfg.data),
            train_count=len(loop.train_x),
            val_count=len(loop.val_x),
            test_count=loop.data.count("test"),
            spec=loop.spec,
            preset=loop.preset,
            device=str(self.device),
            batch_size=state.batch_size,
            learning_rate=loop.peak_lr,
            amp=loop.autocast is not None,
            patience=self.patience,
            max_epochs=cfg.epochs,
            start_epoch=state.epoch + 1,
            batches_per_epoch=math.ceil(len(loop.train_x) / state.batch_size),
            run_dir=str(self.run_dir),
            parameters=count_parameters(loop.model),
            init=loop.init,
            time_limit_s=cfg.time_limit_s,
        )

    # ---- checkpoints, history -------------------------------------------------------------------------------
    def _save_last(self, loop: _Loop, state: _State) -> None:
        """last.pt (weights, optimiser and state: everything --resume needs) and history.jsonl."""
        self._save(LAST, loop, state, with_optimizer=True)
        self._write_history(state.history)

    def _save(self, name: str, loop: _Loop, state: _State, with_optimizer: bool) -> None:
        state.elapsed_s = self._elapsed()
        meta = CheckpointMeta(
            spec=loop.spec,
            preset=loop.preset,
            epoch=state.epoch,
            val_accuracy=state.best_val
            if name == BEST
            else (state.history[-1]["val_accuracy"] if state.history else 0.0),
            dataset=str(self.config.data),
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            init=loop.init,
        )
        payload = {
            "meta": meta.to_dict(),
            "model": {k: v.detach().cpu() for k, v in loop.model.state_dict().items()},
            "trainer": asdict(replace(state, history=[])),
            "history": state.history,
        }
        if with_optimizer:
            payload["optimizer"] = loop.optimizer.state_dict()
        path = save_checkpoint(self.run_dir / name, payload)
        self._emit(ev.CheckpointSaved(str(path), name.removesuffix(".pt"), state.epoch))

    def _write_history(self, history: list[dict]) -> None:
        path = self.run_dir / HISTORY
        tmp = path.with_suffix(".jsonl.tmp")
        try:
            tmp.write_text("".join(json.dumps(row) + "\n" for row in history), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            self._emit(ev.Notice(f"could not write {path}: {exc.strerror or exc}", "warning"))

    # ---- events --------------------------------------------------------------------------------------------
    def _emit(self, event: ev.TrainerEvent) -> None:
        if not isinstance(event, ev.BatchProgress):
            self._log(event)
        self._sink(event)

    def _log(self, event: ev.TrainerEvent) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with (self.run_dir / LOG).open("a", encoding="utf-8") as handle:
                handle.write(
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')} {type(event).__name__} {json.dumps(_jsonable(asdict(event)))}\n"
                )
        except OSError:
            pass  # a read-only or full disk must not hide the event itself

    def _finish(self, reason, state: _State, test: Scores | None) -> ev.Finished:
        best = self.run_dir / BEST
        last = self.run_dir / LAST
        event = ev.Finished(
            reason=reason,
            epochs_run=state.epoch,
            best_epoch=state.best_epoch,
            best_val_accuracy=max(state.best_val, 0.0),
            test_accuracy=test.accuracy if test else None,
            test_char_accuracy=test.char_accuracy if test else None,
            test_char_error_rate=test.char_error_rate if test else None,
            best_checkpoint=str(best) if best.exists() else None,
            last_checkpoint=str(last) if last.exists() else None,
            elapsed_s=self._elapsed(),
            images_seen=state.images_seen,
        )
        self._emit(event)
        return event

    def _fail(self, message: str, trace: str = "", usage: bool = False) -> ev.Failed:
        if usage:  # the user's command to change, not a fault to investigate: nothing to log
            event = ev.Failed(message=message, usage=True)
            self._emit(event)
            return event
        log_path = None
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.run_dir / "error.log"
            log_path.write_text(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n\n{trace}", encoding="utf-8"
            )
        except OSError:
            log_path = None
        event = ev.Failed(message=message, traceback=trace, log_path=str(log_path) if log_path else None)
        self._emit(event)
        return event


def train_step(
    model, optimizer, images, targets, autocast=None, scaler=None, objective=None, label_smoothing=0.0
):
    """One optimisation step on ``objective``'s loss (default: per-position cross-entropy with
    ``label_smoothing``). Returns (logits, loss), not synced."""
    objective = objective or Objective(None, label_smoothing)
    with autocast or contextlib.nullcontext():
        logits = model(images)
        loss = objective.loss(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return logits, loss


def _to_device(data: Dataset, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(data.images[split]).to(device)
    labels = torch.from_numpy(data.labels[split].astype("int64")).to(device)
    return images, labels


def mixed_precision(enabled: bool | None, device: torch.device):
    """An autocast context (bf16 where the hardware has it, else fp16 with a grad scaler) or (None, None).

    ``enabled=None`` decides by the hardware (:func:`resolve_amp`)."""
    if not resolve_amp(enabled, device):
        return None, None
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16), None
        return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16), None


@torch.inference_mode()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, autocast=None, objective=None) -> Scores:
    """A split's loss, whole-code accuracy and character accuracy (or CER, for CTC), in chunks."""
    objective = objective or Objective(None)
    ctc = isinstance(objective, CtcObjective)
    if len(images) == 0:
        return Scores(0.0, 0.0, None if ctc else 0.0, 0.0 if ctc else None)
    sums = torch.zeros(3, device=images.device)
    decoded_all = []
    for start in range(0, len(images), EVAL_BATCH):
        x = to_model_input(images[start : start + EVAL_BATCH])
        y = labels[start : start + EVAL_BATCH]
        with autocast or contextlib.nullcontext():
            logits = model(x)
        decoded = objective.decode(logits)
        sums[0] += objective.summed_loss(logits, y)
        sums[1] += objective.hits(decoded, y).sum()
        sums[2] += (decoded[:, : y.shape[1]] == y).sum()
        if ctc:
            decoded_all.append(decoded)
    loss, right, chars = sums.tolist()
    n = len(images)
    if ctc:
        errors, characters = character_errors(torch.cat(decoded_all), labels)
        return Scores(loss / n, right / n, None, errors / max(characters, 1))
    return Scores(loss / n, right / n, chars / (n * labels.shape[1]), None)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def train(
    config: TrainConfig | None = None, on_event: EventSink | None = None, **overrides
) -> ev.Finished | ev.Failed:
    """Train from Python: ``train(data="data/default", epochs=5)``."""
    config = replace(config or TrainConfig(), **overrides)
    return Trainer(config, on_event).run()
