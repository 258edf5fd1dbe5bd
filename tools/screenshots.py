"""Make the README's screenshots: ``python -m tools.screenshots OUT_DIR [--model CKPT]``
(from the repository root).

* ``screenshot-train.svg``: the training screen mid-run, from the scripted run in ``demo.py`` and the
  fake two-GPU backend (deterministic, so it only changes when the UI does);
* ``screenshot-eval.svg``: the eval screen after reading a folder of fresh captchas with a real model.
  With ``--model`` that checkpoint is used; without it a tiny model is trained here for a few epochs on
  a small generated set (a minute on a laptop CPU, and it reads poorly: pass a real checkpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

from textual.widgets import Input

from captcha_tui.core.dataset import prepare
from captcha_tui.core.generator import generate
from captcha_tui.core.train import TrainConfig, Trainer
from captcha_tui.tui.app import CaptchaApp
from tools.demo import play_training_demo, ticking_clock

SIZE = (120, 40)
EVAL_IMAGES = 12
EVAL_SEED = 2024  # not a seed the default training set uses, so the model hasn't seen these


async def _wait(pilot, condition, timeout: float = 120.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if condition():
            return
        await pilot.pause(0.1)
    raise TimeoutError("the screen never got there")


async def training_screenshot(out_dir: Path) -> Path:
    config = TrainConfig(data=Path("data/dataset"), out=Path("runs/default"), device="cpu")
    app = CaptchaApp(config, Path("data/captchas"), monitor_interval=None, devices=[], clock=ticking_clock())
    async with app.run_test(size=SIZE) as pilot:
        play_training_demo(app)
        await pilot.pause()
        await _wait(pilot, lambda: "stops after" in str(app.train_screen.query_one("#countdown").content))
        await pilot.pause(0.3)
        return Path(app.save_screenshot("screenshot-train.svg", path=str(out_dir)))


def quick_model(work: Path) -> Path:
    """A tiny model trained for a few epochs on a small generated set (when no checkpoint is given)."""
    generate(work / "train-images", 1500, seed=7)
    prepare(work / "train-images", work / "dataset")
    config = TrainConfig(data=work / "dataset", out=work / "run", preset="tiny", device="cpu", epochs=6)
    result = Trainer(config).run()
    best = work / "run" / "best.pt"
    if not best.exists():
        raise SystemExit(f"could not train a model for the screenshot: {result}")
    return best


async def eval_screenshot(out_dir: Path, model: Path, work: Path) -> Path:
    # Relative paths in the table and the model line, as a user in their project folder would see them.
    os.chdir(work)
    generate(Path("captchas"), EVAL_IMAGES, seed=EVAL_SEED, workers=1)
    Path("runs/default").mkdir(parents=True, exist_ok=True)
    shutil.copy(model, "runs/default/best.pt")
    config = TrainConfig(data=Path("data/dataset"), out=Path("runs/default"), device="cpu")
    app = CaptchaApp(
        config,
        Path("data/captchas"),
        start_screen="eval",
        monitor_interval=None,
        devices=[],
        image_renderer="halfcell",
    )
    async with app.run_test(size=SIZE) as pilot:
        screen = app.eval_screen
        await _wait(pilot, lambda: "model " in str(screen.query_one("#model-info").content))
        box = screen.query_one("#image-path", Input)
        box.value = "captchas/"
        await pilot.press("enter")
        await _wait(pilot, lambda: len(screen.results) == EVAL_IMAGES)
        box.value = ""
        box.cursor_blink = False
        await pilot.pause(0.3)
        return Path(app.save_screenshot("screenshot-eval.svg", path=str(out_dir.resolve())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--model", type=Path, default=None, help="checkpoint for the eval screenshot")
    args = parser.parse_args(argv)
    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    model = args.model.resolve() if args.model else None
    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="captcha-shots-") as tmp:
        work = Path(tmp)
        print(asyncio.run(training_screenshot(out_dir)))
        if model is None:
            print("no --model: training a tiny one for the eval screenshot…", file=sys.stderr)
            model = quick_model(work / "quick")
        try:
            print(asyncio.run(eval_screenshot(out_dir, model, work)))
        finally:
            os.chdir(here)
    return 0


if __name__ == "__main__":
    sys.exit(main())
