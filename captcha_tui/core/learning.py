"""The model learns while the user labels: short fine-tunes on the answers so far (the label screen's).

Each round packs the folder's labelled answers (its labels.csv, read as ``prepare`` reads it) into a
dataset in a hidden work folder, ``FOLDER/.captcha-tui/learn/``, and fine-tunes the model the screen reads
with on it for a short time, learning from the rest of the folder too (``unlabelled``: its confident reads,
self_training.py) and from a few generated captchas. The user's images and labels.csv are only read: the
hidden folder is skipped by every listing of the folder (``list_images``, ``find_image_files``).

The dataset keeps the reading model's characters, lengths and image size, with any the answers add: the
fine-tune then starts from every one of its weights, and the new model reads what the old one did.

Everything here runs in a worker thread; :meth:`Learner.stop` may be called from any other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import events as ev
from .checkpoint import CheckpointError, load_checkpoint
from .dataset import DatasetError, load_dataset, prepare
from .decoding import edit_distance
from .labelling import label_file_in
from .labels import LabelError, normalise, read_label_rows
from .model import DEFAULT_BATCH_SIZE
from .predictor import Predictor
from .spec import CodeSpec
from .train import TrainConfig, Trainer
from .train.config import BEST

WORK_DIR = Path(".captcha-tui") / "learn"  # inside the labelled folder
DATASET = "dataset"
ROUND_PREFIX = "round-"


class LearnError(RuntimeError):
    """A round that cannot start (too few answers, nothing usable); ``str()`` says why."""


@dataclass(frozen=True)
class LearnSettings:
    """How the label screen learns. ``every``: labelled answers between two fine-tunes (0: only when asked,
    Ctrl+T); the rest shape each fine-tune."""

    every: int = 50
    time_limit_s: float = 60.0  # training time of one fine-tune (setting up comes on top)
    device: str = "cpu"
    threads: int = 1  # PyTorch threads of the fine-tune: the screen keeps a core
    min_answers: int = 10  # labelled answers before the first fine-tune
    unlabelled_limit: int = 2_000  # the folder's images kept for pseudo-labelling (self_training.py)
    generated: int = 0  # generated captchas mixed into every epoch (TrainConfig.generated: they cost)
    preset: str | None = None  # None: the reading model's (tests may name a smaller one)
    # Not the preset's: what the screen's fine-tunes and their timings were measured with.
    batch_size: int = DEFAULT_BATCH_SIZE
    # Linux: how much lower the fine-tune's thread runs than the rest (nice), so that the UI thread gets a
    # core first whenever it has a frame to draw.
    nice: int = 10
    # A round's model replaces the one read with only where it reads more of the answers the round held
    # out (a fine-tune on a few answers can unlearn what the model read well: the base on its own style).
    only_if_better: bool = True


@dataclass(frozen=True)
class Comparison:
    """The model a round started from and the one it made, on the answers the round held out (its
    validation and test splits: by content, so no round ever trained on them)."""

    answers: int
    before: tuple[int, int]  # (whole codes, characters) read right by the model the round started from
    after: tuple[int, int]  # the same by the round's model
    characters: int  # in those answers

    @property
    def better(self) -> bool:
        """Whether the round's model reads more of them: whole codes first, then characters (where
        nothing was held out, there is nothing to judge it by, and it is kept)."""
        return self.answers == 0 or self.after > self.before

    def describe(self) -> str:
        """'3 of 5 held-out answers read (the model before: 4)'."""
        return (
            f"{self.after[0]} of {self.answers} held-out answer{'s' if self.answers != 1 else ''} read "
            f"(the model before: {self.before[0]})"
        )


def compare_on_held_out(before: Path, after: Path, dataset: Path, device: str = "cpu") -> Comparison:
    """Read the validation and test answers of the round's ``dataset`` with both checkpoints. Raises
    CheckpointError or DatasetError."""
    data = load_dataset(dataset)
    images = np.concatenate([data.images[split] for split in ("val", "test")])
    labels = np.concatenate([data.labels[split] for split in ("val", "test")])
    codes = [data.spec.decode(row) for row in labels]
    scores = []
    for path in (before, after):
        predictor = Predictor.load(path, device)
        read = predictor.predict_arrays(images) if len(images) else []
        whole = sum(p.code == code for p, code in zip(read, codes, strict=True))
        chars = sum(
            max(0, len(code) - edit_distance(p.code, code)) for p, code in zip(read, codes, strict=True)
        )
        scores.append((whole, chars))
    return Comparison(len(codes), scores[0], scores[1], sum(map(len, codes)))


@dataclass(frozen=True)
class RoundResult:
    """One fine-tune: what it learnt from and what it left."""

    number: int
    answers: int  # labelled answers in its dataset (every split)
    run_dir: Path
    best: Path | None  # its best.pt, None when it left none (stopped before a first best, failed)
    outcome: ev.Finished | ev.Failed
    finished_at: float  # time.time()
    comparison: Comparison | None = None  # where it left a best.pt (and only_if_better)

    @property
    def kept(self) -> bool:
        """Whether its model is to replace the one read with."""
        return self.best is not None and (self.comparison is None or self.comparison.better)

    @property
    def failed(self) -> bool:
        return isinstance(self.outcome, ev.Failed)


def work_dir(folder: Path) -> Path:
    return Path(folder) / WORK_DIR


def answers_spec(folder: Path, model: CodeSpec) -> tuple[int, str, tuple[int, int]]:
    """(labelled answers, charset, (shortest, longest)) of a round's dataset: the model's characters and
    lengths and those of the answers. A per-position model keeps its one length (answers of another are
    left out, as ``prepare`` would)."""
    label_file = label_file_in(Path(folder))
    try:
        rows = read_label_rows(label_file) if label_file.is_file() else {}
    except LabelError as exc:
        raise LearnError(f"cannot read {label_file}: {exc}") from None
    codes = [normalise(row.label, model.keep_case) for row in rows.values() if row.label]
    charset = "".join(sorted(set(model.charset) | set("".join(codes))))
    if model.decoder != "ctc" or not codes:
        return len(codes), charset, (model.min_length, model.max_length)
    return (
        len(codes),
        charset,
        (min(model.min_length, *map(len, codes)), max(model.max_length, *map(len, codes))),
    )


class Learner:
    """Fine-tune rounds for one folder. Rounds are numbered after those already in the work folder, so a
    checkpoint of an earlier session (which ``label --model`` may name) is never written over."""

    def __init__(self, folder: Path, settings: LearnSettings) -> None:
        self.folder = Path(folder)
        self.settings = settings
        self.root = work_dir(self.folder)
        self._stop = threading.Event()
        self._trainer: Trainer | None = None
        self._lock = threading.Lock()
        self._made: list[Path] = []  # run folders of this session's rounds
        self.rounds = 0

    def stop(self) -> None:
        """From any thread: end the round under way soon (the trainer stops at its next batch) and start no
        other."""
        with self._lock:
            self._stop.set()
            if self._trainer is not None:
                self._trainer.request_stop()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _next_number(self) -> int:
        taken = [
            int(p.name[len(ROUND_PREFIX) :])
            for p in (self.root.iterdir() if self.root.is_dir() else ())
            if p.name.startswith(ROUND_PREFIX) and p.name[len(ROUND_PREFIX) :].isdigit()
        ]
        return max(taken, default=0) + 1

    def run_round(
        self,
        init: Path,
        on_event: Callable[[ev.TrainerEvent], None] | None = None,
    ) -> RoundResult:
        """Pack the answers and fine-tune ``init`` on them (in the calling thread, for at most about
        ``time_limit_s`` of training). Raises :class:`LearnError` when the round cannot start; a failure of
        the training itself is the result's ``outcome`` (``Failed``)."""
        settings = self.settings
        if self._stop.is_set():
            raise LearnError("stopped")
        try:
            meta = load_checkpoint(init, map_location="cpu").meta
        except Exception as exc:  # noqa: BLE001 - a checkpoint that cannot be read, for whatever reason
            raise LearnError(f"cannot fine-tune {init}: {exc}") from None
        answers, charset, lengths = answers_spec(self.folder, meta.spec)
        if answers < settings.min_answers:
            raise LearnError(
                f"{answers} labelled answer{'s' if answers != 1 else ''} so far: the model learns from "
                f"{settings.min_answers} on"
            )
        number = self._next_number()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            report = prepare(
                self.folder,
                self.root / DATASET,
                charset=charset,
                length=lengths,
                keep_case=meta.spec.keep_case,
                size=meta.spec.image_size,
                seed=number,
                workers=1,
                replace=True,
                # Each round starts from the last one's weights: an image it trained on must never be
                # scored as unseen in the next, however many answers came in between.
                stable_split=True,
            )
        except DatasetError as exc:
            raise LearnError(f"cannot pack the answers: {exc}") from None
        run_dir = self.root / f"{ROUND_PREFIX}{number:03d}"
        config = TrainConfig(
            data=self.root / DATASET,
            out=run_dir,
            init=Path(init),
            preset=settings.preset,
            device=settings.device,
            threads=settings.threads,
            epochs=1000,  # the time limit ends it; the schedule anneals over that
            time_limit_s=settings.time_limit_s,
            batch_size=settings.batch_size,
            unlabelled=self.folder,
            unlabelled_limit=settings.unlabelled_limit,
            generated=settings.generated,
            seed=number,
        )
        trainer = Trainer(config, on_event=on_event)
        with self._lock:
            self._trainer = trainer
            if self._stop.is_set():
                trainer.request_stop()
        self._made.append(run_dir)
        try:
            outcome = self._train(trainer)
        finally:
            with self._lock:
                self._trainer = None
        self.rounds += 1
        best = run_dir / BEST
        best = best if isinstance(outcome, ev.Finished) and best.is_file() else None
        comparison = None
        if best is not None and settings.only_if_better and not self._stop.is_set():
            try:
                comparison = compare_on_held_out(Path(init), best, self.root / DATASET, settings.device)
            except (CheckpointError, DatasetError) as exc:
                outcome = ev.Failed(message=f"cannot compare its model with the one before: {exc}")
                best = None
        return RoundResult(
            number=number,
            answers=report.total,
            run_dir=run_dir,
            best=best,
            outcome=outcome,
            finished_at=time.time(),
            comparison=comparison,
        )

    def _train(self, trainer: Trainer) -> ev.Finished | ev.Failed:
        """``trainer.run()`` in a thread of its own, at a lower priority: a thread's niceness cannot be
        raised back without privileges, so the caller's (a pooled worker thread) is left as it is."""
        outcome: list[ev.Finished | ev.Failed] = []
        error: list[BaseException] = []

        def train() -> None:
            lower_priority(self.settings.nice)
            try:
                outcome.append(trainer.run())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                error.append(exc)

        thread = threading.Thread(target=train, name="captcha-tui-learn", daemon=True)
        thread.start()
        thread.join()
        if error:
            raise error[0]
        return outcome[0]

    def prune(self, keep: Path) -> None:
        """Delete this session's round folders but ``keep``'s (the one read with): each holds a
        checkpoint or two, and a long session makes dozens."""
        keep = Path(keep).resolve()
        for run_dir in list(self._made):
            if run_dir.resolve() in (keep, *keep.parents):
                continue
            shutil.rmtree(run_dir, ignore_errors=True)
            self._made.remove(run_dir)


def lower_priority(nice: int) -> None:
    """Linux: run the calling thread ``nice`` steps lower (a thread's own niceness there); elsewhere, and
    where it is refused, nothing (elsewhere the call would renice the whole process)."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
