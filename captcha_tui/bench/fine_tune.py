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
from dataclasses import replace
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


EPOCH_CAP = 100_000  # never reached on the clock or on an image budget

# The runs, in order: (key for --runs, name, init, whether it also learns from the unlabelled captchas).
RUNS = (
    ("unlabelled", "fine-tune + unlabelled", BASE_MODEL, True),
    ("labelled", "fine-tune from base", BASE_MODEL, False),
    ("scratch", "from scratch", None, False),
)


def run(
    *,
    labelled: int = 300,
    unlabelled: int = 3000,
    unseen: int = 1000,
    time_limit_s: float | None = 300.0,
    train_images: int | None = None,
    generated: int | None = None,
    pseudo_threshold: float | None = None,
    device: str = "cpu",
    work_dir: Path | None = None,
    runs: tuple[str, ...] | None = None,
    base: Path | None = None,
    on_line: Callable[[str], None] = print,
) -> dict:
    """Fine-tune from the base model with and without the unlabelled captchas, and train from scratch, on
    the same labelled set; score each on the unseen captchas. ``runs`` picks some of :data:`RUNS`;
    ``base``: another checkpoint in the shipped base model's place (a candidate for it)."""
    shipped = base is None
    if shipped:
        base = base_model_path()
        if base is None:
            raise FineTuneBenchError(
                "this install has no base model to fine-tune (captcha_tui/assets/base.pt)"
            )
    elif not Path(base).is_file():
        raise FineTuneBenchError(f"--base {base}: no such checkpoint")
    meta = load_checkpoint(base).meta
    spec = meta.spec
    with tempfile.TemporaryDirectory(prefix="captcha-finetune-", dir=work_dir) as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        draw_other_style(work / "labelled", labelled, 1, spec.charset, (spec.min_length, spec.max_length))
        if unlabelled:
            # Named as drawn, but nothing reads the names: train --unlabelled takes the pictures only.
            draw_other_style(
                work / "unlabelled", unlabelled, 3, spec.charset, (spec.min_length, spec.max_length)
            )
        test_images = draw_other_style(
            work / "unseen", unseen, 2, spec.charset, (spec.min_length, spec.max_length)
        )
        draw_s = time.perf_counter() - started
        on_line(
            f"drew {labelled} labelled + {unlabelled} unlabelled + {unseen} unseen captchas with the "
            f"captcha package ({draw_s:.0f} s)"
        )
        report = prepare(work / "labelled", work / "dataset", keep_case=spec.keep_case)
        result: dict = {
            "labelled": labelled,
            "unlabelled": unlabelled,
            "train_images": train_images,
            "generated": generated,
            "pseudo_threshold": pseudo_threshold,
            "split": {name: count for name, count in report.counts.items()},
            "unseen": unseen,
            "time_limit_s": time_limit_s,
            "device": device,
            "base": str(base),
            "runs": {},
        }
        right, judged = accuracy(Predictor.load(base, device=device).predict_paths(test_images))
        result["base_unseen_accuracy"] = right / judged if judged else 0.0
        before = "the base model as shipped" if shipped else f"{Path(base).name} as it is"
        on_line(f"{before:>20}: {result['base_unseen_accuracy']:.1%} whole-code")
        for key, name, init, self_training in RUNS:
            if (runs is not None and key not in runs) or (self_training and not unlabelled):
                continue
            config = TrainConfig(
                data=work / "dataset",
                out=work / name.replace(" ", "-"),
                preset=meta.preset,  # the base model's: the from-scratch run gets the same network
                device=device,
                # The budget alone shapes the schedule and ends the run, as in bench accuracy: 1,000 epochs
                # of 80 training images ended a 300 s run after 254 s.
                epochs=EPOCH_CAP,
                patience=None,  # off under a budget: every run uses all of it; best.pt: the best epoch
                time_limit_s=time_limit_s,
                train_images=train_images,
                init=str(base) if init == BASE_MODEL else init,
                unlabelled=work / "unlabelled" if self_training else None,
                generated=(generated or 0) if self_training else 0,
            )
            if self_training and pseudo_threshold is not None:
                config = replace(config, pseudo_threshold=pseudo_threshold)
            epochs: list[ev.EpochEnd] = []
            finished = Trainer(config, on_event=_epochs_into(epochs)).run()
            if isinstance(finished, ev.Failed):
                raise FineTuneBenchError(f"{name}: training failed: {finished.message}")
            if finished.best_checkpoint is None:
                raise FineTuneBenchError(
                    f"{name}: the run ended before its first epoch was scored ({finished.elapsed_s:.0f} s): "
                    "give each run more time (--time-limit) or images (--train-images)"
                )
            predictor = Predictor.load(finished.best_checkpoint, device=device)
            right, judged = accuracy(predictor.predict_paths(test_images))
            row = {
                "unseen_accuracy": right / judged if judged else 0.0,
                "best_val_accuracy": round(finished.best_val_accuracy, 4),
                "elapsed_s": round(finished.elapsed_s, 1),
                "epochs": finished.epochs_run,
                "images_seen": finished.images_seen,
            }
            if epochs and epochs[-1].pseudo_labels is not None:
                row["pseudo_labels"] = epochs[-1].pseudo_labels  # in its last epoch
                row["pseudo_agreement"] = epochs[-1].pseudo_agreement
            result["runs"][name] = row
            on_line(
                f"{name:>20}: {row['unseen_accuracy']:.1%} whole-code on {judged} unseen captchas "
                f"({row['epochs']} epochs, {row['elapsed_s']:.0f} s)"
            )
    return result


