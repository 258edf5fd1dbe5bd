"""How quickly the label screen moves on: ``captcha-tui bench label [--images 10000]``.

A folder of ``images`` real captchas (none labelled) is opened in the label screen with the base model
(or ``--model``), headless under ``run_test``, at a person's pace. Each Enter accepts the reading shown;
the latency is from the key's hand-off to the driver (as a terminal key arrives) to the first frame that
shows the next image, so it includes saving the answer (append, flush, fsync) and drawing the picture.
It is measured twice: while the folder is still being scored in the background (the first minutes of a
session on a large folder), and after. ``--while-training`` measures it a third time, while the screen
fine-tunes the model on the answers so far in the background (as Ctrl+T starts it, see core/learning.py):
from packing the answers to the end of the round, with the machine's load average before and after. Frames are caught where the app hands them to the terminal
(``App._display``, as in ``bench tui``); writing them to a real terminal is not included.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..core.generator import generate
from ..core.labels import read_label_table
from ..core.oserrors import missing
from ..options import UsageError
from .common import add_json_option, machine_info, print_result, summarize

# The app (textual and the screens) is imported where it is used: this module is loaded whenever the
# command line is built, and a plain `captcha-tui --help` should not pay for the dashboard.
SUMMARY = "the label screen on a folder of captchas: Enter to the next image on screen, in ms"
SIZE = (120, 40)
PACE_S = 0.15  # between keys: a quick person


async def _enters(
    app, screen, presses: int, while_scoring: bool, until: Callable[[], bool] | None = None
) -> list[float]:
    """Press Enter ``presses`` times in ``app``'s label ``screen`` (fewer once ``until()`` is true); each
    latency in ms until a frame shows another image."""
    from textual import events

    from ..tui.widgets.captcha_image import CaptchaImage

    image = screen.query_one(CaptchaImage)
    frames: list[tuple[float, Path | None]] = []
    original = app._display

    def display(shown, renderable) -> None:
        if renderable is not None:
            frames.append((time.perf_counter(), image.path))
        original(shown, renderable)

    app._display = display
    latencies = []
    try:
        for _ in range(presses):
            if while_scoring and not screen.session.scoring:
                break
            if until is not None and until():
                break
            before = image.path
            frames.clear()
            start = time.perf_counter()
            app._driver.send_message(events.Key("enter", "\r"))
            deadline = start + 10.0
            while not any(path != before for _, path in frames):
                if time.perf_counter() > deadline:
                    raise TimeoutError("no new image 10 s after Enter")
                await asyncio.sleep(0.001)
            stamp = next(stamp for stamp, path in frames if path != before)
            latencies.append((stamp - start) * 1000)
            await asyncio.sleep(PACE_S)
    finally:
        app._display = original
    return latencies


async def _while_learning(app, screen, presses: int) -> dict:
    """Start a fine-tune (Ctrl+T's action) and press Enter at a person's pace until it ends (or
    ``presses`` times); the latencies, and what the round did."""
    short = screen.learn.min_answers - screen.session.labelled
    if short > 0:  # the fine-tune needs this many answers
        await _enters(app, screen, short, while_scoring=False)
    load_before = os.getloadavg()
    started = time.perf_counter()
    screen.action_learn()
    if not screen.learning:
        raise RuntimeError(f"the fine-tune did not start: {screen.query_one('#label-message').content}")
    latencies = await _enters(
        app,
        screen,
        presses,
        while_scoring=False,
        until=lambda: not screen.learning or not len(screen.session.queue),
    )
    pressed_s = time.perf_counter() - started
    while screen.learning:
        await asyncio.sleep(0.1)
    learnt_s = time.perf_counter() - started
    return {
        "while_training": summarize(latencies) if latencies else None,
        "pressed_for_s": round(pressed_s, 1),
        "round_s": round(learnt_s, 1),
        "round": screen.learn_outcome.plain,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "learn_time_limit_s": screen.learn.time_limit_s,
    }


async def _session(
    folder: Path, model: Path, presses: int, while_training: bool = False, learn_time_limit_s: float = 60.0
) -> dict:
    from ..core.learning import LearnSettings
    from ..core.train import TrainConfig
    from ..tui.app import CaptchaApp
    from ..tui.screens.label import LabelScreen
    from ..tui.widgets.captcha_image import CaptchaImage

    app = CaptchaApp(
        TrainConfig(data=folder / "no-dataset", out=folder / "no-run"),
        folder,
        start_screen="label",
        model=model,
        label_dir=folder,
        monitor_interval=None,
        devices=[],
        # Its model always kept: the bench times the heavier end of a round, the queue read again by it.
        label_learn=LearnSettings(every=0, time_limit_s=learn_time_limit_s, only_if_better=False),
    )
    async with app.run_test(size=SIZE) as pilot:
        started = time.perf_counter()
        while not (
            isinstance(app.screen, LabelScreen)
            and app.screen.session is not None
            and app.screen.query_one(CaptchaImage).path is not None
        ):
            await asyncio.sleep(0.01)
        first_s = time.perf_counter() - started
        screen = app.screen
        await pilot.pause(0.5)
        scoring = await _enters(app, screen, presses, while_scoring=True)
        while screen.session.scoring:
            await asyncio.sleep(0.1)
        scored_s = time.perf_counter() - started
        await pilot.pause(0.5)
        after = await _enters(app, screen, presses, while_scoring=False)
        learning = await _while_learning(app, screen, presses * 100) if while_training else {}
        answered = len(read_label_table(folder / "labels.csv").rows)
    return {
        "first_image_s": round(first_s, 2),
        "all_scored_s": round(scored_s, 1),
        "while_scoring": summarize(scoring) if scoring else None,
        "after_scoring": summarize(after),
        **learning,
        "rows_written": answered,
    }


def run(
    images: int = 10_000,
    presses: int = 40,
    model: Path | None = None,
    while_training: bool = False,
    learn_time_limit_s: float = 60.0,
) -> dict:
    from ..core.base_model import base_model_path

    model = model or base_model_path()
    if model is None:
        raise RuntimeError("no model to label with: give --model CHECKPOINT")
    with tempfile.TemporaryDirectory(prefix="captcha-label-bench-") as tmp:
        folder = Path(tmp) / "mine"
        generate(folder, images, seed=99, length=(4, 6))
        result = asyncio.run(_session(folder, Path(model), presses, while_training, learn_time_limit_s))
    return {"images": images, "presses": presses, "model": str(model), **result}


def format_result(result: dict) -> str:
    lines = [
        f"label screen on {result['images']:,} images ({result['model']}):",
        f"  first image on screen after {result['first_image_s']} s; all scored after "
        f"{result['all_scored_s']} s",
    ]
    for name in ("while_scoring", "after_scoring", "while_training"):
        r = result.get(name)
        if r:
            lines.append(
                f"  Enter → next image, {name.replace('_', ' ')}: median {r['median_ms']} ms, "
                f"p95 {r['p95_ms']} ms, max {r['max_ms']} ms ({r['n']} presses)"
            )
    if "round_s" in result:
        before, after = result["load_before"], result["load_after"]
        lines.append(
            f"  the fine-tune (time limit {result['learn_time_limit_s']:g} s) took {result['round_s']} s: "
            f"{result['round']}"
        )
        lines.append(f"  load average (1, 5, 15 min): {before} before it, {after} after")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=10_000, help="unlabelled captchas in the folder")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="CHECKPOINT",
        help="the checkpoint whose readings are shown (default: the base model)",
    )
    parser.add_argument("--presses", type=int, default=40, help="Enters timed in each phase")
    parser.add_argument(
        "--while-training",
        action="store_true",
        help="also time Enter while the screen fine-tunes the model on the answers (one round)",
    )
    parser.add_argument(
        "--learn-time-limit",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="with --while-training: the fine-tune's training time",
    )
    add_json_option(parser)


def main(args: argparse.Namespace) -> int:
    if args.images < 100:
        raise UsageError("bench label takes at least 100 --images")
    if args.model is not None and not args.model.is_file():
        raise UsageError(f"checkpoint not found: {missing(args.model)}")
    if args.presses < 1:
        raise UsageError("bench label takes at least 1 --presses")
    result = run(
        images=args.images,
        presses=args.presses,
        model=args.model,
        while_training=args.while_training,
        learn_time_limit_s=args.learn_time_limit,
    )
    result["machine"] = machine_info()
    print_result(result, args.json, format_result)
    return 0
