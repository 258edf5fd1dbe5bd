"""The run folders under a root (``runs/``), each read into one :class:`RunRecord` for the runs screen and
``captcha-tui runs``.

A record comes from the folder's JSON files only: ``config.json``, ``history.jsonl`` and ``train.log``
(one ``DATE TIME EventName {json}`` line per event). Checkpoints are never opened (a ``.pt`` is a pickle:
only whether ``best.pt`` is there is looked at), so reading 200 runs takes a fraction of a second. A file
that is missing or damaged leaves a record with what the others say, and a line in ``problems``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

from . import events as ev
from .train.config import BEST, CONFIG, HISTORY, LOG, holds_run
from .train.stopping import best_epoch

ERROR_LOG = "error.log"
UNFINISHED = "unfinished"  # no Finished or Failed after the last start: still training, or killed
FAILED = "failed"
# The run's own folder: it differs between any two runs and the run's name already says it.
DIFF_IGNORED = frozenset({"out"})


def read_history(run_dir: Path) -> tuple[tuple[ev.EpochEnd, ...], int]:
    """The epochs of ``history.jsonl`` and how many of its lines could not be read (skipped).

    Raises OSError (UnicodeDecodeError is one of ValueError's) when the file itself cannot be read."""
    text = (Path(run_dir) / HISTORY).read_text(encoding="utf-8")
    epochs, damaged = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            epochs.append(_epoch_row(json.loads(line)))
        except (ValueError, TypeError, KeyError):
            damaged += 1
    return tuple(epochs), damaged


def _epoch_row(row) -> ev.EpochEnd:
    """One history row as an EpochEnd, its fields type-checked (a hand-edited or damaged row must not
    reach the charts and sorts as a string or a null); raises TypeError or KeyError."""
    if not isinstance(row, dict):
        raise TypeError("not an object")
    values = {}
    for spec in fields(ev.EpochEnd):
        if spec.name not in row:
            if spec.default is MISSING:
                raise KeyError(spec.name)
            continue  # a field added since (with a default), missing from older runs' rows
        value = row[spec.name]
        optional = "None" in str(spec.type)
        if value is None and optional:
            values[spec.name] = None
            continue
        number = _number(value, int if str(spec.type).startswith("int") else float)
        if number is None:
            raise TypeError(f"{spec.name}: {value!r}")
        values[spec.name] = number
    return ev.EpochEnd(**values)


@dataclass(frozen=True)
class RunRecord:
    name: str  # the folder's name
    path: Path
    preset: str | None  # the model the run trained (RunStarted's, else config.json's)
    data: str | None  # the dataset folder
    epochs: tuple[ev.EpochEnd, ...]  # as history.jsonl has them
    best: ev.EpochEnd | None  # the best epoch, by the trainer's own rule (stopping.best_epoch)
    best_val_accuracy: float | None
    best_epoch: int | None
    test_accuracy: float | None  # of the best weights, when the run finished and scored the test split
    images_seen: int | None  # when the run finished (a run still going has not said)
    training_s: float | None  # pauses excluded; an unfinished run: the sum of its epochs
    status: str  # a Finished reason (stopping.FINISH_WORDS), UNFINISHED or FAILED
    config: dict = field(default_factory=dict)  # config.json; empty when it cannot be read
    has_best: bool = False
    failure: str | None = None  # a failed run's message
    problems: tuple[str, ...] = ()  # what could not be read, in words

    @property
    def val_curve(self) -> tuple[tuple[int, float], ...]:
        """(epoch, validation accuracy) for each epoch of the history."""
        return tuple((e.epoch, e.val_accuracy) for e in self.epochs)

    @property
    def finished(self) -> bool:
        return self.status not in (UNFINISHED, FAILED)


def kept_epoch(epochs: Sequence[ev.EpochEnd], finished: dict | None) -> ev.EpochEnd | None:
    """The epoch whose weights best.pt holds: the highest-scoring one (:func:`best_epoch`), or the one the
    run said it kept when it finished, where that is another (a run with a small validation split keeps
    its final weights: train/stopping.py, ``keeps_final_weights``)."""
    best = best_epoch(epochs)
    chosen = _number((finished or {}).get("best_epoch"), int)
    if chosen and best is not None and best.epoch != chosen:
        kept = next((e for e in epochs if e.epoch == chosen), None)
        score = _number((finished or {}).get("best_val_accuracy"))
        finished_epochs = _number((finished or {}).get("epochs_run"), int)
        if kept is None and score is not None and finished_epochs is not None and chosen > finished_epochs:
            # Out of time inside its last epoch, whose weights it kept: that epoch has no history row,
            # and listing the highest-scoring one instead contradicted the run's own last line.
            kept = replace(
                epochs[-1], epoch=chosen, val_accuracy=score, val_char_accuracy=None, val_char_error_rate=None
            )
        best = kept or best
    return best


def last_finish(run_dir: Path) -> dict | None:
    """The fields of train.log's Finished event, where the run's last logged event is one."""
    return _finished(_log_events(run_dir, []))


def _finished(events: list[tuple[str, dict]]) -> dict | None:
    return events[-1][1] if events and events[-1][0] == "Finished" else None


def _log_events(run_dir: Path, problems: list[str]) -> list[tuple[str, dict]]:
    """The RunStarted, Finished and Failed events of train.log, in order, as (name, fields)."""
    try:
        text = (run_dir / LOG).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        problems.append(f"{LOG}: {exc.strerror or exc}")
        return []
    found, damaged = [], 0
    for line in text.splitlines():
        parts = line.split(" ", 3)
        # Only the three events a record needs are parsed: the rest are skipped by name.
        if len(parts) < 4 or parts[2] not in ("RunStarted", "Finished", "Failed"):
            continue
        try:
            payload = json.loads(parts[3])
        except ValueError:
            damaged += 1
            continue
        if isinstance(payload, dict):
            found.append((parts[2], payload))
        else:
            damaged += 1
    if damaged:
        problems.append(f"{LOG}: {damaged} damaged line{'s' if damaged != 1 else ''} skipped")
    return found


def _config(run_dir: Path, problems: list[str]) -> dict:
    try:
        config = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"no {CONFIG}")
        return {}
    except (OSError, ValueError) as exc:
        problems.append(f"{CONFIG} cannot be read: {getattr(exc, 'strerror', None) or exc}")
        return {}
    if not isinstance(config, dict):
        problems.append(f"{CONFIG} is not a JSON object")
        return {}
    return config


