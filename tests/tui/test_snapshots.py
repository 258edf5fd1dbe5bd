"""Snapshot tests of the training and eval screens with fixed content (no training, no clocks).

The training screen gets the scripted run of ``tools/demo.py`` and fake-GPU samples at fixed
ticks; the eval screen gets three stand-in images drawn from numbers and fixed predictions. Update the baselines with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from textual.widgets import Input

from captcha_tui.core.checkpoint import CheckpointMeta
from captcha_tui.core.generator import DEFAULT_CHARSET
from captcha_tui.core.model import build_model
from captcha_tui.core.predictor import PathResult, Prediction, Predictor
from captcha_tui.core.spec import CodeSpec
from captcha_tui.core.train import TrainConfig
from captcha_tui.tui.app import CaptchaApp
from captcha_tui.tui.messages import ModelLoaded, PredictionsReady
from tools.demo import fixed_clock, play_training_demo

from .helpers import SIZE, screen_text, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:textual_image")


def _app(**options) -> CaptchaApp:
    config = TrainConfig(data=Path("data/dataset"), out=Path("runs/demo"), device="cpu")
    return CaptchaApp(
        config, Path("data/captchas"), monitor_interval=None, devices=[], clock=fixed_clock, **options
    )


def test_training_screen(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ or runs/demo/ of a checkout: the last run would show
    app = _app()

    async def run_before(pilot) -> None:
        play_training_demo(app)
        await pilot.pause()
        await wait_until(pilot, lambda: "stops after 14 more epochs" in screen_text(app), what="the demo")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.fixture
def three_captchas(tmp_path, monkeypatch) -> list[Path]:
    """Three stand-in images under a relative path (so the table shows the same paths anywhere).

    Real captchas would differ with the Pillow/FreeType that draws them, and a picture of another size
    would be resampled by whatever Pillow is installed; these are drawn from numbers at exactly the
    size the eval screen shows (40×16 pixels in 40×8 half-cells), so they render the same everywhere.
    """
    monkeypatch.chdir(tmp_path)
    Path("captchas").mkdir()
    files = []
    for index, code in enumerate(("2k3g", "qh8d", "wm66")):
        pixels = np.full((16, 40, 3), 235 - 10 * index, dtype=np.uint8)
        for position in range(4):  # one dark block per character, a little lower each time
            top = 3 + (position + index) % 3
            left = 4 + 9 * position
            pixels[top : top + 8, left : left + 5] = (40 + 50 * position, 60, 140 - 30 * index)
        path = Path("captchas") / f"{index:05d}-{code}.png"
        Image.fromarray(pixels, "RGB").save(path)
        files.append(path)
    return files


def test_eval_screen(snap_compare, three_captchas):
    app = _app(start_screen="eval", model=Path("runs/demo/best.pt"), image_renderer="halfcell")
    meta = CheckpointMeta(CodeSpec.fixed(DEFAULT_CHARSET, 4, (56, 24)), "fast", epoch=31, val_accuracy=0.9735)
    predictor = Predictor(build_model("fast", meta.spec), meta, torch.device("cpu"))
    labels = [path.stem.split("-")[1] for path in three_captchas]
    codes = [labels[0], labels[1], labels[2][:3] + ("x" if labels[2][3] != "x" else "y")]
    confidences = [(0.99, 0.97, 0.995, 0.93), (0.98, 0.88, 0.99, 0.96), (0.97, 0.91, 0.64, 0.41)]
    results = [
        PathResult(path, Prediction(code, conf), label=label)
        for path, code, conf, label in zip(three_captchas, codes, confidences, labels, strict=True)
    ]

    async def run_before(pilot) -> None:
        screen = app.eval_screen
        # The checkpoint doesn't exist; wait for that report, then show the scripted model instead.
        await wait_until(pilot, lambda: "checkpoint not found" in screen_text(app), what="the load attempt")
        screen.post_message(ModelLoaded(Path("runs/demo/best.pt"), predictor))
        screen.post_message(PredictionsReady("captchas", results, []))
        screen.query_one("#image-path", Input).cursor_blink = False
        await pilot.pause()
        await wait_until(pilot, lambda: "accuracy 2/3" in screen_text(app), what="the results")
        await wait_until(pilot, lambda: str(three_captchas[0]) in screen_text(app), what="the table")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
