"""Where labels come from (file names or a labels.csv/.tsv) and how they are checked."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from .spec import LabelError

__all__ = ["LABEL_FILES", "LabelError", "infer_charset", "infer_length", "label_from_name", "normalise"]

LABEL_FILES = ("labels.csv", "labels.tsv")
_PATH_HEADERS = ("path", "file", "filename", "file_name", "image", "name")
_LABEL_HEADERS = ("label", "code", "text", "answer")


def label_from_name(name: str | Path) -> str | None:
    """The code in a file name like ``00042-k3x9.png`` (the text after the last ``-``), or None."""
    stem = Path(name).stem
    if "-" not in stem:
        return None
    code = stem.rsplit("-", 1)[1].strip()
    return code or None


def normalise(code: str, keep_case: bool = False) -> str:
    return code if keep_case else code.lower()


def read_label_file(path: Path) -> dict[Path, str]:
    """Read ``path,label`` rows (a header row is optional); paths are relative to the file's folder.

    Blank lines are skipped; a row with fewer than two cells raises :class:`LabelError` naming its line.
    """
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    shape = "path<TAB>label" if delimiter == "\t" else "path,label"
    labels: dict[Path, str] = {}
    first = True
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            try:
                rows = [(reader.line_num, row) for row in reader]
            except csv.Error as exc:
                raise LabelError(
                    f"{path.name} line {reader.line_num}: not readable as {shape} ({exc})"
                ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"cannot read {path}: {exc}") from None
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
        labels[(path.parent / file_name).resolve()] = label
    return labels


def infer_length(codes: list[str]) -> int:
    """The most common code length (ties go to the longer one)."""
    if not codes:
        raise LabelError("no labels to infer a code length from")
    counts = Counter(len(code) for code in codes)
    return max(counts, key=lambda length: (counts[length], length))


def infer_charset(codes: list[str]) -> str:
    return "".join(sorted(set("".join(codes))))
