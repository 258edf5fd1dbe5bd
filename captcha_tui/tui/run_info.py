"""What the dashboard shows about the run folder's last run when it starts: its epochs and best one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core import events as ev
from ..core.runs import kept_epoch, last_finish, read_history
from ..core.train import BEST, LAST
from ..core.train.config import saved_recipe


@dataclass(frozen=True)
class RunSummary:
    path: Path  # the run folder
    epochs: tuple[ev.EpochEnd, ...]  # as history.jsonl has them
    best: ev.EpochEnd | None
    has_best: bool  # best.pt is there: the eval screen can read with it
    has_last: bool  # last.pt is there: training can resume from it
    damaged_lines: int = 0  # lines of history.jsonl that could not be read (skipped)
    recipe: dict = field(default_factory=dict)  # its config.json's data and recipe (train.saved_recipe)


def read_run_summary(run_dir: Path) -> RunSummary | None:
    """None when the folder holds no history (no run yet). Reads files: call it off the UI thread."""
    run_dir = Path(run_dir)
    try:
        epochs, damaged = read_history(run_dir)
    except (OSError, ValueError):
        return None
    if not epochs and not damaged:
        return None
    return RunSummary(
        path=run_dir,
        epochs=epochs,
        best=kept_epoch(epochs, last_finish(run_dir)),
        has_best=(run_dir / BEST).is_file(),
        has_last=(run_dir / LAST).is_file(),
        damaged_lines=damaged,
        recipe=saved_recipe(run_dir),
    )
