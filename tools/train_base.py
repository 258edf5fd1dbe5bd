"""Make a base model from scratch in one command: draw its captchas, pack them, train, write and score it.

    python -m tools.train_base WORK --device cuda --preset crnn --time-limit 420     # a GPU, minutes
    python -m tools.train_base WORK --device cpu --scale 0.002 --train-images 2000   # a dry run of the script
    python -m tools.train_base WORK --resume --device cpu    # go on after Ctrl+C, a kill or a closed laptop

Each step is a ``captcha-tui`` command, run in this process and printed as it starts, so that what made
the model is the list of commands recorded in its metadata (``made_by``), as the README gives the shipped
base's. The recipe is what the base runs so far measured (docs/performance.md): the default style, and
the style mix drawn at its own sizes and at sizes that ``prepare --size 120x50`` squeezes or stretches
(the lettering of other generators), all codes of 4–6 characters, in one set trained on from scratch.
``--scale`` multiplies every count (0.002 for a smoke run). ``WORK`` must be new or empty: the images,
the packed set, the run, ``base.pt`` (the candidate, in half precision; the shipped asset is not touched:
``python -m tools.make_base_model WORK/run`` writes that once the candidate is chosen) and
``compare.json`` (``tools.compare_readers`` on the candidate and on the shipped base) all go there.

``--resume`` goes on with an interrupted ``WORK``, in another sitting if need be (on a CPU the recipe takes
hours): the recipe's arguments are the ones saved in ``WORK/train_base.json``, the steps listed as done in
``WORK/steps.log`` are not run again, and the run goes on from its last.pt (``train --resume``). A step
cut short is run again whole: the captchas are byte-reproducible under their seeds, so a folder drawn
again holds the same files, and ``prepare`` writes its set in one move.

``captcha-tui`` needs nothing more; the ``captcha`` package's sets are scored only where it is importable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import time
from pathlib import Path

from captcha_tui import cli
from captcha_tui.core.runs import last_finish
from captcha_tui.core.train.launch import EXIT_INTERRUPTED

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
SAVED = "train_base.json"  # the arguments that shape the recipe, for --resume
STEPS_LOG = "steps.log"  # one line per step done: the command and its minutes (made_by lists them)
# What --resume takes from SAVED: the data and the run; the rest (device, time limit, workers, the
# number scored) may differ from one sitting to the next.
RECIPE_ARGS = ("scale", "preset", "train_images", "batch_size")


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
    # Each sitting's own limit, or none: a resumed run would otherwise keep the first sitting's.
    train += ["--time-limit", str(args.time_limit) if args.time_limit else "none"]
    if args.batch_size:
        train += ["--batch-size", str(args.batch_size)]
    steps.append(train)
    return steps


def done_steps(work: Path) -> list[str]:
    """The lines of ``WORK/steps.log``: each step done, as ``captcha-tui … (N min)``."""
    try:
        return (work / STEPS_LOG).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def output_of(step: list[str]) -> Path:
    """What a step writes (its ``--out``): one folder per step, so it names the step whatever the sitting's
    device or number of workers."""
    return Path(step[step.index("--out") + 1]).resolve()


def again(step: list[str]) -> list[str]:
    """A step not done yet, as a sitting that goes on (``--resume``) runs it: a run cut short goes on from
    its last.pt; a set packed just before the cut (not yet logged) is packed again; a folder of captchas
    drawn again gets the same files (byte-reproducible under their seed)."""
    out = output_of(step)
    if step[0] == "train" and (out / "last.pt").exists():
        return [*step, "--resume"]
    if step[0] == "prepare" and out.exists():
        return [*step, "--force"]
    return step


def _prepare_work(args: argparse.Namespace) -> str | None:
    """Check ``args.work`` and, for ``--resume``, fill the recipe's arguments from the saved ones; the
    reason to refuse, or None."""
    work = args.work
    if args.resume:
        try:
            saved = json.loads((work / SAVED).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return f"nothing to resume in {work}: no {SAVED} (start it without --resume)"
        except (OSError, ValueError) as exc:
            return f"cannot resume from {work / SAVED}: {exc}"
        for name in RECIPE_ARGS:
            given = getattr(args, name)
            if given is not None and given != saved.get(name):
                return f"--{name.replace('_', '-')} {given} differs from this run's {saved.get(name)} ({work / SAVED})"
            setattr(args, name, saved.get(name))
        return None
    if work.exists() and any(work.iterdir()):
        return f"{work} is not empty: give a new folder (nothing there is replaced), or --resume to go on"
    for name, default in (("scale", 1.0), ("preset", "crnn"), ("train_images", DEFAULT_TRAIN_IMAGES)):
        if getattr(args, name) is None:
            setattr(args, name, default)
    work.mkdir(parents=True, exist_ok=True)
    saved = {name: getattr(args, name) for name in RECIPE_ARGS}
    (work / SAVED).write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a new or empty folder for everything the run makes")
    parser.add_argument("--device", default="cuda", help="what to train on (default: cuda)")
    parser.add_argument("--preset", help="the network (default: crnn, the wider CTC reader)")
    parser.add_argument(
        "--train-images", type=int, help=f"the image budget (default: {DEFAULT_TRAIN_IMAGES:,})"
    )
    parser.add_argument(
        "--time-limit", type=int, help="seconds of training at most: the schedule ends on time"
    )
    parser.add_argument("--batch-size", type=int, help="mini-batch (default: the preset's)")
    parser.add_argument("--scale", type=float, help="multiplies every count of the recipe (default: 1)")
    parser.add_argument("--workers", type=int, help="processes drawing and packing (default: every core)")
    parser.add_argument("--count", type=int, default=1000, help="captchas in each set it is scored on")
    parser.add_argument(
        "--resume", action="store_true", help="go on with the run in WORK: its recipe, its steps not yet done"
    )
    args = parser.parse_args(argv)
    args.work = args.work.resolve()  # steps.log names folders the same from wherever --resume is run
    refused = _prepare_work(args)
    if refused:
        print(refused, file=sys.stderr)
        return 2
    run = args.work / "run"  # the train step's --out
    done = set()
    for line in done_steps(args.work):
        with contextlib.suppress(ValueError, IndexError):  # a line cut short by a kill: its step runs again
            done.add(output_of(shlex.split(line)))
    for step in commands(args.work, args):
        if output_of(step) in done:
            print(f"done before: captcha-tui {shlex.join(step)}", flush=True)
            continue
        step = again(step) if args.resume else step
        line = "captcha-tui " + shlex.join(step)
        print(f"$ {line}", flush=True)
        started = time.monotonic()
        code = cli.main(step)
        if code == 0 and step[0] == "train" and (last_finish(run) or {}).get("reason") == "stopped":
            code = EXIT_INTERRUPTED  # a SIGTERM ends the command well, but the run is not done
        if code != 0:
            print(f"stopped: `{line}` ended with status {code}", file=sys.stderr)
            print(f"go on with: python -m tools.train_base {args.work} --resume", file=sys.stderr)
            return code
        with open(args.work / STEPS_LOG, "a", encoding="utf-8") as log:
            log.write(f"{line} ({(time.monotonic() - started) / 60:.1f} min)\n")
    dataset = ", ".join(f"{scaled(n, args.scale):,} {folder}" for folder, _, n in RECIPE)
    base = write_base(
        run,
        args.work / "base.pt",
        made_by(run, "; ".join(done_steps(args.work))),
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
