"""What the dashboard shows about the run folder's last run when it starts: its epochs and best one."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from ..core import events as ev
from ..core.train import BEST, HISTORY, LAST, best_epoch

EPOCH_FIELDS = tuple(field.name for field in fields(ev.EpochEnd))


@dataclass(frozen=True)
class RunSummary:
    path: Path  # the run folder
    epochs: tuple[ev.EpochEnd, ...]  # as history.jsonl has them
    best: ev.EpochEnd | None
    has_best: bool  # best.pt is there: the eval screen can read with it
    has_last: bool  # last.pt is there: training can resume from it
    damaged_lines: int = 0  # lines of history.jsonl that could not be read (skipped)


def read_run_summary(run_dir: Path) -> RunSummary | None:
    """None when the folder holds no history (no run yet). Reads files: call it off the UI thread."""
    run_dir = Path(run_dir)
    try:
        text = (run_dir / HISTORY).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    epochs, damaged = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            epochs.append(ev.EpochEnd(**{name: row[name] for name in EPOCH_FIELDS}))
        except (ValueError, TypeError, KeyError):
            damaged += 1
    if not epochs and not damaged:
        return None
    epochs_read = tuple(epochs)
    return RunSummary(
        path=run_dir,
        epochs=epochs_read,
        best=best_epoch(epochs_read),
        has_best=(run_dir / BEST).is_file(),
        has_last=(run_dir / LAST).is_file(),
        damaged_lines=damaged,
    )
