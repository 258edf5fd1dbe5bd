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


def assert_rank_0_wrote_one_run(run_dir: Path, out: str) -> None:
    """A run of two epochs on several processes: rank 0 alone printed and wrote (one history row and one
    train.log entry an epoch, the run folder's usual files and nothing else)."""
    lines = out.splitlines()
    for start in ("dataset ", "epoch 1:", "epoch 2:", "finished:", "best checkpoint "):
        assert sum(line.startswith(start) for line in lines) == 1, (start, out)
    assert [row["epoch"] for row in history_rows(run_dir)] == [1, 2]
    logged = [line.split()[2] for line in (run_dir / "train.log").read_text().splitlines()]
    assert logged.count("RunStarted") == 1 and logged.count("EpochEnd") == 2
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "best.pt",
        "config.json",
        "history.jsonl",
        "last.pt",
        "train.log",
    ]


def varying_length_run(work: Path, preset: str, epochs: int) -> tuple[Path, Path, Path]:
    """Codes of 3–5 characters through the command line: generate 90 small captchas, prepare them and
    train ``preset`` on them (one thread, batches of 24). Returns (images, dataset, run) folders."""
    from captcha_tui.cli import main

    images, data, run = work / "img", work / "data", work / "run"
    assert (
        main(["generate", "--count", "90", "--length", "3-5", "--size", "60x24", "--out", str(images)]) == 0
    )
    assert main(["prepare", str(images), "--out", str(data), "--workers", "1"]) == 0
    train = ["train", "--headless", "--data", str(data), "--out", str(run), "--epochs", str(epochs)]
    assert main([*train, "--preset", preset, "--batch-size", "24", "--threads", "1"]) == 0
    return images, data, run
