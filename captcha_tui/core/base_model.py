"""The base model shipped inside the package: read captchas with no training, fine-tune from it.

It is an ordinary checkpoint (weights only, stored in half precision to keep the wheel small) whose
metadata's ``made_by`` says which command made it, on what machine, in how long, and how well it reads its
test split. ``tools/make_base_model.py`` writes it from a run's ``best.pt``.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

BASE_MODEL = "base"  # the name that stands for it: `train --init base`
BASE_MODEL_FILE = "base.pt"  # in captcha_tui/assets/


def base_model_path() -> Path | None:
    """The shipped base model's file, or None where this install has none."""
    shipped = importlib.resources.files("captcha_tui") / "assets" / BASE_MODEL_FILE
    return Path(str(shipped)) if shipped.is_file() else None


WEAK_MODEL = 0.1  # validation accuracy under which a default checkpoint is said to read little


def named_model(value: str | Path) -> Path | None:
    """The model ``--model`` or ``--init`` names: a path, or ``"base"`` for the base model (None where this
    install has none); a file of that name is ``./base``."""
    return base_model_path() if str(value) == BASE_MODEL else Path(value)


def reads_little(path: Path | str, val_accuracy: float) -> bool:
    """Whether ``path`` read little of its validation split (a run stopped early, a set too small to learn
    from) where the base model is there to read with instead."""
    return val_accuracy < WEAK_MODEL and not is_base_model(path) and base_model_path() is not None


READS_LITTLE = "reads little: --model base may read better"


def default_model(run_dir: Path, best_name: str = "best.pt") -> tuple[Path, bool]:
    """The checkpoint to read with when none is named: the run folder's best one if it has one, else the
    base model. Returns (path, is_base); the path may not exist when neither does (the caller says so)."""
    best = Path(run_dir) / best_name
    if best.is_file():
        return best, False
    base = base_model_path()
    return (base, True) if base is not None else (best, False)


def is_base_model(path: Path | str) -> bool:
    """Whether ``path`` is the shipped base model's file."""
    base = base_model_path()
    try:
        return base is not None and Path(path).resolve() == base.resolve()
    except OSError:
        return False


def base_model_note(path: Path | str) -> str:
    """The words for reading with the base model, which has only seen the built-in captchas."""
    return (
        f"reading with the base model shipped with captcha-tui ({path}); it knows only the built-in "
        "captchas: label some of yours (captcha-tui label DIR) and fine-tune it (train --init base)"
    )
