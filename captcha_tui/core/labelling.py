"""Label your own captchas: the images of a folder not labelled yet, least confident first, each answer
appended to the folder's labels.csv the moment it is given.

A person's answers are the most expensive data there is, so the label file is only ever appended to:
one row per answer, written with a single ``write`` and ``fsync``-ed before the next image is shown. A
crash or ``kill -9`` loses at most the answer being typed; the next session reads the file back and asks
only about the images still unanswered. An existing file is never rewritten or truncated.

Rows are ``path,label,note`` (``path`` relative to the folder), and the last row for an image wins. An
image marked unreadable gets an empty label and the note ``unreadable``: it is not asked about again, and
``prepare`` skips it ("marked unreadable"). Undoing an answer appends a row with an empty label and the
note ``undone``: the image is unlabelled again, asked about again, and skipped by ``prepare`` until it is
answered again. A skipped image is not written down: the next session asks about it again.

The order: the images the model is least sure of first (the product of its per-character confidences),
as those teach it the most. Scoring runs in chunks so that the first image can be shown while the rest
are still being scored; :class:`LabelQueue` always hands out the least confident image scored so far.
"""

from __future__ import annotations

import csv
import heapq
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .checkpoint import sync_folder
from .images import IMAGE_SUFFIXES, MODEL_IMAGE_SIZE, ImageError, is_image_file, load_image
from .labels import (
    LABEL_FILES,
    UNDONE,
    UNREADABLE,
    CutRow,
    LabelError,
    LabelTable,
    find_label_file,
    read_label_table,
)
from .model import WIDE_CTC_PRESET, time_steps
from .oserrors import describe_os_error, missing
from .predictor import Prediction, Predictor

HEADER = ("path", "label", "note")
CUT_SHORT = "cut short"  # the note of a row that replaces one whose label a crash cut short
FIRST_CHUNK = 64  # images scored before the first is shown (the least confident of them)
SCORE_CHUNK = 256  # images decoded and scored per step after that
MODEL_BATCH = 16  # images per model pass: short passes, so that a pause (see score) comes soon


class LabellingError(ValueError):
    """A folder that cannot be labelled, an answer that cannot be used or saved; ``str()`` says why."""


# ---- the folder ------------------------------------------------------------------------------------------


def label_file_in(folder: Path) -> Path:
    """The label file ``prepare`` reads in ``folder`` (labels.csv, else an existing labels.tsv)."""
    return find_label_file(folder) or folder / LABEL_FILES[0]


