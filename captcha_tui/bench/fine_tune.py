"""``captcha-tui bench fine-tune``: does the base model pay off on captchas it has never seen?

Another generator from PyPI (the ``captcha`` package: install it for this benchmark only, it is no
dependency of captcha-tui) draws captchas in a style the base model never saw. ``labelled`` of them (300 by
default, what a person labels in a sitting) are packed as a user would (``prepare``: 80/10/10), and the
same dataset is trained twice for the same time: once fine-tuning from the base model (``--init base``),
once from scratch. Both best checkpoints are scored on ``unseen`` more of the same style (1,000 by default)
that neither run saw. The clock of each run covers its training only; drawing the images is timed apart.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from ..core import events as ev
from ..core.base_model import BASE_MODEL, base_model_path
from ..core.checkpoint import load_checkpoint
from ..core.dataset import prepare
from ..core.predictor import Predictor, accuracy
from ..core.train import TrainConfig, Trainer
from ..options import UsageError, check_device
from .common import add_json_option, machine_info

SUMMARY = "the base model against training from scratch, on a few hundred captchas of a style it never saw"
OTHER_STYLE_SIZE = (160, 60)  # the ``captcha`` package's default image size


class FineTuneBenchError(RuntimeError):
    """Why the benchmark cannot run; one line."""


class _SeededSecrets:
    """What the ``captcha`` package calls on ``secrets``, from a seeded generator: it draws all its noise
    from ``secrets``, which cannot be seeded, and a benchmark must draw the same images every time."""

    def __init__(self, seed: int):
        self._rng = random.Random(seed)

    def randbelow(self, n: int) -> int:
        return self._rng.randrange(n)

    def randbits(self, k: int) -> int:
        return self._rng.getrandbits(k)

    def choice(self, seq):
        return self._rng.choice(seq)


def draw_other_style(
    out_dir: Path, count: int, seed: int, charset: str, length: tuple[int, int]
) -> list[Path]:
    """``count`` captchas drawn by the ``captcha`` package, named ``NNNNN-code.png``."""
    try:
        import captcha.image
    except ImportError:
        raise FineTuneBenchError(
            "bench fine-tune draws its captchas with another generator: pip install captcha "
            "(for the benchmark only; captcha-tui does not need it)"
        ) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    drawer = captcha.image.ImageCaptcha(*OTHER_STYLE_SIZE)
    paths = []
    with mock.patch.object(captcha.image, "secrets", _SeededSecrets(seed)):
        for index in range(count):
            code = "".join(rng.choice(charset) for _ in range(rng.randint(*length)))
            path = out_dir / f"{index:05d}-{code}.png"
            drawer.generate_image(code).save(path, format="PNG")
            paths.append(path)
    return paths


def run(
    *,
    labelled: int = 300,
    unseen: int = 1000,
    time_limit_s: float = 300.0,
    device: str = "cpu",
    work_dir: Path | None = None,
    on_line: Callable[[str], None] = print,
) -> dict:
    """Fine-tune from the base model and train from scratch on the same labelled set; score both."""
    base = base_model_path()
    if base is None:
        raise FineTuneBenchError("this install has no base model to fine-tune (captcha_tui/assets/base.pt)")
    meta = load_checkpoint(base).meta
    spec = meta.spec
    with tempfile.TemporaryDirectory(prefix="captcha-finetune-", dir=work_dir) as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        draw_other_style(work / "labelled", labelled, 1, spec.charset, (spec.min_length, spec.max_length))
        test_images = draw_other_style(
            work / "unseen", unseen, 2, spec.charset, (spec.min_length, spec.max_length)
        )
        draw_s = time.perf_counter() - started
        on_line(f"drew {labelled} + {unseen} captchas with the captcha package ({draw_s:.0f} s)")
        report = prepare(work / "labelled", work / "dataset", keep_case=spec.keep_case)
        result: dict = {
            "labelled": labelled,
            "split": {name: count for name, count in report.counts.items()},
            "unseen": unseen,
            "time_limit_s": time_limit_s,
            "device": device,
            "runs": {},
        }
        right, judged = accuracy(Predictor.load(base, device=device).predict_paths(test_images))
        result["base_unseen_accuracy"] = right / judged if judged else 0.0
        on_line(f"{'the base model as shipped':>20}: {result['base_unseen_accuracy']:.1%} whole-code")
        for name, init in (("fine-tune from base", BASE_MODEL), ("from scratch", None)):
            config = TrainConfig(
                data=work / "dataset",
                out=work / name.replace(" ", "-"),
                preset=meta.preset,  # the base model's: the from-scratch run gets the same network
                device=device,
                epochs=1000,  # the time limit alone shapes the schedule, as in bench accuracy
                patience=1000,  # both runs use the whole budget; best.pt is the best validation epoch
                time_limit_s=time_limit_s,
                init=init,
            )
            finished = Trainer(config).run()
            if isinstance(finished, ev.Failed):
                raise FineTuneBenchError(f"{name}: training failed: {finished.message}")
            predictor = Predictor.load(finished.best_checkpoint, device=device)
            right, judged = accuracy(predictor.predict_paths(test_images))
            row = {
                "unseen_accuracy": right / judged if judged else 0.0,
                "best_val_accuracy": round(finished.best_val_accuracy, 4),
                "elapsed_s": round(finished.elapsed_s, 1),
                "epochs": finished.epochs_run,
                "images_seen": finished.images_seen,
            }
            result["runs"][name] = row
            on_line(
                f"{name:>20}: {row['unseen_accuracy']:.1%} whole-code on {judged} unseen captchas "
                f"({row['epochs']} epochs, {row['elapsed_s']:.0f} s)"
            )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--labelled",
        type=int,
        default=300,
        help="images to train on, about what a person labels in a sitting",
    )
    parser.add_argument("--unseen", type=int, default=1000, help="images of the same style to score on")
    parser.add_argument("--time-limit", type=float, default=300.0, metavar="SECONDS", help="seconds a run")
    parser.add_argument("--device", default="cpu", help="device to train on")
    add_json_option(parser, "the progress lines go to stderr")


def main(args: argparse.Namespace) -> int:
    check_device(args.device)
    if args.labelled < 10 or args.unseen < 1:
        raise UsageError("--labelled takes at least 10 images and --unseen at least 1")
    try:
        result = run(
            labelled=args.labelled,
            unseen=args.unseen,
            time_limit_s=args.time_limit,
            device=args.device,
            on_line=(lambda line: print(line, file=sys.stderr)) if args.json else print,
        )
    except FineTuneBenchError as exc:
        raise UsageError(str(exc)) from None
    result["machine"] = machine_info()
    # Without --json the lines printed as it ran are the summary; only the machine is left to say.
    print(json.dumps(result) if args.json else f"machine: {result['machine']}")
    return 0