def _number(value, kind: type = float):
    """A number from a JSON field, or None for anything else (a damaged or hand-edited log)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return kind(value)


def read_run(run_dir: Path) -> RunRecord:
    """The record of one run folder. Never raises for what the folder holds; reads files, so call it off
    the UI thread."""
    run_dir = Path(run_dir)
    problems: list[str] = []
    config = _config(run_dir, problems)
    try:
        epochs, damaged = read_history(run_dir)
    except FileNotFoundError:
        epochs, damaged = (), 0
        problems.append(f"no {HISTORY}")
    except (OSError, ValueError) as exc:
        epochs, damaged = (), 0
        problems.append(f"{HISTORY} cannot be read: {getattr(exc, 'strerror', None) or exc}")
    if damaged:
        problems.append(f"{HISTORY}: {damaged} damaged line{'s' if damaged != 1 else ''} skipped")
    events = _log_events(run_dir, problems)

    started = next((e for name, e in reversed(events) if name == "RunStarted"), {})
    last = events[-1] if events else None
    finished = _finished(events)
    failure = None
    if last is not None and last[0] == "Failed":
        status, failure = FAILED, str(last[1].get("message", ""))
    elif finished is not None and isinstance(finished.get("reason"), str):
        status = finished["reason"]
    elif last is None and (run_dir / ERROR_LOG).is_file():
        status, failure = FAILED, f"see {ERROR_LOG}"
    else:
        status = UNFINISHED

    best = kept_epoch(epochs, finished)
    finish = finished or {}
    if best is not None:
        best_accuracy, best_at = best.val_accuracy, best.epoch
    else:  # no readable history: what the run said when it ended, if it did
        best_at = _number(finish.get("best_epoch"), int) or None
        # A run stopped inside its first epoch was never validated: its 0.0% is no score.
        best_accuracy = _number(finish.get("best_val_accuracy")) if best_at else None
    training_s = _number(finish.get("elapsed_s"))
    if training_s is None and epochs:
        training_s = sum(e.seconds for e in epochs)
    data = config.get("data") or started.get("dataset")
    return RunRecord(
        name=run_dir.name,
        path=run_dir,
        preset=started.get("preset") or config.get("preset"),
        data=None if data is None else str(data),
        epochs=epochs,
        best=best,
        best_val_accuracy=best_accuracy,
        best_epoch=best_at,
        test_accuracy=_number(finish.get("test_accuracy")),
        images_seen=_number(finish.get("images_seen"), int),
        training_s=training_s,
        status=status,
        config=config,
        has_best=(run_dir / BEST).is_file(),
        failure=failure,
        problems=tuple(problems),
    )


def find_runs(root: Path) -> list[Path]:
    """The immediate subfolders of ``root`` that hold any run file, by name. Raises OSError when ``root``
    cannot be listed."""
    found = []
    for entry in Path(root).iterdir():
        try:
            if entry.is_dir() and holds_run(entry):
                found.append(entry)
        except OSError:
            continue  # a folder we may not look into is no run of ours
    return sorted(found, key=lambda path: path.name)


def list_runs(root: Path) -> list[RunRecord]:
    return [read_run(path) for path in find_runs(root)]


def config_diff(records: Sequence[RunRecord] | Iterable[RunRecord]) -> dict[str, list]:
    """The config fields whose values differ between the runs: {field: [value of each run]}, in the runs'
    order (None where a run's config lacks the field). The run folder itself (``out``) is left out."""
    records = list(records)
    names: list[str] = []
    for record in records:
        names += [name for name in record.config if name not in names and name not in DIFF_IGNORED]
    diff = {}
    for name in names:
        values = [record.config.get(name) for record in records]
        if any(value != values[0] for value in values[1:]):
            diff[name] = values
    return diff
