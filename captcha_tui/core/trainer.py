"""The training loop. No UI here: it reports through events (see ``events.py``) and runs in any thread.

Read ``Trainer._train`` top to bottom for the whole story: load data onto the device, build the model,
maybe resume, then epochs of (train, validate, keep the best, count down to an early stop), then the test
split scored with the best weights.
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

import torch
import torch.nn.functional as F

from . import events as ev
from .checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, save_checkpoint
from .dataset import Dataset, DatasetError, load_dataset
from .devices import DeviceError, resolve_amp, resolve_device
from .model import (
    DEFAULT_PRESET,
    PRESETS,
    build_model,
    count_parameters,
    prefers_channels_last,
    to_model_input,
)

DEFAULT_DATA_DIR = Path("data/dataset")  # where `prepare` puts it
DEFAULT_RUN_DIR = Path("runs/default")
BEST, LAST, HISTORY, LOG = "best.pt", "last.pt", "history.jsonl", "train.log"
EVAL_BATCH = 1000

EventSink = Callable[[ev.TrainerEvent], None]
# Called before every optimisation step with (epoch, batch, batch_size): a seam for fault-injection tests.
StepHook = Callable[[int, int, int], None]


@dataclass
class TrainConfig:
    # A field with "help" in its metadata is a command-line option of `train` and of the dashboard, built
    # by cli.py from these declarations (flag: --field-name, or "flag"; a bool that defaults to True is
    # --no-field-name), so each default and help text is written here and nowhere else.
    data: Path = field(default=DEFAULT_DATA_DIR, metadata={"help": "dataset folder"})
    out: Path = field(default=DEFAULT_RUN_DIR, metadata={"help": "run folder for checkpoints"})
    preset: str = field(default=DEFAULT_PRESET, metadata={"help": "model", "choices": tuple(sorted(PRESETS))})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps"})
    # The one-cycle schedule spans these (or the time limit, if shorter).
    epochs: int = field(default=15, metadata={"help": "epochs of the learning-rate schedule"})
    batch_size: int = field(default=100, metadata={"help": "mini-batch size"})
    lr: float = field(default=3e-3, metadata={"help": "peak learning rate"})
    weight_decay: float = 0.05
    # Random shifts of a few pixels, on the device.
    augment: bool = field(default=True, metadata={"help": "train on the images exactly as generated"})
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
    patience: int = field(default=20, metadata={"help": "epochs without a new best before stopping early"})
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
    report_interval_s: float = 0.1  # at most ~10 progress events a second
    threads: int | None = field(default=None, metadata={"help": "CPU threads for PyTorch"})

    def validate(self) -> None:
        """Raise ValueError for settings that cannot work, with what to do instead."""
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1 (got {self.batch_size})")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1 (got {self.epochs})")
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1 (got {self.patience})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"learning rate must be a positive number (got {self.lr})")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of: {', '.join(PRESETS)}")
        if self.schedule not in ("onecycle", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}; use onecycle or constant")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label smoothing must be in [0, 1) (got {self.label_smoothing})")
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise ValueError("target accuracy must be in (0, 1]")


class TrainingStopped(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TrainingError(RuntimeError):
    """A failure with a message meant for the user (no traceback needed)."""


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
    elapsed_s: float = 0.0
    history: list[dict] = field(default_factory=list)


def lr_factor(progress: float, schedule: str) -> float:
    """One-cycle: a short linear warm-up, then cosine decay to 1% (progress 0..1 over all epochs)."""
    if schedule == "constant":
        return 1.0
    warmup = 0.1
    if progress < warmup:
        return 0.05 + 0.95 * progress / warmup
    done = min(1.0, (progress - warmup) / (1 - warmup))
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * done))


def schedule_progress(epochs_done: float, elapsed_s: float, time_limit_s: float | None) -> float:
    """How far through the learning-rate schedule a step is (0..1): by epochs, or by the clock when a
    time limit would end the run first, so that it ends on a low learning rate instead of being cut off
    mid-schedule. ``epochs_done`` is the fraction of the epoch budget done."""
    if not time_limit_s:
        return epochs_done
    return max(epochs_done, elapsed_s / time_limit_s)


class Trainer:
    def __init__(
        self, config: TrainConfig, on_event: EventSink | None = None, step_hook: StepHook | None = None
    ):
        self.config = config
        self._sink = on_event or (lambda event: None)
        self._step_hook = step_hook
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self.run_dir = Path(config.out)
        self.device: torch.device | None = None
        self._clock_zero = time.perf_counter()

    def _elapsed(self) -> float:
        """Seconds of this run so far, a resumed run's earlier sessions included."""
        return time.perf_counter() - self._clock_zero

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
            self.config.validate()
            return self._train()
        except (TrainingError, DatasetError, DeviceError, CheckpointError, ValueError) as exc:
            return self._fail(str(exc), traceback.format_exc())
        except Exception as exc:  # noqa: BLE001 - anything else is a bug worth a full traceback
            return self._fail(f"{type(exc).__name__}: {exc}", traceback.format_exc())

    def _train(self) -> ev.Finished:
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
        model = build_model(cfg.preset, data.spec).to(device)
        model.set_channels_last(prefers_channels_last(cfg.preset, device))
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        autocast, scaler = mixed_precision(cfg.amp, device)

        state = _State(batch_size=cfg.batch_size)
        best_weights: dict | None = None
        if cfg.resume:
            state, best_weights = self._resume(model, optimizer, data, device)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(_jsonable(asdict(cfg)), indent=2) + "\n")

        n_train = len(train_x)
        self._emit(
            ev.RunStarted(
                dataset=str(cfg.data),
                train_count=n_train,
                val_count=len(val_x),
                test_count=data.count("test"),
                spec=data.spec,
                preset=cfg.preset,
                device=str(device),
                batch_size=state.batch_size,
                learning_rate=cfg.lr,
                amp=autocast is not None,
                patience=cfg.patience,
                max_epochs=cfg.epochs,
                start_epoch=state.epoch + 1,
                batches_per_epoch=math.ceil(n_train / state.batch_size),
                run_dir=str(self.run_dir),
                parameters=count_parameters(model),
            )
        )
        if len(val_x) == 0:
            self._emit(
                ev.Notice("no validation images: the best model is chosen by training accuracy", "warning")
            )

        reason = "max_epochs"
        # Elapsed time carries over a resume, so a time limit covers the whole run.
        self._clock_zero = time.perf_counter() - state.elapsed_s
        try:
            for epoch in range(state.epoch + 1, cfg.epochs + 1):
                epoch_started = time.perf_counter()
                train_loss, train_acc, train_char = self._train_epoch(
                    epoch, model, optimizer, autocast, scaler, train_x, train_y, state
                )
                model.eval()
                if len(val_x):
                    val_loss, val_acc, val_char = evaluate(model, val_x, val_y, autocast)
                else:
                    val_loss, val_acc, val_char = train_loss, train_acc, train_char
                model.train()
                seconds = time.perf_counter() - epoch_started
                state.epoch, state.position = epoch, 0
                state.elapsed_s = self._elapsed()
                end = ev.EpochEnd(
                    epoch=epoch,
                    train_loss=train_loss,
                    train_accuracy=train_acc,
                    train_char_accuracy=train_char,
                    val_loss=val_loss,
                    val_accuracy=val_acc,
                    val_char_accuracy=val_char,
                    seconds=seconds,
                    images_per_s=n_train / seconds if seconds else 0.0,
                    learning_rate=optimizer.param_groups[0]["lr"],
                )
                state.history.append(asdict(end))
                self._emit(end)

                if (val_acc, val_char) > (state.best_val, state.best_char):
                    previous = state.best_val if state.best_val >= 0 else None
                    state.best_val, state.best_char, state.best_epoch = val_acc, val_char, epoch
                    best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    self._emit(ev.NewBest(epoch, val_acc, previous))
                    self._save(BEST, model, data, state, optimizer=None)
                self._save(LAST, model, data, state, optimizer)
                self._write_history(state.history)

                waited = epoch - state.best_epoch
                self._emit(
                    ev.Countdown(state.best_val, state.best_epoch, cfg.patience - waited, cfg.patience)
                )
                if cfg.target_accuracy is not None and val_acc >= cfg.target_accuracy:
                    reason = "target_reached"
                    self._emit(
                        ev.Notice(
                            f"validation accuracy {val_acc:.3f} reached the target {cfg.target_accuracy:.3f}"
                        )
                    )
                    break
                if waited >= cfg.patience:
                    reason = "early_stop"
                    self._emit(
                        ev.Notice(
                            f"early stop: no new best for {cfg.patience} epochs "
                            f"(best {state.best_val:.3f} at epoch {state.best_epoch})"
                        )
                    )
                    break
                if cfg.time_limit_s is not None and state.elapsed_s >= cfg.time_limit_s:
                    raise TrainingStopped("time_limit")
        except TrainingStopped as stop:
            reason = stop.reason
            state.elapsed_s = self._elapsed()
            if reason == "stopped":
                # An interrupt: keep everything needed to carry on with --resume, and skip the test pass.
                self._save(LAST, model, data, state, optimizer)
                self._write_history(state.history)
                self._emit(ev.Notice(f"stopped in epoch {state.epoch + 1}; continue with --resume"))
                return self._finish(reason, state, None, None)
            if state.position and len(val_x):
                # Out of time inside an epoch: the weights trained so far may still be the best ones.
                model.eval()
                _, val_acc, val_char = evaluate(model, val_x, val_y, autocast)
                if (val_acc, val_char) > (state.best_val, state.best_char):
                    state.best_val, state.best_char, state.best_epoch = val_acc, val_char, state.epoch + 1
                    best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    self._emit(
                        ev.Notice(f"out of time in epoch {state.epoch + 1}: its weights are the best yet")
                    )
                    self._save(BEST, model, data, state, optimizer=None)

        # The test split is scored once, with the best weights, never used to choose anything.
        test_acc = test_char = None
        if best_weights is not None and data.count("test"):
            model.load_state_dict(best_weights)
            model.eval()
            test_x, test_y = _to_device(data, "test", device)
            _, test_acc, test_char = evaluate(model, test_x, test_y, autocast)
        return self._finish(reason, state, test_acc, test_char)

    def _train_epoch(self, epoch, model, optimizer, autocast, scaler, train_x, train_y, state):
        """One pass over the training split; returns (loss, accuracy, char accuracy) over it."""
        cfg = self.config
        n = len(train_x)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        order = order.to(train_x.device)
        zero = torch.zeros((), device=train_x.device)
        # Running sums stay on the device; they are read back only when a report is due.
        totals = [zero.clone() for _ in range(3)]  # loss*n, whole-code right, characters right
        window = [zero.clone() for _ in range(3)]
        seen = window_seen = 0
        position = state.position
        epoch_started = last_report = time.perf_counter()
        batch = position // state.batch_size
        model.train()
        while position < n:
            self._wait_if_paused_or_stop()
            size = state.batch_size
            index = order[position : position + size]
            if len(index) < 2 and position > 0:
                break  # a lone leftover image: BatchNorm cannot train on a batch of one
            batch += 1
            progress = schedule_progress(
                (epoch - 1 + position / n) / cfg.epochs,
                self._elapsed(),
                cfg.time_limit_s,
            )
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(progress, cfg.schedule)
            try:
                if self._step_hook:
                    self._step_hook(epoch, batch, size)
                images, targets = train_x[index], train_y[index]
                if cfg.augment:
                    images = random_shift(images)
                logits, loss = train_step(
                    model,
                    optimizer,
                    to_model_input(images),
                    targets,
                    autocast,
                    scaler,
                    label_smoothing=cfg.label_smoothing,
                )
            except torch.OutOfMemoryError:
                images = targets = logits = loss = None
                state.batch_size = self._handle_oom(optimizer, epoch, batch, size)
                batch -= 1
                continue  # the same images again, with the smaller mini-batch
            with torch.no_grad():
                hits = logits.argmax(-1) == targets
                stats = (loss.detach() * len(index), hits.all(1).sum(), hits.sum())
                for total, part, value in zip(totals, window, stats, strict=True):
                    total += value
                    part += value
            position += len(index)
            seen += len(index)
            window_seen += len(index)
            state.position = position
            state.images_seen += len(index)

            now = time.perf_counter()
            if now - last_report >= cfg.report_interval_s or position >= n - 1:
                loss_sum, right, chars = torch.stack(window).tolist()  # the one sync per report
                now = time.perf_counter()
                rate = seen / max(now - epoch_started, 1e-9)
                batches = batch + math.ceil((n - position) / size) if position < n else batch
                self._emit(
                    ev.BatchProgress(
                        epoch=epoch,
                        batch=batch,
                        batches=batches,
                        loss=loss_sum / window_seen,
                        accuracy=right / window_seen,
                        char_accuracy=chars / (window_seen * train_y.shape[1]),
                        images_per_s=rate,
                        eta_s=(n - position) / rate if rate else 0.0,
                        batch_size=size,
                    )
                )
                for part in window:
                    part.zero_()
                window_seen, last_report = 0, now
        loss_sum, right, chars = torch.stack(totals).tolist()
        seen = max(seen, 1)
        return loss_sum / seen, right / seen, chars / (seen * train_y.shape[1])

    def _wait_if_paused_or_stop(self) -> None:
        if not self._running.is_set():
            while not self._running.wait(0.1):
                pass
        if self._stop.is_set():
            raise TrainingStopped("stopped")
        limit = self.config.time_limit_s
        if limit is not None and self._elapsed() >= limit:
            raise TrainingStopped("time_limit")

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

    # ---- resume, checkpoints, history -------------------------------------------------------------------
    def _resume(self, model, optimizer, data: Dataset, device) -> tuple[_State, dict | None]:
        path = self.run_dir / LAST
        if not path.exists():
            self._emit(ev.Notice(f"nothing to resume in {self.run_dir}: starting a new run", "warning"))
            return _State(batch_size=self.config.batch_size), None
        try:
            checkpoint = load_checkpoint(path, map_location=device)
        except CheckpointError as exc:
            raise TrainingError(
                f"cannot resume: {exc}; train without --resume to start afresh (or use another --out)"
            ) from None
        meta = checkpoint.meta
        mismatch = meta.spec.differences(data.spec)
        if meta.preset != self.config.preset:
            mismatch.insert(0, f"preset {meta.preset!r} ≠ {self.config.preset!r}")
        if mismatch:
            raise TrainingError(
                f"cannot resume from {path}: it was trained with another setup ({'; '.join(mismatch)})"
            )
        model.load_state_dict(checkpoint.model)
        if checkpoint.optimizer is not None:
            optimizer.load_state_dict(checkpoint.optimizer)
        saved = checkpoint.trainer
        state = _State(**{k: v for k, v in saved.items() if k in _State.__dataclass_fields__})
        state.history = list(checkpoint.history)
        best_weights = None
        if (self.run_dir / BEST).exists():
            best_weights = load_checkpoint(self.run_dir / BEST, map_location=device).model
        where = f"epoch {state.epoch + 1}" + (f", image {state.position}" if state.position else "")
        self._emit(
            ev.Notice(
                f"resumed from {path} at {where} (best {state.best_val:.3f} at epoch {state.best_epoch})"
            )
        )
        return state, best_weights

    def _save(self, name: str, model, data: Dataset, state: _State, optimizer) -> None:
        meta = CheckpointMeta(
            spec=data.spec,
            preset=self.config.preset,
            epoch=state.epoch,
            val_accuracy=state.best_val
            if name == BEST
            else (state.history[-1]["val_accuracy"] if state.history else 0.0),
            dataset=str(self.config.data),
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        payload = {
            "meta": meta.to_dict(),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "trainer": asdict(replace(state, history=[])),
            "history": state.history,
        }
        if optimizer is not None:
            payload["optimizer"] = optimizer.state_dict()
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

    def _finish(self, reason, state: _State, test_acc, test_char) -> ev.Finished:
        best = self.run_dir / BEST
        last = self.run_dir / LAST
        event = ev.Finished(
            reason=reason,
            epochs_run=state.epoch,
            best_epoch=state.best_epoch,
            best_val_accuracy=max(state.best_val, 0.0),
            test_accuracy=test_acc,
            test_char_accuracy=test_char,
            best_checkpoint=str(best) if best.exists() else None,
            last_checkpoint=str(last) if last.exists() else None,
            elapsed_s=self._elapsed(),
            images_seen=state.images_seen,
        )
        self._emit(event)
        return event

    def _fail(self, message: str, trace: str) -> ev.Failed:
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


def train_step(model, optimizer, images, targets, autocast=None, scaler=None, label_smoothing=0.0):
    """One optimisation step: per-position cross-entropy on logits. Returns (logits, loss), not synced."""
    with autocast or contextlib.nullcontext():
        logits = model(images)
        loss = F.cross_entropy(
            logits.float().flatten(0, 1), targets.flatten(), label_smoothing=label_smoothing
        )
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return logits, loss


def random_shift(images: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """Move each (N, H, W, C) image by up to ``max_shift`` pixels each way, repeating the edge pixels.

    One gather on the device; the generator already varies glyphs, so this only adds placement jitter.
    """
    n, height, width, _ = images.shape
    device = images.device
    dy = torch.randint(-max_shift, max_shift + 1, (n, 1), device=device)
    dx = torch.randint(-max_shift, max_shift + 1, (n, 1), device=device)
    rows = (torch.arange(height, device=device) + dy).clamp_(0, height - 1)  # (N, H)
    cols = (torch.arange(width, device=device) + dx).clamp_(0, width - 1)  # (N, W)
    return images[torch.arange(n, device=device)[:, None, None], rows[:, :, None], cols[:, None, :]]


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
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, autocast=None) -> tuple[float, float, float]:
    """(loss, whole-code accuracy, character accuracy) over a split, in chunks."""
    if len(images) == 0:
        return 0.0, 0.0, 0.0
    sums = torch.zeros(3, device=images.device)
    for start in range(0, len(images), EVAL_BATCH):
        x = to_model_input(images[start : start + EVAL_BATCH])
        y = labels[start : start + EVAL_BATCH]
        with autocast or contextlib.nullcontext():
            logits = model(x)
        hits = logits.argmax(-1) == y
        sums[0] += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum") / y.shape[1]
        sums[1] += hits.all(1).sum()
        sums[2] += hits.sum()
    loss, right, chars = sums.tolist()
    return loss / len(images), right / len(images), chars / (len(images) * labels.shape[1])


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