def _epochs_into(epochs: list[ev.EpochEnd]) -> Callable[[ev.TrainerEvent], None]:
    """An event sink that keeps a run's epochs."""
    return lambda event: epochs.append(event) if isinstance(event, ev.EpochEnd) else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--labelled",
        type=int,
        default=300,
        help="images to train on, about what a person labels in a sitting",
    )
    parser.add_argument("--unseen", type=int, default=1000, help="images of the same style to score on")
    parser.add_argument(
        "--unlabelled",
        type=int,
        default=3000,
        help="more images of the style, not labelled, for the run that also learns from them (0: no such run)",
    )
    parser.add_argument("--time-limit", type=float, default=300.0, metavar="SECONDS", help="seconds a run")
    parser.add_argument(
        "--train-images",
        type=int,
        metavar="N",
        help="a budget in training images a run instead of the time limit (independent of the machine's speed)",
    )
    parser.add_argument(
        "--generated",
        type=int,
        metavar="N",
        help="generated captchas mixed into the run with unlabelled ones (default: none, as train)",
    )
    parser.add_argument(
        "--pseudo-threshold",
        type=float,
        metavar="P",
        help="the least confidence of a pseudo-label (default: as train --unlabelled)",
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=[key for key, _, _, _ in RUNS],
        help="only these runs: " + "; ".join(f"{key}: {name}" for key, name, _, _ in RUNS),
    )
    parser.add_argument(
        "--base",
        type=Path,
        metavar="CHECKPOINT",
        help="fine-tune from this checkpoint instead of the shipped base model (a candidate for it)",
    )
    parser.add_argument("--device", default="cpu", help="device to train on")
    add_json_option(parser, "the progress lines go to stderr")


def main(args: argparse.Namespace) -> int:
    check_device(args.device)
    if args.labelled < 10 or args.unseen < 1 or args.unlabelled < 0:
        raise UsageError(
            "--labelled takes at least 10 images, --unseen at least 1 and --unlabelled 0 or more"
        )
    if args.train_images is not None and args.train_images < 1:
        raise UsageError("--train-images takes at least 1 image")
    try:
        result = run(
            labelled=args.labelled,
            unlabelled=args.unlabelled,
            unseen=args.unseen,
            time_limit_s=None if args.train_images else args.time_limit,
            train_images=args.train_images,
            generated=args.generated,
            pseudo_threshold=args.pseudo_threshold,
            runs=tuple(args.runs) if args.runs else None,
            device=args.device,
            base=args.base,
            on_line=(lambda line: print(line, file=sys.stderr)) if args.json else print,
        )
    except FineTuneBenchError as exc:
        raise UsageError(str(exc)) from None
    result["machine"] = machine_info()
    # Without --json the lines printed as it ran are the summary; only the machine is left to say.
    print(json.dumps(result) if args.json else f"machine: {result['machine']}")
    return 0
