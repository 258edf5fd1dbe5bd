"""``captcha-tui bench accuracy``: time to accuracy, from nothing.

The default captchas (or codes of several lengths) are generated and packed, and a model is trained from
scratch until its validation accuracy reaches ``--target``; the clock covers all of it. The budget is
seconds (``--time-limit``) or training images (``--train-images``: a recipe measured apart from the
machine's speed). The test split is scored once, at the end, in all and by code length.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..core.devices import resolve_amp, resolve_device
from ..core.generator import DEFAULT_COUNT, DEFAULT_LENGTH
from ..core.model import DEFAULT_CTC_PRESET, DEFAULT_PRESET, PRESETS, batch_size_rule, run_batch_size
from ..core.train import TrainConfig
from ..core.train.stopping import Target
from ..options import UsageError, add_amp_option, check_device, length_range
from .common import add_json_option, machine_info, print_result

SUMMARY = "time to a validation accuracy, training from scratch on freshly made captchas"
DEFAULT_TIME_LIMIT_S = 900.0

FINAL_EVAL_SHARE = 0.02


def time_to_accuracy(
    target: float,
    time_limit_s: float | None,
    device: str = "auto",
    preset: str | None = None,
    count: int = DEFAULT_COUNT,
    epochs: int | None = None,
    amp: bool | None = None,
    batch_size: int | None = None,  # None: the preset's
    quiet: bool = False,
    workdir: str | Path | None = None,
    length: tuple[int, int] | None = None,
    keep: Path | None = None,
    train_images: int | None = None,
    lr: float | None = None,
) -> dict:
    """Generate and prepare the default data (codes of ``length``: one or a (min, max) range) and train
    until validation accuracy reaches ``target``, or time (``time_limit_s``, data included) or the image
    budget (``train_images``) runs out; the clock covers all of it. The test split is only scored at the
    end. ``keep``: copy the run folder there. ``lr``: the peak learning rate (default: the preset's)."""
    from ..core.dataset import prepare
    from ..core.events import EpochEnd, Failed, Finished
    from ..core.generator import generate
    from ..core.train import Trainer
    from ..headless import HeadlessPrinter

    resolved = resolve_device(device)
    length = length or (DEFAULT_LENGTH, DEFAULT_LENGTH)
    fixed = length[0] == length[1]
    preset = preset or (
        DEFAULT_CTC_PRESET if not fixed else DEFAULT_PRESET if resolved.type == "cpu" else "resnet18"
    )
    batch_size = run_batch_size(preset, batch_size)
    printer = None if quiet else HeadlessPrinter(out=sys.stderr, err=sys.stderr)
    curve: list[dict] = []

    def on_event(event):
        if isinstance(event, EpochEnd):
            curve.append(
                {
                    "epoch": event.epoch,
                    "val_accuracy": round(event.val_accuracy, 4),
                    "elapsed_s": round(time.perf_counter() - started, 1),
                }
            )
        if printer:
            printer(event)

    with tempfile.TemporaryDirectory(prefix="captcha-tta-", dir=workdir) as tmp:
        started = time.perf_counter()
        generate(Path(tmp) / "images", count, seed=0, length=length)
        prepare(Path(tmp) / "images", Path(tmp) / "dataset", seed=0)
        data_s = time.perf_counter() - started
        config = TrainConfig(
            data=Path(tmp) / "dataset",
            out=Path(tmp) / "run",
            preset=preset,
            device=str(resolved),
            # No epoch budget given: the time limit or the image budget shapes the learning-rate schedule.
            epochs=epochs or 1000,
            batch_size=batch_size,
            amp=amp,
            target_accuracy=target,
            patience=1000,  # on a budget: only the target, the time limit or the image budget ends it
            # Keep back a little for scoring the last weights on the validation and test splits.
            time_limit_s=None
            if time_limit_s is None
            else max(1.0, time_limit_s * (1 - FINAL_EVAL_SHARE) - data_s),
            train_images=train_images,
            lr=lr,
        )
        result = Trainer(config, on_event).run()
        elapsed = time.perf_counter() - started
        by_length = (
            accuracy_by_length(Path(tmp) / "run" / "best.pt", Path(tmp) / "dataset")
            if isinstance(result, Finished) and result.best_checkpoint
            else {}
        )
        if keep is not None:
            shutil.copytree(Path(tmp) / "run", keep, dirs_exist_ok=True)
    if isinstance(result, Failed):
        raise RuntimeError(result.message)
    return {
        "target": target,
        "reached": result.reason == Target.reason,
        "elapsed_s": round(elapsed, 1),
        "data_s": round(data_s, 1),
        "test_accuracy": result.test_accuracy,
        "test_char_error_rate": result.test_char_error_rate,
        "test_accuracy_by_length": by_length,
        "length": list(length),
        "best_val_accuracy": round(result.best_val_accuracy, 4),
        "epochs": result.epochs_run,
        "images_seen": result.images_seen,
        "train_images": train_images,
        "time_limit_s": time_limit_s,
        "reason": result.reason,
        "device": str(resolved),
        "preset": preset,
        "batch_size": batch_size,
        "lr": lr,
        "amp": resolve_amp(amp, resolved),
        "count": count,
        "curve": curve,
        "machine": machine_info(),
    }


def accuracy_by_length(checkpoint: Path, dataset_dir: Path, split: str = "test") -> dict[str, float]:
    """Whole-code accuracy of ``checkpoint`` on ``split``, by code length ({"4": 0.97, …}): where a
    varying-length reader loses its codes."""
    from ..core.dataset import load_dataset
    from ..core.predictor import Predictor

    data = load_dataset(dataset_dir)
    reader = Predictor.load(checkpoint, "cpu")
    images, labels = data.images[split], data.labels[split]
    hits: dict[int, list[bool]] = {}
    for start in range(0, len(images), 500):
        predictions = reader.predict_arrays(images[start : start + 500])
        for prediction, row in zip(predictions, labels[start : start + 500], strict=True):
            code = data.spec.decode(row)
            hits.setdefault(len(code), []).append(prediction.code == code)
    return {str(n): round(sum(h) / len(h), 4) for n, h in sorted(hits.items())}


def format_tta(r: dict) -> str:
    verdict = "reached" if r["reached"] else "did not reach"
    test = "n/a" if r["test_accuracy"] is None else f"{r['test_accuracy']:.1%}"
    return (
        f"{verdict} {r['target']:.1%} validation accuracy: {r['elapsed_s']:.0f} s in all "
        f"({r['data_s']:.0f} s making data), {r['epochs']} epochs, {r['images_seen']:,} images seen\n"
        f"test accuracy of the best weights: {test}  [{r['preset']} on {r['device']}, amp {'on' if r['amp'] else 'off'}]"
        + (
            "\nby length: " + ", ".join(f"{n}: {a:.1%}" for n, a in r["test_accuracy_by_length"].items())
            if len(r.get("test_accuracy_by_length") or {}) > 1
            else ""
        )
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", type=float, required=True, metavar="ACC", help="validation accuracy to reach, e.g. 0.95"
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"seconds allowed, making the data included (default: {DEFAULT_TIME_LIMIT_S:.0f}; none under "
        "--train-images)",
    )
    parser.add_argument(
        "--train-images",
        type=int,
        default=None,
        metavar="N",
        help="train on N images in all, the schedule annealing over them, with no time limit unless "
        "--time-limit is given: a budget that does not depend on the machine's speed",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epoch budget of the schedule (default: the time limit or --train-images alone)",
    )
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="images to generate")
    parser.add_argument(
        "--length",
        type=length_range,
        default=str(DEFAULT_LENGTH),  # a string: shown as typed, parsed by length_range
        metavar="N|MIN-MAX",
        help="code lengths to generate, e.g. 4-6",
    )
    parser.add_argument("--device", default="auto", help="device to train on")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help=f"model preset (default: {DEFAULT_PRESET} on a CPU, resnet18 on a GPU; {DEFAULT_CTC_PRESET} for "
        "codes of several lengths)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help=f"mini-batch (default: {batch_size_rule()})"
    )
    parser.add_argument(
        "--lr", type=float, default=None, metavar="LR", help="peak learning rate (default: the preset's)"
    )
    add_amp_option(parser)
    parser.add_argument(
        "--keep", type=Path, default=None, metavar="DIR", help="keep the run folder (best.pt, history) in DIR"
    )
    add_json_option(parser)


def main(args: argparse.Namespace) -> int:
    check_device(args.device)
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError("batch size must be at least 1")
    if not 0 < args.target <= 1:
        meant = f": --target {args.target / 100:g} for {args.target:g}%" if 1 < args.target <= 100 else ""
        raise UsageError(f"--target takes a fraction in (0, 1], e.g. 0.95{meant}")
    if args.lr is not None and not (args.lr > 0 and math.isfinite(args.lr)):
        raise UsageError(f"--lr must be a positive number (got {args.lr})")
    if args.train_images is not None and args.train_images < 1:
        raise UsageError(f"--train-images must be at least 1 (got {args.train_images})")
    # An image budget replaces the default 15 minutes: a recipe is then measured, not the machine.
    default_limit = None if args.train_images else DEFAULT_TIME_LIMIT_S
    result = time_to_accuracy(
        target=args.target,
        time_limit_s=args.time_limit or default_limit,
        train_images=args.train_images,
        device=args.device,
        preset=args.preset,
        count=args.count,
        epochs=args.epochs,
        amp=args.amp,
        batch_size=args.batch_size,
        quiet=args.json,
        length=args.length,
        keep=args.keep,
        lr=args.lr,
    )
    print_result(result, args.json, format_tta)
    return 0
