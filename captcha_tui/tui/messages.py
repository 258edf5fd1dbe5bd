"""Typed messages that workers and background threads post to the UI.

Posting a message is thread-safe in Textual, so these are the only way the training thread, the hardware
monitor and the data/predict workers reach the screens; handlers run on the UI thread. None of them
bubble: each is posted to the screen that shows it. (The app learns how a worker ended from the worker's
own result, in ``on_worker_state_changed``.)
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from ..core import events as ev
from ..core.hardware import Sample
from ..core.predictor import PathResult, Predictor
from ..core.runs import RunRecord


class TrainingUpdate(Message, bubble=False):
    """Trainer events since the previous flush: every other event in order, only the newest batch report.

    Posted at most once per flush interval (0.1 s), whatever the batch rate.
    """

    def __init__(self, events: tuple[ev.TrainerEvent, ...], batch: ev.BatchProgress | None) -> None:
        super().__init__()
        self.events = events
        self.batch = batch


class HardwareSampled(Message, bubble=False):
    """One sample from the hardware monitor thread (about once a second)."""

    def __init__(self, sample: Sample) -> None:
        super().__init__()
        self.sample = sample


class DataProgress(Message, bubble=False):
    """Progress of making the dataset: stage is "generate" or "prepare"."""

    def __init__(self, stage: str, done: int, total: int) -> None:
        super().__init__()
        self.stage = stage
        self.done = done
        self.total = total


class ModelLoaded(Message, bubble=False):
    def __init__(self, path: Path, predictor: Predictor) -> None:
        super().__init__()
        self.path = path
        self.predictor = predictor


class ModelFailed(Message, bubble=False):
    def __init__(self, path: Path, message: str) -> None:
        super().__init__()
        self.path = path
        self.message = message


class ReadProgress(Message, bubble=False):
    """How far a read of many files has got: ``done`` of ``total`` files, ``right`` of ``labelled`` so far.

    Posted at most ~10 times a second (see the eval screen's worker), whatever the read rate."""

    def __init__(self, read_id: int, request: str, done: int, total: int, right: int, labelled: int) -> None:
        super().__init__()
        self.read_id = read_id
        self.request = request
        self.done = done
        self.total = total
        self.right = right
        self.labelled = labelled


class PredictionsReady(Message, bubble=False):
    """Results for one request (a file, a folder or a glob), plus problems with the request itself.

    ``read_id``: the read it answers (the screen ignores one a newer read replaced; None: always shown).
    ``total``: the files the request named, when ``stopped`` (Escape) before all of them were read."""

    def __init__(
        self,
        request: str,
        results: list[PathResult],
        problems: list[str],
        read_id: int | None = None,
        total: int | None = None,
        stopped: bool = False,
    ) -> None:
        super().__init__()
        self.request = request
        self.results = results
        self.problems = problems
        self.read_id = read_id
        self.total = len(results) if total is None else total
        self.stopped = stopped


class RunsRead(Message, bubble=False):
    """A batch of run records read by the runs screen's worker: ``done`` of ``total`` run folders so far.

    ``problem``: the root folder itself could not be listed (no records then)."""

    def __init__(self, records: tuple[RunRecord, ...], done: int, total: int, problem: str = "") -> None:
        super().__init__()
        self.records = records
        self.done = done
        self.total = total
        self.problem = problem
