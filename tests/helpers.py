"""Small helpers shared by the test modules."""

from __future__ import annotations

import json
from pathlib import Path


def events_of(events: list, kind: type) -> list:
    """The events of one type, in order."""
    return [event for event in events if isinstance(event, kind)]


def history_rows(run_dir: Path) -> list[dict]:
    """A run folder's history.jsonl, one dict per epoch."""
    return [json.loads(line) for line in (Path(run_dir) / "history.jsonl").read_text().splitlines()]


def spec_for(length: int, classes: int, image_size: tuple[int, int] = (120, 50)):
    """A fixed-length spec over the first ``classes`` characters of a long charset."""
    from captcha_tui.core.spec import CodeSpec

    charset = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return CodeSpec.fixed(charset[:classes], length, image_size)