def list_images(folder: Path) -> list[tuple[str, bool]]:
    """Image files under ``folder`` (sub-folders too, as ``prepare`` reads them), hidden ones left out:
    (name relative to ``folder`` with /, whether it is a symbolic link), sorted by name. By extension,
    as a folder may hold tens of thousands; only a file without an image's extension is opened (a scraped
    captcha saved as `captcha` or `code.php`)."""
    found: list[tuple[str, bool]] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        with os.scandir(os.path.join(folder, prefix) if prefix else folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                name = f"{prefix}/{entry.name}" if prefix else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                elif (
                    entry.name not in LABEL_FILES
                    and entry.is_file()
                    and is_image_file(entry.path, entry.name)
                ):
                    found.append((name, entry.is_symlink()))
    return sorted(found)


@dataclass(frozen=True)
class Candidate:
    """One image to label."""

    path: Path
    name: str  # as written in the label file: relative to the folder, with /
    order: int  # its place in the folder listing: breaks ties, and the order when there is no model
    prediction: Prediction | None = None

    @property
    def reading(self) -> str:
        """What the input is pre-filled with: the model's reading, or nothing."""
        return self.prediction.code if self.prediction is not None else ""

    @property
    def rank(self) -> tuple[float, int]:
        """Least confident first; unscored images after every scored one, in folder order."""
        confidence = self.prediction.confidence if self.prediction is not None else 2.0
        return confidence, self.order


class LabelFile:
    """The folder's label file, appended to one answer at a time and synced after each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        self.answered: set[Path] = set()  # resolved paths of the images already answered
        self.unreadable: set[Path] = set()  # those of them marked unreadable
        self._before_next_row = ""  # what must precede the next row (a line end after a cut-short write)
        self._stale = False  # a write failed part-way: read the file's end again before the next one
        self._read()

    def _read(self) -> None:
        if not self.path.exists():
            self.answered, self.unreadable, self._before_next_row = set(), set(), ""
            return
        try:
            table = read_label_table(self.path)
        except LabelError as exc:
            raise LabellingError(f"cannot use {self.path}: {exc}; it was left as it is") from None
        self.answered, self.unreadable = _answered(table)
        self._before_next_row = self._repair(table)

    def _row(self, *cells: str) -> str:
        out = io.StringIO()
        csv.writer(out, delimiter=self.delimiter, lineterminator="\n").writerow(cells)
        return out.getvalue()

    def _repair(self, table: LabelTable) -> str:
        """Text that ends an unterminated last line so that the next row starts on a line of its own.

        A row cut short inside a quote is closed, and one left with only a path gets an empty label, so
        the file stays readable by ``prepare``; a label that was cut short is replaced by an empty one
        (the image is asked about again: its row was not in ``answered``).
        """
        if table.ends_with_newline:
            return ""
        cut: CutRow | None = table.cut
        if cut is None:
            return "\n"
        text = ('"' if cut.open_quote else "") + (self.delimiter if len(cut.cells) < 2 else "") + "\n"
        if len(cut.cells) == 2 and cut.cells[0].strip():
            text += self._row(cut.cells[0].strip(), "", CUT_SHORT)
        return text

    def problem_saving(self) -> str | None:
        """Why answers could not be saved here (a read-only folder, say), or None. Writes nothing."""
        try:
            if self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND))
            else:
                fd, probe = tempfile.mkstemp(prefix=".labels-probe-", dir=self.path.parent)
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            return f"cannot save answers in {self.path.parent}: {describe_os_error(exc)}"
        return None

    def append(self, candidate: Candidate, label: str, note: str = "") -> None:
        """Write one row and sync it to disk; raises :class:`LabellingError` when it could not be saved."""
        if self._stale:
            self._read()
            self._stale = False
        row = self._row(candidate.name, label, note)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LabellingError(f"not saved: cannot write {self.path}: {describe_os_error(exc)}") from None
        try:
            new = os.fstat(fd).st_size == 0
            text = (self._row(*HEADER) if new else self._before_next_row) + row
            data = text.encode("utf-8")
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        except OSError as exc:
            self._stale = True
            raise LabellingError(f"not saved: cannot write {self.path}: {describe_os_error(exc)}") from None
        finally:
            os.close(fd)
        if new:
            sync_folder(self.path.parent)  # the new file's name must survive a crash too
        self._before_next_row = ""
        path = candidate.path.resolve()
        # As read back: the last row wins, so an undone answer leaves the image unanswered.
        self.answered.discard(path)
        self.unreadable.discard(path)
        if label or note == UNREADABLE:
            self.answered.add(path)
            if not label:
                self.unreadable.add(path)


def _answered(table: LabelTable) -> tuple[set[Path], set[Path]]:
    """Images whose last row gives a label or marks them unreadable, and those marked unreadable."""
    last = {row.path: row for row in table.rows}
    unreadable = {path for path, row in last.items() if not row.label and row.note == UNREADABLE}
    return {path for path, row in last.items() if row.label} | unreadable, unreadable


@dataclass(frozen=True)
class FolderScan:
    """What a folder holds: every image, the label file, and the images not answered yet."""

    folder: Path
    label_file: LabelFile
    images: int
    unlabelled: list[Candidate]
    cannot_save: str | None  # why answers could not be saved here, or None
    unreadable: int = 0  # images marked unreadable before (answered, but with no label)

    @property
    def answered(self) -> int:
        """Images answered before: labelled or marked unreadable."""
        return self.images - len(self.unlabelled)

    @property
    def labelled(self) -> int:
        """Images given a label before."""
        return self.answered - self.unreadable


def scan_folder(folder: str | Path) -> FolderScan:
    """List ``folder``'s images and read its label file; raises :class:`LabellingError` for a folder that
    is missing, holds no images, or has a label file that cannot be read."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise LabellingError(f"no such folder: {missing(folder)}")
    if not folder.is_dir():
        raise LabellingError(f"not a folder: {folder}")
    try:
        images = list_images(folder)
    except OSError as exc:
        raise LabellingError(f"cannot list {folder}: {describe_os_error(exc)}") from None
    if not images:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise LabellingError(f"no images in {folder} (looked for {suffixes}, and files that begin as one)")
    label_file = LabelFile(label_file_in(folder))
    answered = {str(path) for path in label_file.answered}
    marked = {str(path) for path in label_file.unreadable}
    root = str(folder.resolve())

    def resolved(name: str, link: bool) -> str:
        # The label file's paths are resolved; resolve only links here, the rest is string work.
        return os.path.realpath(os.path.join(folder, name)) if link else os.path.join(root, name)

    unlabelled: list[Candidate] = []
    unreadable = 0
    for order, (name, link) in enumerate(images):
        key = resolved(name, link) if answered else ""
        if key not in answered:
            unlabelled.append(Candidate(folder / name, name, order))
        elif key in marked:
            unreadable += 1
    return FolderScan(folder, label_file, len(images), unlabelled, label_file.problem_saving(), unreadable)


# ---- scoring ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredChunk:
    candidates: list[Candidate]  # with the model's reading, when there is a model
    broken: list[tuple[Candidate, str]]  # images that could not be decoded, with the reason


def score(
    candidates: list[Candidate],
    predictor: Predictor | None,
    chunk: int = SCORE_CHUNK,
    pause: Callable[[], None] | None = None,
    first_chunk: int = FIRST_CHUNK,
) -> Iterator[ScoredChunk]:
    """Decode (and, with a model, read) the images ``first_chunk``, then ``chunk`` at a time. Without a
    model the images are still decoded, so that a broken file is left out before anyone is asked about
    it. ``pause`` is called before each image and before each model pass of :data:`MODEL_BATCH` images:
    it may wait (while a screen draws the next image)."""
    if not candidates:
        return
    size = predictor.spec.image_size if predictor is not None else MODEL_IMAGE_SIZE
    bounds = [0, *range(min(first_chunk, chunk), len(candidates), chunk), len(candidates)]
    for start, stop in zip(bounds, bounds[1:], strict=False):
        good: list[Candidate] = []
        arrays: list[np.ndarray] = []
        broken: list[tuple[Candidate, str]] = []
        for candidate in candidates[start:stop]:
            if pause is not None:
                pause()
            try:
                arrays.append(load_image(candidate.path, size))
            except ImageError as exc:
                broken.append((candidate, str(exc)))
            else:
                good.append(candidate)
        if predictor is not None and good:
            predictions = []
            for first in range(0, len(arrays), MODEL_BATCH):
                if pause is not None:
                    pause()
                predictions.extend(predictor.predict_arrays(np.stack(arrays[first : first + MODEL_BATCH])))
            good = [replace(c, prediction=p) for c, p in zip(good, predictions, strict=True)]
        yield ScoredChunk(good, broken)


class LabelQueue:
    """The images waiting, least confident first, whatever order their chunks were scored in."""

    def __init__(self) -> None:
        self._heap: list[tuple[tuple[float, int], Candidate]] = []

    def add(self, candidates: list[Candidate]) -> None:
        for candidate in candidates:
            heapq.heappush(self._heap, (candidate.rank, candidate))

    def pop(self) -> Candidate | None:
        return heapq.heappop(self._heap)[1] if self._heap else None

    def items(self) -> list[Candidate]:
        """Every image waiting, in no particular order."""
        return [candidate for _, candidate in self._heap]

    def replace(self, candidates: list[Candidate]) -> None:
        """Wait for ``candidates`` instead (in one step: a heap of thousands is built in milliseconds)."""
        self._heap = [(candidate.rank, candidate) for candidate in candidates]
        heapq.heapify(self._heap)

    def peek(self, count: int) -> list[Candidate]:
        """The next ``count`` (a few) images, in order, without taking them."""
        # The k-th smallest entry of a heap sits in its first 2**k - 1 places.
        return [c for _, c in heapq.nsmallest(count, self._heap[: 2**count - 1])]

    def __len__(self) -> int:
        return len(self._heap)


# ---- the session -----------------------------------------------------------------------------------------


@dataclass
class Tally:
    """This session's answers."""

    accepted: int = 0  # the model's reading, unchanged
    corrected: int = 0  # the model's reading, changed
    typed: int = 0  # typed with no reading to start from (no model)
    unreadable: int = 0
    skipped: int = 0

    @property
    def labelled(self) -> int:
        return self.accepted + self.corrected + self.typed

    @property
    def model_accuracy(self) -> float | None:
        """How often the model read the user's captchas right: accepted unchanged / answered with a
        reading (skips and unreadables left out). None before the first such answer."""
        judged = self.accepted + self.corrected
        return self.accepted / judged if judged else None


# How an image was answered in this session: each is the name of the Tally field it counts in.
ACCEPTED = "accepted"
CORRECTED = "corrected"
TYPED = "typed"
MARKED_UNREADABLE = "unreadable"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Answer:
    """One answer of this session, kept so that it can be undone."""

    candidate: Candidate
    kind: str  # ACCEPTED … SKIPPED


@dataclass
class LabellingSession:
    """One pass over a folder: the queue, the image shown now, the answers so far."""

    scan: FolderScan
    keep_case: bool = False  # False: the model reads lower case, so "K3X9" for "k3x9" is no correction
    queue: LabelQueue = field(default_factory=LabelQueue)
    tally: Tally = field(default_factory=Tally)
    broken: list[tuple[Candidate, str]] = field(default_factory=list)
    current: Candidate | None = None
    scored: int = 0  # images scored so far (good and broken)
    history: list[Answer] = field(default_factory=list)  # this session's answers and skips, in order

    @property
    def label_file(self) -> LabelFile:
        return self.scan.label_file

    @property
    def total(self) -> int:
        """Images that can be labelled: all the folder's images but those found broken."""
        return self.scan.images - len(self.broken)

    @property
    def labelled(self) -> int:
        """Images given a label, before this session and in it."""
        return self.scan.labelled + self.tally.labelled

    @property
    def unreadable(self) -> int:
        """Images marked unreadable, before this session and in it."""
        return self.scan.unreadable + self.tally.unreadable

    @property
    def done(self) -> int:
        """Images answered (labelled or marked unreadable), before this session and in it."""
        return self.labelled + self.unreadable

    @property
    def scoring(self) -> bool:
        return self.scored < len(self.scan.unlabelled)

    def add(self, chunk: ScoredChunk) -> bool:
        """Queue a scored chunk; True when that put an image on show (none was before)."""
        self.queue.add(chunk.candidates)
        self.broken.extend(chunk.broken)
        self.scored += len(chunk.candidates) + len(chunk.broken)
        if self.current is None:
            self.current = self.queue.pop()
            return self.current is not None
        return False

    def reread(self, candidates: list[Candidate]) -> bool:
        """New readings of images that were waiting (a new model read them): the queue is ranked anew by
        them. Images answered since they were handed out are not put back; those queued since (an undone
        answer) keep the reading they have. True when that put an image on show (none was before)."""
        fresh = {candidate.name: candidate for candidate in candidates}
        self.queue.replace([fresh.get(c.name, c) for c in self.queue.items()])
        if self.current is None:
            self.current = self.queue.pop()
            return self.current is not None
        return False

    def _next(self) -> Candidate | None:
        self.current = self.queue.pop()
        return self.current

    def answer(self, text: str) -> Candidate | None:
        """Save ``text`` as the label of the image on show and move on; returns the next image (None:
        none ready). Raises :class:`LabellingError` (nothing saved, the same image stays) for an empty
        or spaced answer or a failed write."""
        candidate = self.current
        if candidate is None:
            raise LabellingError("no image to label")
        label = text.strip()
        if not label:
            raise LabellingError("nothing typed")
        if any(char.isspace() for char in label):
            raise LabellingError(f"{label!r} holds a space: a code has none")
        if not label.isprintable():
            raise LabellingError(f"{label!r} holds a character that cannot be shown (a control character?)")
        longest = time_steps(WIDE_CTC_PRESET, MODEL_IMAGE_SIZE)
        if len(label) > longest:
            # prepare would skip it: no model here reads so long a code (a paste of something else?)
            raise LabellingError(
                f"{len(label)} characters: longer than any model here reads ({longest} at most)"
            )
        self.label_file.append(candidate, label)
        if candidate.prediction is None:
            kind = TYPED
        elif self._same(label, candidate.prediction.code):
            kind = ACCEPTED
        else:
            kind = CORRECTED
        return self._moved_on(candidate, kind)

    def mark_unreadable(self) -> Candidate | None:
        """Record the image on show as unreadable (never asked about again) and move on."""
        candidate = self.current
        if candidate is None:
            raise LabellingError("no image to mark")
        self.label_file.append(candidate, "", UNREADABLE)
        return self._moved_on(candidate, MARKED_UNREADABLE)

    def skip(self) -> Candidate | None:
        """Move on without an answer: nothing is written, the next session asks again."""
        if self.current is None:
            return None
        return self._moved_on(self.current, SKIPPED)

    def undo(self) -> Candidate:
        """Take back this session's last answer (or skip) and show its image again; returns it.

        The file is never rewritten: a row with an empty label and the note ``undone`` is appended, and
        as the last row wins, the image is unlabelled again. The image on show goes back in the queue.
        Raises :class:`LabellingError` (nothing changed) when there is nothing to undo or the row could
        not be saved.
        """
        if not self.history:
            raise LabellingError("nothing to undo")
        last = self.history[-1]
        if last.kind != SKIPPED:  # a skip wrote nothing
            self.label_file.append(last.candidate, "", UNDONE)
        self.history.pop()
        setattr(self.tally, last.kind, getattr(self.tally, last.kind) - 1)
        if self.current is not None:
            self.queue.add([self.current])
        self.current = last.candidate
        return last.candidate

    def _moved_on(self, candidate: Candidate, kind: str) -> Candidate | None:
        setattr(self.tally, kind, getattr(self.tally, kind) + 1)
        self.history.append(Answer(candidate, kind))
        return self._next()

    def _same(self, label: str, reading: str) -> bool:
        return (label if self.keep_case else label.lower()) == reading
