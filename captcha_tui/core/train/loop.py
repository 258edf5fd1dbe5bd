"""The training loop. No UI here: it reports through events (see ``events.py``) and runs in any thread.

Read ``Trainer._train`` top to bottom for the whole story: set up (the dataset on the device, the model,
fresh, fine-tuned from ``init`` or resumed: start.py), then epochs of (train, validate, keep the best,
save, ask the stop rules: stopping.py), then the test split scored with the best weights.

Time is training time: a pause counts in neither the images/s rate, the ETA, the time limit nor the
learning-rate schedule's clock. On ``resume``, ``time_limit_s`` counts this session's training only and
anneals what is left of the schedule (schedule.py).

Under torchrun (several processes, one run) the same loop runs on every rank: distributed.py says how the
ranks share each epoch, add up its scores, agree on every stop and leave rank 0 to report and write.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .. import events as ev
from ..augment import SMALL_SET, WARP, augment, augmentation_for
from ..checkpoint import CheckpointError, CheckpointMeta, save_checkpoint, write_atomically
from ..dataset import Dataset, DatasetError, load_dataset
from ..devices import DeviceError, resolve_device
from ..model import (
    CaptchaNet,
    build_model,
    count_parameters,
    prefers_channels_last,
    run_batch_size,
    to_model_input,
)
from ..objectives import Objective, character_errors, objective_for
from ..spec import CodeSpec
from ..tensorboard import TensorBoardLog
from .config import BEST, CONFIG, HISTORY, LAST, LOG, ConfigError, TrainConfig, TrainingError
from .distributed import Group, env_rank, is_peer_failure, join, launched, rank_share
from .schedule import Schedule, peak_learning_rate, short_run_notice
from .self_training import PseudoLabelReport, SelfTraining, generated_images, load_unlabelled
from .start import (
    RunState,
    check_steps,
    choose_preset,
    fine_tune,
    keep_model_characters,
    model_spec,
    new_run_dir,
    resume,
)
from .step import Scores, Tally, evaluate, mixed_precision, to_device, train_step
from .stopping import NO_BEST, BestScore, Standing, StopRule, StopRules, keeps_final_weights, patience_for

EventSink = Callable[[ev.TrainerEvent], None]
# Called before every optimisation step with (epoch, batch, batch_size): a seam for fault-injection tests.
StepHook = Callable[[int, int, int], None]
Clock = Callable[[], float]  # seconds, monotonic: time.perf_counter unless a test injects one


@dataclass
class _Run:
    """What one session trains with, built whole by :meth:`Trainer._setup`."""

    data: Dataset
    # The whole dataset lives on the device as uint8 (NHWC); each batch is converted there.
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    preset: str
    spec: CodeSpec  # what the model reads: the dataset's codes, with the preset's decoder
    model: CaptchaNet  # what is saved and validated
    net: torch.nn.Module  # what trains: the model, or DistributedDataParallel over it under torchrun
    objective: Objective
    optimizer: torch.optim.Optimizer  # its learning rate is set before every step, from the schedule
    autocast: torch.autocast | None
    scaler: torch.amp.GradScaler | None
    augmentation: str | None  # augment.py's kind for this run's training set; None: off
    init: str | None  # the checkpoint this run was fine-tuned from
    schedule: Schedule
    rules: StopRules
    best_weights: dict | None  # changes at each new best
    # --unlabelled / --generated: what each epoch adds to the labelled images (None: nothing)
    self_training: SelfTraining | None = None
    # A new cycle (Schedule.restarted) whose origin the first step sets: only the loop knows the epoch's
    # size, which self-training makes larger than the training split.
    cycle_pending: bool = False


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
        self._group: Group | None = None  # under torchrun: this process's place in the run
        self._progress: tuple[_Run, RunState] | None = None  # once set up: what a peer's failure saves
        self._started_from: Scores | None = None  # a fine-tune's checkpoint, scored before its first step
        self._init_rebuilt = False  # the fine-tune rebuilt the checkpoint's output layer
        # Whether this session's RunStarted is logged: what fails before it (a refused --resume, a missing
        # dataset) goes to the listener only, so that an earlier run's train.log keeps its own ending.
        self._logging = False
        self._claimed = False  # whether this session made the run's folder its own (its config.json)

    def _session_s(self) -> float:
        """Training seconds of this session: pauses excluded."""
        return self._clock() - self._session_zero - self._paused_s

    def _elapsed(self) -> float:
        """Training seconds of the whole run: a resumed run's earlier sessions and this one."""
        return self._before_s + self._session_s()

    def _standing(self, state: RunState, val_accuracy: float | None = None, epoch_s: float = 0.0) -> Standing:
        """Where the run stands, for the stop rules."""
        return Standing(
            epoch=state.epoch,
            best_epoch=state.best_epoch,
            best_accuracy=state.best_val,
            images_seen=state.images_seen,
            session_s=self._session_s(),
            val_accuracy=val_accuracy,
            epoch_s=epoch_s,
            patience_from=int(state.cycle_origin[0]) if state.cycle_origin else 0,
        )

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
            finished = self._train()
            if self._group is not None:
                self._group.wait_for_peers()
            return finished
        except ConfigError as exc:
            return self._fail(str(exc), usage=True)
        except (TrainingError, DatasetError, DeviceError, CheckpointError, ValueError) as exc:
            return self._fail(str(exc), traceback.format_exc())
        except Exception as exc:  # noqa: BLE001 - anything else is a bug worth a full traceback
            if self._group is not None and is_peer_failure(exc):
                return self._peer_failed(exc)
            return self._fail(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            if self._group is not None:
                self._group.close()
            if self._claimed and not self._logging:
                # Failed before it started: the config it claimed the folder with goes, so that the command
                # run again, corrected, trains there rather than in the next folder.
                with contextlib.suppress(OSError):
                    (self.run_dir / CONFIG).unlink()

    @property
    def _main(self) -> bool:
        """Whether this process reports and writes files: a single one, or rank 0 of several."""
        return self._group is None or self._group.main

    @property
    def _agree(self):
        """How the stop rules' verdicts are made the same on every rank (None: one process)."""
        return None if self._group is None else self._group.agree

    def _train(self) -> ev.Finished:
        if self.config.log_dir is not None and self._main:  # one more listener, like the front end's
            try:
                board = TensorBoardLog(self.config.log_dir)
            except ImportError as exc:
                raise ConfigError(str(exc)) from None
            front = self._sink
            self._sink = lambda event: (front(event), board(event))
        moved = None
        # A new run: never over an earlier one's files. Before the group is joined, rank 0 by the launcher's
        # word: it alone takes the folder (the others write nothing).
        if env_rank() == 0 and not self.config.resume:
            moved = self._claim_run_dir()
        run, state, notices = self._setup()
        if moved is not None:
            notices.insert(0, moved)
        self._progress = run, state
        if self._main:
            self._write_config()
        self._emit(self._run_started(run, state))
        for notice in notices:
            self._emit(notice)
        self._started_from = self._score_the_start(run)

        self._session_zero, self._paused_s, self._before_s = self._clock(), 0.0, state.elapsed_s
        rule = None
        while rule is None:
            epoch, started = state.epoch + 1, self._elapsed()
            images, labels, pseudo = self._epoch_set(run, state)
            trained, rule = self._train_epoch(run, state, epoch, images, labels)
            if rule is not None:
                break  # stopped, or out of time (or images), inside the epoch
            train = trained.means(run.train_y.shape[1])
            val = self._validate(run) if len(run.val_x) else train
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
                learning_rate=run.optimizer.param_groups[0]["lr"],
                train_char_error_rate=train.char_error_rate,
                val_char_error_rate=val.char_error_rate,
                pseudo_labels=pseudo.used if pseudo else None,
                pseudo_agreement=pseudo.agreement if pseudo else None,
            )
            state.history.append(asdict(end))
            self._emit(end)
            self._consider_best(run, state, val, epoch)
            self._save_last(run, state)
            self._emit(run.rules.countdown(self._standing(state, epoch_s=seconds)))
            rule = run.rules.after_epoch(self._standing(state, val_accuracy=end.val_accuracy), self._agree)
        return self._end(rule, run, state)

    def _score_the_start(self, run: _Run) -> Scores | None:
        """A fine-tune's starting point: how much of the validation split its checkpoint reads before any
        step, said at once, so that the end can say whether the fine-tune helped (a minute on a few
        hundred images can leave it reading less than the model it started from)."""
        # Every process validates, as at an epoch's end: the others would wait for rank 0 in the first
        # step's all-reduce, within --dist-timeout. A rebuilt output layer is no longer the checkpoint's.
        if run.init is None or self.config.resume or not len(run.val_x) or self._init_rebuilt:
            return None
        scores = self._validate(run)
        self._emit(
            ev.Notice(
                f"before fine-tuning, {run.init} reads {scores.accuracy:.1%} of the validation split's "
                "codes whole"
            )
        )
        return scores

    def _compare_with_the_start(self, run: _Run, state: RunState) -> None:
        started_from = self._started_from
        if started_from is None or state.best_epoch == 0 or state.best_val >= started_from.accuracy:
            return
        self._emit(
            ev.Notice(
                f"the fine-tuned model reads less of the validation split ({state.best_val:.1%} at best) than "
                f"{run.init} did before ({started_from.accuracy:.1%}): read with that one, or fine-tune "
                "longer or on more labels",
                "warning",
            )
        )

    def _write_config(self, replace_file: bool = True) -> None:
        # Atomically, as every file of the run: a kill or a full disk leaves the previous one whole.
        text = json.dumps(_jsonable(asdict(self.config)), indent=2) + "\n"
        write_atomically(
            self.run_dir / CONFIG, lambda out: out.write(text.encode()), "the run's config", replace_file
        )

    def _claim_run_dir(self) -> ev.Notice | None:
        """Take the run's folder (``out``, or the first ``out-N`` that holds no run) by creating its
        config.json there, where no file may be replaced: of two runs started at once with the same
        ``out``, the second goes on to the next folder instead of writing into the same one. Returns the
        notice saying it went elsewhere, if it did."""
        asked = self.run_dir
        while True:
            self.run_dir, moved = new_run_dir(asked)
            self.config = replace(self.config, out=self.run_dir)
            try:
                self._write_config(replace_file=False)
            except CheckpointError:
                if (self.run_dir / CONFIG).exists():
                    continue  # another run took it between the look and the claim
                raise
            self._claimed = True
            return moved

    def _epoch_set(
        self, run: _Run, state: RunState
    ) -> tuple[torch.Tensor, torch.Tensor, PseudoLabelReport | None]:
        """The images and labels of the next epoch: the training split, and with self-training its
        pseudo-labelled images (read anew with the current weights when due) and generated ones."""
        if run.self_training is None:
            return run.train_x, run.train_y, None
        reading = run.self_training.due(state.images_seen)
        images, labels, report = run.self_training.epoch_set(
            run.model,
            run.objective,
            (run.train_x, run.train_y),
            (run.val_x, run.val_y),
            run.autocast,
            state.images_seen,
        )
        if reading and report is not None:  # a line in the log each time the pool is read anew
            self._emit(ev.Notice(report.describe()))
        return images, labels, report

    def _train_epoch(
        self, run: _Run, state: RunState, epoch: int, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[Tally, StopRule | None]:
        """One pass over ``images`` (the epoch's set) from ``state.position`` on. Returns its sums, and
        None or the rule that ended the run inside the epoch."""
        cfg = self.config
        rank, world = (self._group.rank, self._group.world) if self._group else (0, 1)
        n, length = len(images), labels.shape[1]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
        order = order.to(images.device)
        by_cer = run.objective.varying_length  # codes of varying length: scored by the character error rate
        epoch_sums = Tally(images.device, by_cer)
        window = Tally(images.device, by_cer)  # since the last report
        started, last_report = self._elapsed(), time.perf_counter()
        batch = state.position // (state.batch_size * world)  # steps of this epoch already trained
        last_batch = None  # (decoded, targets) of the last step: CTC's character errors, sampled at reports
        run.model.train()
        while state.position < n:
            self._wait_while_paused()
            rule = run.rules.before_batch(self._standing(state), self._agree)
            if rule is not None:
                return epoch_sums, rule
            size = state.batch_size
            index, consumed = rank_share(order, state.position, size, rank, world)
            if len(index) < 2 and state.position > 0:
                break  # a lone leftover image: BatchNorm cannot train on a batch of one
            batch += 1
            self._set_learning_rate(run, state, epoch - 1 + state.position / n)
            try:
                if self._step_hook:
                    self._step_hook(epoch, batch, size)
                stats, last_batch = self._step(run, images[index], labels[index])
            except torch.OutOfMemoryError:
                stats = None
            if stats is None:  # out of memory; outside the except block the failed step's tensors are freed
                state.batch_size = self._handle_oom(run.optimizer, epoch, batch, size)
                batch -= 1
                continue  # the same images again, with the smaller mini-batch
            epoch_sums.add(stats, len(index))
            window.add(stats, len(index))
            state.position += consumed
            state.images_seen += len(index) * world  # every rank trained as many

            # A report's timing is each rank's own: it involves no collective, and only rank 0's is shown.
            epoch_done = n - state.position < 2 * world  # what is left cannot make another step
            if time.perf_counter() - last_report >= cfg.report_interval_s or epoch_done:
                if by_cer:  # the last batch's edit distances, read back with the report's sums
                    errors = character_errors(*last_batch)
                    window.add_errors(*errors)
                    epoch_sums.add_errors(*errors)
                scores = window.means(length)  # the one sync per report
                rate = epoch_sums.images * world / max(self._elapsed() - started, 1e-9)
                left = n - state.position
                at = self._standing(state)
                self._emit(
                    ev.BatchProgress(
                        epoch=epoch,
                        batch=batch,
                        batches=batch + math.ceil(left / (size * world)),
                        loss=scores.loss,
                        accuracy=scores.accuracy,
                        char_accuracy=scores.char_accuracy,
                        char_error_rate=scores.char_error_rate,
                        images_per_s=rate,
                        eta_s=left / rate if rate else 0.0,
                        batch_size=size,
                        time_left_s=run.rules.time_left_s(at),
                        images_left=run.rules.images_left(at),
                    )
                )
                window.clear()
                last_report = time.perf_counter()  # wall time: it paces the events, not the accounts
        if self._group is not None:
            self._group.reduce_tally(epoch_sums)  # the epoch's scores, not this rank's share of them
        return epoch_sums, None

    def _step(
        self, run: _Run, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One optimisation step on a mini-batch. Returns its (loss × images, whole codes right,
        characters right: per-position models only), left on the device, and its (decoded, targets)."""
        if run.augmentation is not None:
            images = augment(images, run.augmentation)
        logits, loss = train_step(
            run.net,
            run.optimizer,
            to_model_input(images),
            labels,
            run.autocast,
            run.scaler,
            run.objective,
        )
        with torch.no_grad():
            decoded = run.objective.decode(logits.detach())
            hits = run.objective.hits(decoded, labels)
            chars = (
                (decoded[:, : labels.shape[1]] == labels).sum()
                if not run.objective.varying_length
                else hits.sum() * 0
            )
            stats = torch.stack((loss.detach().float() * len(labels), hits.sum().float(), chars.float()))
            return stats, (decoded, labels)

    def _set_learning_rate(self, run: _Run, state: RunState, epochs_trained: float) -> None:
        if run.cycle_pending:
            run.cycle_pending = False
            state.cycle_origin = [epochs_trained, state.images_seen]
            run.schedule = run.schedule.cycle_from(
                epochs_trained, state.images_seen, run.schedule.peak_lr, 0.0
            )
        progress = run.schedule.progress(epochs_trained, state.images_seen, self._session_s())
        state.schedule_at = progress
        for group in run.optimizer.param_groups:
            group["lr"] = run.schedule.learning_rate(progress)

    def _wait_while_paused(self) -> None:
        """Block while paused; the time spent here is not training time."""
        if self._running.is_set():
            return
        blocked = self._clock()
        while not self._running.wait(0.1):
            pass
        self._paused_s += self._clock() - blocked

    def _validate(self, run: _Run) -> Scores:
        run.model.eval()
        scores = evaluate(run.model, run.val_x, run.val_y, run.autocast, run.objective)
        run.model.train()
        return scores

    def _consider_best(self, run: _Run, state: RunState, val: Scores, epoch: int) -> bool:
        """Keep these weights, and save them as best.pt, if they beat the best so far (:class:`BestScore`).
        Returns whether they did."""
        score = BestScore.of(val.accuracy, val.char_accuracy, val.char_error_rate)
        if not score.beats(BestScore(state.best_val, state.best_char)):
            return False
        previous = state.best_val if state.best_val > NO_BEST.accuracy else None
        self._emit(ev.NewBest(epoch, val.accuracy, previous))
        self._make_best(run, state, score, epoch)
        return True

    def _make_best(self, run: _Run, state: RunState, score: BestScore, epoch: int) -> None:
        """The model's weights now are the run's best: kept in memory and saved as best.pt."""
        state.best_val, state.best_char, state.best_epoch = score.accuracy, score.chars, epoch
        run.best_weights = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        self._save(BEST, run, state, with_optimizer=False)

    def _end(self, rule: StopRule, run: _Run, state: RunState) -> ev.Finished:
        """Say why the run ended, keep what an unfinished epoch trained, and score the test split once,
        with the best weights (it is never used to choose anything)."""
        if state.position:  # ended inside an epoch: last.pt keeps its progress for --resume
            self._save_last(run, state)
        last_val = state.history[-1]["val_accuracy"] if state.history else None
        notice = rule.notice(self._standing(state, val_accuracy=last_val))
        if notice is not None:
            self._emit(ev.Notice(notice))
        if not rule.scores_test:
            return self._finish(rule.reason, state, None)
        if (
            # Out of time (or images) inside an epoch: the weights trained so far may be the best ones.
            rule.spent
            and state.position
            and len(run.val_x)
            and self._consider_best(run, state, self._validate(run), state.epoch + 1)
        ):
            self._emit(ev.Notice(f"{rule.spent} in epoch {state.epoch + 1}: its weights are the best yet"))
        if keeps_final_weights(len(run.val_x), run.schedule.kind, state.schedule_at):
            self._keep_final_weights(run, state)
        self._compare_with_the_start(run, state)
        test = None
        if run.best_weights is not None and run.data.count("test") and self._main:
            run.model.load_state_dict(run.best_weights)
            run.model.eval()
            test_x, test_y = to_device(run.data, "test", self.device)
            test = evaluate(run.model, test_x, test_y, run.autocast, run.objective)
        return self._finish(rule.reason, state, test)

    def _keep_final_weights(self, run: _Run, state: RunState) -> None:
        """Make the annealed final weights the best (:func:`keeps_final_weights`), saying so where the
        highest-scoring epoch was another."""
        epoch = state.epoch + (1 if state.position else 0)
        if state.best_epoch == epoch or not epoch:
            return
        val = self._validate(run)
        n = len(run.val_x)
        self._emit(
            ev.Notice(
                f"a validation split of {n} images is too few to choose an epoch by (one image is "
                f"{100 / n:.1f} points): best.pt keeps the final weights, where the schedule ends (epoch "
                f"{epoch}, {val.accuracy:.1%}), not epoch {state.best_epoch}'s ({state.best_val:.1%})"
            )
        )
        self._make_best(run, state, BestScore.of(val.accuracy, val.char_accuracy, val.char_error_rate), epoch)

    def _handle_oom(self, optimizer, epoch: int, batch: int, size: int) -> int:
        """Free what the failed step held and return the halved mini-batch (or give up below 1)."""
        optimizer.zero_grad(set_to_none=True)
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.empty_cache()
        smaller = size // 2
        if self._group is not None:  # one rank alone on smaller batches would leave the others waiting
            raise TrainingError(
                f"out of memory on {self.device} with a mini-batch of {size} a process: with several "
                f"processes the run cannot shrink it on one of them; train with --batch-size {smaller}"
            )
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
    def _setup(self) -> tuple[_Run, RunState, list[ev.Notice]]:
        """The device, the dataset on it, the model (fresh, fine-tuned or resumed) and its optimiser, the
        state to start from, and the notices to give once the run has started."""
        cfg = self.config
        if launched():
            self._group = join(cfg.device, cfg.dist_timeout_s)
            device = self.device = self._group.device
        else:
            device = self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
        torch.manual_seed(cfg.seed)
        data, kept_characters = keep_model_characters(load_dataset(cfg.data), cfg, self.run_dir)
        train_x, train_y = to_device(data, "train", device)
        val_x, val_y = to_device(data, "val", device)
        preset = choose_preset(cfg, self.run_dir, data.spec)
        spec = model_spec(preset, data)
        model = build_model(preset, spec).to(device)
        check_steps(preset, model, data)
        model.set_channels_last(prefers_channels_last(preset, device))
        optimizer = torch.optim.AdamW(model.parameters(), weight_decay=cfg.weight_decay)
        autocast, scaler = mixed_precision(cfg.amp, device)

        notices = [kept_characters] if kept_characters is not None else []
        augmentation = augmentation_for(len(train_x)) if cfg.augment else None
        if augmentation == WARP:
            notices.append(
                ev.Notice(
                    f"{len(train_x):,} training images (under {SMALL_SET:,}): each is shown randomly "
                    "rotated, scaled, sheared and recoloured (--no-augment: as they are)"
                )
            )
        self.patience = patience_for(cfg.patience, cfg.budgeted, len(train_x))
        short = short_run_notice(len(train_x), cfg.epochs)
        if short is not None and not cfg.resume:
            notices.append(short)

        state, init, best_weights, started = self._start(model, optimizer, preset, spec)
        notices += started
        self_training = self._self_training(data, spec, device, notices)
        net = model
        if self._group is not None:
            if len(train_x) < 2 * self._group.world:
                raise ConfigError(
                    f"{len(train_x)} training images cannot be shared among {self._group.world} processes "
                    "(each needs at least 2 a step): train on one process"
                )
            net = self._group.wrap(model)  # after the resume: every rank starts from rank 0's weights
            model = net.module
            # Each rank draws its own augmentations (the weights are drawn already, and rank 0's shared).
            torch.manual_seed(cfg.seed * 1_000_003 + self._group.rank)
        if len(val_x) == 0:
            notices.append(
                ev.Notice("no validation images: the best model is chosen by training accuracy", "warning")
            )
        # A fine-tune (or a resumed one: its checkpoints say so) gets the gentler schedule.
        schedule = Schedule.for_run(cfg, preset, len(train_x), init is not None, state.schedule_at)
        gentle = peak_learning_rate(preset, len(train_x), True, cfg.lr)
        if state.cycle_origin is not None and schedule.kind == "onecycle":
            epochs_from, images_from = state.cycle_origin  # a cycle restarted in an earlier session
            schedule = schedule.cycle_from(epochs_from, int(images_from), gentle, state.schedule_at)
        cycle_pending = False
        if cfg.resume:  # that cycle, or the run's own schedule, may have ended too
            trained = state.epoch + state.position / max(len(train_x), 1)  # the first step knows exactly
            restarted = schedule.restarted(trained, state.images_seen, gentle)
            if restarted is not None:
                schedule, cycle_pending = restarted, True
                state.schedule_at, state.cycle_origin = 0.0, [trained, state.images_seen]
                peak = "a third of the preset's, as a fine-tune's" if cfg.lr is None else "its --lr"
                notices.append(
                    ev.Notice(
                        "this run's learning-rate schedule had ended: the budget added trains on a new "
                        f"one-cycle peaking at {gentle:.2g} ({peak}), and patience counts from its start"
                    )
                )
        run = _Run(
            data=data,
            train_x=train_x,
            train_y=train_y,
            val_x=val_x,
            val_y=val_y,
            preset=preset,
            spec=spec,
            model=model,
            net=net,
            objective=objective_for(spec, cfg.label_smoothing),
            optimizer=optimizer,
            autocast=autocast,
            scaler=scaler,
            augmentation=augmentation,
            init=init,
            schedule=schedule,
            rules=StopRules.for_run(cfg, self.patience, len(train_x), self._stop),
            best_weights=best_weights,
            self_training=self_training,
            cycle_pending=cycle_pending,
        )
        return run, state, notices

    def _self_training(
        self, data: Dataset, spec: CodeSpec, device: torch.device, notices: list[ev.Notice]
    ) -> SelfTraining | None:
        """The unlabelled images (--unlabelled) and generated captchas (--generated) that each epoch adds
        to the training split, on the device; None when there are neither."""
        cfg = self.config
        unlabelled = generated = None
        if cfg.unlabelled is not None:
            try:
                pool, said = load_unlabelled(cfg.unlabelled, data, limit=cfg.unlabelled_limit, seed=cfg.seed)
            except DatasetError as exc:  # the command names a folder that cannot be used
                raise ConfigError(str(exc)) from None
            notices.extend(ev.Notice(line, "warning") for line in said)
            unlabelled = torch.from_numpy(pool).to(device)
        if cfg.generated:
            images, labels = generated_images(spec, cfg.generated, seed=cfg.seed)
            generated = (
                torch.from_numpy(images).to(device),
                torch.from_numpy(labels.astype("int64")).to(device),
            )
        if unlabelled is None and generated is None:
            return None
        parts = []
        if unlabelled is not None:
            parts.append(
                f"{len(unlabelled):,} unlabelled images of {cfg.unlabelled}, pseudo-labelled (read anew as the run goes on) "
                f"where every character is at least {cfg.pseudo_threshold:g} probable"
            )
        if generated is not None:
            parts.append(f"{len(generated[0]):,} generated captchas of the built-in style")
        notices.append(ev.Notice("each epoch adds " + " and ".join(parts) + " to the labelled images"))
        return SelfTraining(unlabelled, generated, cfg.pseudo_threshold)

    def _start(
        self, model: CaptchaNet, optimizer: torch.optim.Optimizer, preset: str, spec: CodeSpec
    ) -> tuple[RunState, str | None, dict | None, list[ev.Notice]]:
        """A new run, a fine-tune or a resumed run (start.py): the state to start from, the checkpoint it
        was fine-tuned from, its best weights so far, and what to say about it."""
        cfg = self.config
        state = RunState(batch_size=run_batch_size(preset, cfg.batch_size))
        init, best_weights, notices = None, None, []
        if cfg.init is not None:
            init, notice, self._init_rebuilt = fine_tune(model, preset, spec, cfg.init, self.device)
            notices.append(notice)
        if cfg.resume:
            resumed = resume(self.run_dir, model, optimizer, preset, spec, cfg, self.device)
            state, init, best_weights = resumed.state, resumed.init, resumed.best_weights
            notices.append(resumed.notice)
        if cfg.time_limit_s is not None and state.elapsed_s > 0:
            notices.append(
                ev.Notice(
                    f"time limit {cfg.time_limit_s:g} s: it counts this session's training only (the run "
                    f"trained {state.elapsed_s:.0f} s before it); pauses do not count"
                )
            )
        return state, init, best_weights, notices

    def _run_started(self, run: _Run, state: RunState) -> ev.RunStarted:
        cfg = self.config
        world = self._group.world if self._group else 1
        return ev.RunStarted(
            dataset=str(cfg.data),
            train_count=len(run.train_x),
            val_count=len(run.val_x),
            test_count=run.data.count("test"),
            spec=run.spec,
            preset=run.preset,
            device=str(self.device),
            batch_size=state.batch_size,
            learning_rate=run.schedule.peak_lr,
            amp=run.autocast is not None,
            patience=self.patience,
            max_epochs=cfg.epochs,
            start_epoch=state.epoch + 1,
            batches_per_epoch=math.ceil(len(run.train_x) / (state.batch_size * world)),
            run_dir=str(self.run_dir),
            parameters=count_parameters(run.model),
            init=run.init,
            time_limit_s=cfg.time_limit_s,
            processes=world,
            backend=self._group.backend if self._group else None,
        )

    # ---- checkpoints, history -------------------------------------------------------------------------------
    def _save_last(self, run: _Run, state: RunState) -> None:
        """last.pt (weights, optimiser and state: everything --resume needs) and history.jsonl."""
        if not state.position:  # where the schedule stands after the epoch, not before its last step
            done = run.schedule.progress(state.epoch, state.images_seen, self._session_s())
            state.schedule_at = max(state.schedule_at, min(done, 1.0))
        self._save(LAST, run, state, with_optimizer=True)
        self._write_history(state.history)

    def _save(self, name: str, run: _Run, state: RunState, with_optimizer: bool) -> None:
        if not self._main:
            return
        state.elapsed_s = self._elapsed()
        meta = CheckpointMeta(
            spec=run.spec,
            preset=run.preset,
            # best.pt: the epoch its weights are from, which a run that ends inside an epoch has not finished
            epoch=state.best_epoch if name == BEST else state.epoch,
            val_accuracy=state.best_val
            if name == BEST
            else (state.history[-1]["val_accuracy"] if state.history else 0.0),
            dataset=str(self.config.data),
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            init=run.init,
        )
        payload = {
            "meta": meta.to_dict(),
            "model": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
            "trainer": asdict(replace(state, history=[])),
            "history": state.history,
        }
        if with_optimizer:
            payload["optimizer"] = run.optimizer.state_dict()
        path = save_checkpoint(self.run_dir / name, payload)
        self._emit(ev.CheckpointSaved(str(path), name.removesuffix(".pt"), state.epoch))

    def _write_history(self, history: list[dict]) -> None:
        if not self._main:
            return
        path = self.run_dir / HISTORY
        text = "".join(json.dumps(row) + "\n" for row in history)
        try:
            write_atomically(path, lambda out: out.write(text.encode()), "the run's history")
        except CheckpointError as exc:
            self._emit(ev.Notice(str(exc), "warning"))

    # ---- events --------------------------------------------------------------------------------------------
    def _emit(self, event: ev.TrainerEvent) -> None:
        if not self._main:
            return  # rank 0 speaks for the run
        if not isinstance(event, ev.BatchProgress):
            self._log(event)
        self._sink(event)

    def _log(self, event: ev.TrainerEvent) -> None:
        self._logging = self._logging or isinstance(event, ev.RunStarted)
        if not self._logging:
            return
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with (self.run_dir / LOG).open("a", encoding="utf-8") as handle:
                handle.write(
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')} {type(event).__name__} {json.dumps(_jsonable(asdict(event)))}\n"
                )
        except OSError:
            pass  # a read-only or full disk must not hide the event itself

    def _finish(self, reason: str, state: RunState, test: Scores | None) -> ev.Finished:
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
        if not self._main:  # its own fatal error: the one thing a rank other than 0 says, and no file
            event = ev.Failed(message=f"process {self._group.rank}: {message}", usage=usage)
            self._sink(event)
            return event
        if usage:  # the user's command to change, not a fault to investigate: nothing to log
            event = ev.Failed(message=message, usage=True)
            self._emit(event)
            return event
        log_path = None
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.run_dir / "error.log"
            with log_path.open("a", encoding="utf-8") as handle:  # after any earlier failure's, kept
                handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n\n{trace}\n")
        except OSError:
            log_path = None
        event = ev.Failed(message=message, traceback=trace, log_path=str(log_path) if log_path else None)
        self._emit(event)
        return event

    def _peer_failed(self, exc: BaseException) -> ev.Failed:
        """Another process of the run died or stopped answering in a collective. Rank 0 saves the steps
        every rank completed (a failed step changed no weight), so the run resumes from there."""
        if self._main and self._progress is not None and self._progress[1].position:
            with contextlib.suppress(CheckpointError, OSError):  # else the last epoch's last.pt stays
                self._save_last(*self._progress)
        # gloo's words, without its source location and the advice after the first sentence.
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        detail = re.sub(r"^\[[^\]]*\]\s*", "", detail).split(". ")[0].rstrip(".")
        last = self.run_dir / LAST
        kept = (
            f"{last} keeps the run so far: resume with --resume" if last.exists() else "nothing was saved yet"
        )
        return self._fail(
            f"another training process of this run stopped or stopped answering ({detail}); {kept}",
            traceback.format_exc(),
        )


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
