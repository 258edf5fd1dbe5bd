"""Make a base model from scratch in one command: draw its captchas, pack them, train, write and score it.

    python -m tools.train_base WORK --device cuda --preset crnn --time-limit 420     # a GPU, minutes
    python -m tools.train_base WORK --device cpu --scale 0.002 --train-images 2000   # a dry run of the script

Each step is a ``captcha-tui`` command, run in this process and printed as it starts, so that what made
the model is the list of commands recorded in its metadata (``made_by``), as the README gives the shipped
base's. The recipe is what the base runs so far measured (docs/performance.md): the default style, and
the style mix drawn at its own sizes and at sizes that ``prepare --size 120x50`` squeezes or stretches
(the lettering of other generators), all codes of 4–6 characters, in one set trained on from scratch.
``--scale`` multiplies every count (0.002 for a smoke run). ``WORK`` must be new or empty: the images,
the packed set, the run, ``base.pt`` (the candidate, in half precision; the shipped asset is not touched:
``python -m tools.make_base_model WORK/run`` writes that once the candidate is chosen) and
``compare.json`` (``tools.compare_readers`` on the candidate and on the shipped base) all go there.

``captcha-tui`` needs nothing more; the ``captcha`` package's sets are scored only where it is importable.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from captcha_tui import cli

from .compare_readers import compare
from .make_base_model import made_by, write_base

# (folder, generate's arguments, count at --scale 1): 43% default style, the mix a third squeezed or
# stretched. The third shipped run's shares, with more of the default style (the fifth run's lesson: the
# default style holds when it is at least about 40% of what is seen).
RECIPE: tuple[tuple[str, str, int], ...] = (
    ("default", "--length 4-6 --seed 201", 120_000),
    ("mix-240x50", "--style mix --size 240x50 --seed 202", 40_000),
    ("mix-200x50", "--style mix --size 200x50 --seed 203", 40_000),
    ("mix-180x60", "--style mix --size 180x60 --seed 204", 20_000),
    ("mix-100x70", "--style mix --size 100x70 --seed 205", 20_000),
    ("mix", "--style mix --seed 206", 40_000),
)
DEFAULT_TRAIN_IMAGES = 3_000_000  # about 13 epochs of the recipe's training split


def scaled(count: int, scale: float) -> int:
    """A count of the recipe at ``--scale`` (at least 10 captchas, so that every style is in the set)."""
    return max(10, round(count * scale))


def commands(work: Path, args: argparse.Namespace) -> list[list[str]]:
    """The captcha-tui commands that make the base, in order (argv lists, without the program name)."""
    images, data, run = work / "images", work / "set", work / "run"
    steps = []
    for folder, options, count in RECIPE:
        steps.append(
            [
                "generate",
                *options.split(),
                "--count",
                str(scaled(count, args.scale)),
                "--out",
                str(images / folder),
            ]
            + (["--workers", str(args.workers)] if args.workers else [])
        )
    steps.append(
        ["prepare", str(images), "--out", str(data), "--size", "120x50"]
        + (["--workers", str(args.workers)] if args.workers else [])
    )
    train = ["train", "--headless", "--data", str(data), "--out", str(run), "--preset", args.preset]
    train += ["--device", args.device, "--epochs", "1000", "--train-images", str(args.train_images)]
    if args.time_limit:
        train += ["--time-limit", str(args.time_limit)]
    if args.batch_size:
        train += ["--batch-size", str(args.batch_size)]
    steps.append(train)
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a new or empty folder for everything the run makes")
    parser.add_argument("--device", default="cuda", help="what to train on (default: cuda)")
    parser.add_argument("--preset", default="crnn", help="the network (default: crnn, the wider CTC reader)")
    parser.add_argument("--train-images", type=int, default=DEFAULT_TRAIN_IMAGES, help="the image budget")
    parser.add_argument(
        "--time-limit", type=int, help="seconds of training at most: the schedule ends on time"
    )
    parser.add_argument("--batch-size", type=int, help="mini-batch (default: the preset's)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every count of the recipe")
    parser.add_argument("--workers", type=int, help="processes drawing and packing (default: every core)")
    parser.add_argument("--count", type=int, default=1000, help="captchas in each set it is scored on")
    args = parser.parse_args(argv)
    if args.work.exists() and any(args.work.iterdir()):
        print(f"{args.work} is not empty: give a new folder (nothing there is replaced)", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    done = []
    for step in commands(args.work, args):
        line = "captcha-tui " + shlex.join(step)
        print(f"$ {line}", flush=True)
        started = time.monotonic()
        code = cli.main(step)
        if code != 0:
            print(f"stopped: `{line}` ended with status {code}", file=sys.stderr)
            return code
        done.append(f"{line} ({(time.monotonic() - started) / 60:.1f} min)")
    run = args.work / "run"  # the train step's --out
    dataset = ", ".join(f"{scaled(n, args.scale):,} {folder}" for folder, _, n in RECIPE)
    base = write_base(
        run,
        args.work / "base.pt",
        made_by(run, "; ".join(done)),
        f"the built-in generator, 4-6 characters: {dataset}",
    )
    print(f"wrote {base} ({base.stat().st_size / 2**20:.1f} MiB)", flush=True)
    report = compare([str(base), "base"], args.count)
    (args.work / "compare.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for model, sets in report.items():
        if isinstance(sets, dict):
            scores = ", ".join(f"{name} {score['accuracy']:.1%}" for name, score in sets.items())
            print(f"{'this run' if model == str(base) else 'the shipped base'}: {scores}")
    if "skipped" in report:
        print(f"skipped {report['skipped']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
