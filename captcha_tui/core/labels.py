"""Where labels come from (file names or a labels.csv/.tsv) and how they are checked."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .spec import LabelError

__all__ = [
    "LABEL_FILES",
    "NOTE_REASONS",
    "UNDONE",
    "UNREADABLE",
    "CutRow",
    "LabelError",
    "LabelRow",
    "LabelTable",
    "infer_charset",
    "infer_length",
    "label_from_name",
    "normalise",
    "read_label_file",
    "read_label_rows",
    "read_label_table",
]

LABEL_FILES = ("labels.csv", "labels.tsv")
_PATH_HEADERS = ("path", "file", "filename", "file_name", "image", "name")
_LABEL_HEADERS = ("label", "code", "text", "answer")

# Notes the label screen writes in a row's third cell, with an empty label.
UNREADABLE = "unreadable"  # nobody can read the image: never asked about again, left out of a dataset
UNDONE = "undone"  # the answer before it was taken back: the image is unlabelled again
# Why ``prepare`` leaves out an image whose last row has no label but one of these notes.
NOTE_REASONS = {UNREADABLE: "marked unreadable", UNDONE: "answer undone, not labelled again"}


def find_label_file(folder: Path) -> Path | None:
    """The label file ``prepare`` reads in ``folder``: labels.csv, else labels.tsv; None where neither is."""
    return next((Path(folder) / n for n in LABEL_FILES if (Path(folder) / n).is_file()), None)


def label_from_name(name: str | Path) -> str | None:
    """The code in a file name like ``00042-k3x9.png`` (the text after the last ``-``), or None."""
    stem = Path(name).stem
    if "-" not in stem:
        return None
    code = stem.rsplit("-", 1)[1].strip()
    return code or None


def normalise(code: str, keep_case: bool = False) -> str:
    return code if keep_case else code.lower()


@dataclass(frozen=True)
class LabelRow:
    line: int
    path: Path  # resolved; a relative path is taken from the label file's folder
    label: str
    note: str = ""  # an optional third cell (e.g. why an image has no label)


@dataclass(frozen=True)
class CutRow:
    """An unterminated last line that is not a whole row: a write cut short by a crash or ``kill -9``."""

    cells: tuple[str, ...]  # what it holds so far
    open_quote: bool  # it stops inside a quoted cell


@dataclass(frozen=True)
class LabelTable:
    rows: list[LabelRow]
    ends_with_newline: bool  # False: whatever is appended next must start a new line first
    cut: CutRow | None = None  # left out of ``rows``


def read_label_table(path: Path) -> LabelTable:
    """Read ``path,label[,note]`` rows (a header row is optional); paths are relative to the file's folder.

    Blank lines are skipped; a row with fewer than two cells raises :class:`LabelError` naming its line,
    except an unterminated last line, which is what a write cut short leaves (see :class:`CutRow`).
    """
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    shape = "path<TAB>label" if delimiter == "\t" else "path,label"
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"cannot read {path}: {exc}") from None
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise LabelError(f"{path.name} line {reader.line_num}: not readable as {shape} ({exc})") from None
    ends_with_newline = not text or text.endswith(("\n", "\r"))
    cut = None
    if not ends_with_newline and rows:
        cells = rows[-1][1]
        # A newline inside an open quote becomes part of the cell; after a closed row it ends the row.
        with_newline = list(csv.reader(io.StringIO(text + "\n"), delimiter=delimiter))
        open_quote = with_newline[-1] != cells
        if open_quote or len(cells) < 2:
            rows.pop()
            if any(cell.strip() for cell in cells):
                cut = CutRow(tuple(cells), open_quote)
    out: list[LabelRow] = []
    first = True
    for line, row in rows:
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) < 2:
            raise LabelError(f"{path.name} line {line}: expected '{shape}'")
        file_name, label = row[0].strip(), row[1].strip()
        if first and (file_name.lower() in _PATH_HEADERS or label.lower() in _LABEL_HEADERS):
            first = False
            continue  # header
        first = False
        if not file_name:
            raise LabelError(f"{path.name} line {line}: no file name")
        note = row[2].strip() if len(row) > 2 else ""
        out.append(LabelRow(line, (path.parent / file_name).resolve(), label, note))
    return LabelTable(out, ends_with_newline, cut)


def read_label_rows(path: Path) -> dict[Path, LabelRow]:
    """Each listed image's last row: a later row for the same image wins (an answer corrected or undone
    is a new row, as the file is only ever appended to)."""
    return {row.path: row for row in read_label_table(path).rows}


def read_label_file(path: Path) -> dict[Path, str]:
    """Each listed image's label (the last row wins), from :func:`read_label_table`."""
    return {image: row.label for image, row in read_label_rows(path).items()}


def infer_length(codes: list[str]) -> int:
    """The most common code length (ties go to the longer one)."""
    if not codes:
        raise LabelError("no labels to infer a code length from")
    counts = Counter(len(code) for code in codes)
    return max(counts, key=lambda length: (counts[length], length))


def infer_charset(codes: list[str]) -> str:
    return "".join(sorted(set("".join(codes))))
