"""Command line: parse arguments, pick TUI or headless, call the core. Thin on purpose."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from pathlib import Path

from . import __version__
from .core.generator import DEFAULT_CHARSET, DEFAULT_COUNT, DEFAULT_LENGTH
from .core.images import MODEL_IMAGE_SIZE

DEFAULT_IMAGE_DIR = Path("data/captchas")
DEFAULT_DATA_DIR = Path("data/dataset")
DEFAULT_RUN_DIR = Path("runs/default")
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: printed as one message, exit code 2."""


# ---- argument parsing --------------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 120x50, got {text!r}") from None
    return width, height


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    from .core.model import DEFAULT_PRESET, PRESETS

    group = parser.add_argument_group("training")
    group.add_argument(
        "--data", type=Path, default=DEFAULT_DATA_DIR, help="dataset folder (default: %(default)s)"
    )
    group.add_argument(
        "--out", type=Path, default=DEFAULT_RUN_DIR, help="run folder for checkpoints (default: %(default)s)"
    )
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    group.add_argument(
        "--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS), help="model (default: %(default)s)"
    )
    group.add_argument(
        "--epochs", type=int, default=15, help="epochs of the learning-rate schedule (default: %(default)s)"
    )
    group.add_argument("--batch-size", type=int, default=100, help="mini-batch size (default: %(default)s)")
    group.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: %(default)s)")
    group.add_argument(
        "--patience", type=int, default=20, help="epochs without a new best before stopping early"
    )
    group.add_argument("--schedule", choices=("onecycle", "constant"), default="onecycle")
    _add_amp_option(group)
    group.add_argument("--no-augment", action="store_true", help="train on the images exactly as generated")
    group.add_argument(
        "--label-smoothing",
        type=float,
        default=0.1,
        metavar="X",
        help="share of each target spread over the other characters (default: %(default)s; 0: off)",
    )
    group.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument(
        "--target", type=float, default=None, help="stop once validation accuracy reaches this (0-1)"
    )
    group.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="stop after this many seconds; the learning-rate schedule then ends on time",
    )
    group.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")


def _add_amp_option(parser) -> None:
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mixed precision (bf16/fp16); default: on for CUDA and for CPUs with bf16 units (AMX, AVX512-BF16)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captcha-tui",
        description="Teach a CNN to read text captchas and watch it learn. With no command: open the dashboard.",
    )
    parser.add_argument("--version", action="version", version=f"captcha-tui {__version__}")
    _add_train_options(parser)
    parser.add_argument(
        "--images",
        type=Path,
        default=DEFAULT_IMAGE_DIR,
        help="image folder the app generates into or prepares from",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    gen = commands.add_parser("generate", help="write a synthetic captcha image set")
    gen.add_argument("--count", type=int, default=DEFAULT_COUNT, help="images to make (default: %(default)s)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", type=Path, default=DEFAULT_IMAGE_DIR, help="folder (default: %(default)s)")
    gen.add_argument("--length", type=int, default=DEFAULT_LENGTH)
    gen.add_argument("--charset", default=DEFAULT_CHARSET)
    gen.add_argument("--size", type=_size, default=(120, 50), help="WIDTHxHEIGHT (default: 120x50)")
    gen.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")

    prep = commands.add_parser("prepare", help="pack a folder of labelled images into a dataset")
    prep.add_argument(
        "image_dir", nargs="?", type=Path, default=DEFAULT_IMAGE_DIR, help="default: %(default)s"
    )
    prep.add_argument(
        "--out", type=Path, default=DEFAULT_DATA_DIR, help="dataset folder (default: %(default)s)"
    )
    prep.add_argument(
        "--charset", default=None, help="allowed characters (default: inferred from the labels)"
    )
    prep.add_argument("--length", type=int, default=None, help="code length (default: the most common)")
    prep.add_argument("--keep-case", action="store_true", help="keep upper/lower case apart")
    prep.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split")
    prep.add_argument(
        "--size",
        type=_size,
        default=MODEL_IMAGE_SIZE,
        metavar="WxH",
        help="WIDTHxHEIGHT images are packed at (default: 120x50)",
    )
    prep.add_argument("--workers", type=int, default=None)

    train = commands.add_parser(
        "train", help="train a model (dashboard in a terminal, plain lines otherwise)"
    )
    _add_train_options(train)
    train.add_argument("--headless", action="store_true", help="plain lines, no dashboard")

    ev = commands.add_parser("eval", help="read captchas with a trained model")
    ev.add_argument("paths", nargs="*", help="image files, folders or globs (none: open the eval screen)")
    ev.add_argument(
        "--model", type=Path, default=DEFAULT_RUN_DIR / "best.pt", help="checkpoint (default: %(default)s)"
    )
    ev.add_argument("--device", default="cpu", help="device to predict on (default: cpu)")
    ev.add_argument("--json", action="store_true", help="one JSON object per image")

    commands.add_parser("devices", help="what PyTorch can compute on")

    bench = commands.add_parser("bench", help="time training and prediction on each device")
    bench.add_argument("--device", action="append", help="device to time (repeatable; default: every device)")
    bench.add_argument(
        "--preset", action="append", help="model preset (repeatable; default: fast and resnet18)"
    )
    bench.add_argument("--batch-size", type=int, default=100)
    bench.add_argument("--images", type=int, default=800, help="chunk size (default: 800, as the reference)")
    bench.add_argument(
        "--size",
        type=_size,
        default=MODEL_IMAGE_SIZE,
        metavar="WxH",
        help="WIDTHxHEIGHT the chunk is packed at (default: 120x50, as `prepare`; the reference used 56x24)",
    )
    bench.add_argument("--repeats", type=int, default=3, help="timed passes; the median is reported")
    _add_amp_option(bench)
    bench.add_argument("--json", action="store_true", help="one JSON object")
    bench.add_argument(
        "--reference",
        action="store_true",
        help="also time the reference script's recipe (ResNet-18, softmax + BCELoss, Adam, fp32, 56x24) in"
        " the same run and show each preset's speed as a multiple of it",
    )
    bench.add_argument(
        "--time-to-accuracy",
        type=float,
        default=None,
        metavar="ACC",
        help="train from scratch to this validation accuracy",
    )
    bench.add_argument(
        "--time-limit", type=float, default=900.0, help="with --time-to-accuracy: seconds allowed"
    )
    bench.add_argument(
        "--count", type=int, default=DEFAULT_COUNT, help="with --time-to-accuracy: images to generate"
    )
    bench.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="with --time-to-accuracy: epoch budget of the schedule (default: the time limit alone)",
    )
    bench.add_argument(
        "--tui",
        action="store_true",
        help="the dashboard's cost: key-to-repaint latency and training speed vs headless",
    )
    return parser


# ---- commands ----------------------------------------------------------------------------------------


def _train_config(args: argparse.Namespace):
    from .core.trainer import TrainConfig

    config = TrainConfig(
        data=args.data,
        out=args.out,
        preset=args.preset,
        device=args.device,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        schedule=args.schedule,
        amp=args.amp,
        augment=not args.no_augment,
        label_smoothing=args.label_smoothing,
        resume=args.resume,
        seed=args.seed,
        target_accuracy=args.target,
        time_limit_s=args.time_limit,
        threads=args.threads,
    )
    try:
        config.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return config


def _check_device(spec: str) -> None:
    from .core.devices import DeviceError, resolve_device

    try:
        resolve_device(spec)
    except DeviceError as exc:
        raise UsageError(str(exc)) from None


def _progress(label: str):
    """A rich progress bar on a terminal; a line every 10% elsewhere. Returns (callback, context)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    if sys.stdout.isatty():
        progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        task = progress.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return update, progress
    marks: set[int] = set()

    def report(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth not in marks:
            marks.add(tenth)
            print(f"{label}: {done}/{total}", flush=True)

    return report, contextlib.nullcontext()


def cmd_generate(args: argparse.Namespace) -> int:
    from .core.generator import generate

    update, context = _progress("generating")
    try:
        with context:
            report = generate(
                args.out,
                args.count,
                args.seed,
                length=args.length,
                charset=args.charset,
                size=args.size,
                workers=args.workers,
                on_progress=update,
            )
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        print(f"error: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {report.count} captchas to {report.out_dir} in {report.seconds:.1f}s ({report.images_per_second:,.0f}/s)"
    )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .core.dataset import DatasetError, prepare

    update, context = _progress("decoding")
    try:
        with context:
            report = prepare(
                args.image_dir,
                args.out,
                charset=args.charset,
                length=args.length,
                keep_case=args.keep_case,
                size=args.size,
                seed=args.seed,
                workers=args.workers,
                on_progress=update,
            )
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    print_prepare_report(report)
    return 0


def print_prepare_report(report) -> None:
    counts = report.counts
    print(
        f"dataset {report.out_dir}: {counts['train']} train / {counts['val']} val / {counts['test']} test, "
        f"{report.length} characters from {report.charset!r} ({report.total / max(report.seconds, 1e-9):,.0f} images/s)"
    )
    if report.skipped:
        print(f"skipped {sum(report.skipped.values())} files:")
        for reason, count in sorted(report.skipped.items(), key=lambda item: -item[1]):
            print(f"  {count:6d}  {reason}  (e.g. {report.examples.get(reason, '?')})")


def cmd_train(args: argparse.Namespace) -> int:
    config = _train_config(args)
    _check_device(config.device)
    if not args.resume or not (config.out / "last.pt").exists():
        _check_dataset(config.data)
    if not args.headless and sys.stdin.isatty() and sys.stdout.isatty():
        return _run_app(args, config, autostart=True)
    return train_headless(config)


def _check_dataset(path: Path) -> None:
    from .core.dataset import DatasetError, load_dataset

    try:
        load_dataset(path, mmap=True)
    except DatasetError as exc:
        raise UsageError(str(exc)) from None


def train_headless(config) -> int:
    from .core.trainer import Trainer
    from .headless import HeadlessPrinter

    trainer = Trainer(config, HeadlessPrinter())
    interrupts = 0

    def on_signal(signum, frame):  # noqa: ARG001
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        print(f"\n{signal.Signals(signum).name}: saving a resumable checkpoint…", file=sys.stderr, flush=True)
        trainer.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = trainer.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    from .core.events import Failed

    return 1 if isinstance(result, Failed) else 0


def cmd_eval(args: argparse.Namespace) -> int:
    if not args.paths:
        if sys.stdin.isatty() and sys.stdout.isatty():
            return _run_app(args, None, autostart=False, screen="eval")
        raise UsageError("give image paths to read (or run in a terminal to open the eval screen)")
    from .core.checkpoint import CheckpointError
    from .core.predictor import Predictor, accuracy, expand_paths

    _check_device(args.device)
    try:
        predictor = Predictor.load(args.model, args.device)
    except CheckpointError as exc:
        hint = "" if Path(args.model).exists() else " (train one first: captcha-tui train)"
        raise UsageError(f"{exc}{hint}") from None
    paths, problems = expand_paths(args.paths)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    results = predictor.predict_paths(paths)
    for result in results:
        if args.json:
            print(
                json.dumps(
                    {
                        "path": str(result.path),
                        "code": result.prediction.code if result.prediction else None,
                        "confidences": list(result.prediction.confidences) if result.prediction else None,
                        "label": result.label,
                        "correct": result.correct,
                        "error": result.error,
                    },
                    ensure_ascii=False,
                )
            )
        elif result.prediction is None:
            print(f"{result.path}: error: {result.error}")
        else:
            p = result.prediction
            chars = " ".join(f"{c}:{conf:.2f}" for c, conf in zip(p.code, p.confidences, strict=True))
            mark = (
                "" if result.correct is None else ("  ✓" if result.correct else f"  ✗ (label {result.label})")
            )
            print(f"{result.path}: {p.code}  [{chars}]{mark}")
    right, labelled = accuracy(results)
    if labelled and not args.json:
        print(f"accuracy {right}/{labelled} = {right / labelled:.1%} (whole code)")
    failed = sum(r.error is not None for r in results)
    if not results and problems:
        return EXIT_USAGE
    return 1 if failed and failed == len(results) else 0


def cmd_devices(args: argparse.Namespace) -> int:  # noqa: ARG001
    import torch

    from .core.devices import cuda_build, list_devices, mps_available

    print(f"PyTorch {torch.__version__}; CUDA build: {cuda_build() or 'none (CPU-only build)'}")
    print(
        f"CUDA available: {torch.cuda.is_available()}; CUDA devices: {torch.cuda.device_count()}; MPS: {mps_available()}"
    )
    for device in list_devices():
        parts = [f"{device.name:8s} {device.description}"]
        if device.threads:
            parts.append(f"{device.threads} threads")
        if device.total_memory:
            parts.append(f"{device.total_memory / 2**30:.1f} GiB total")
        if device.free_memory is not None:
            parts.append(f"{device.free_memory / 2**30:.1f} GiB free")
        if device.capability:
            parts.append(f"compute capability {device.capability}")
        print("  " + ", ".join(parts))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    for spec in args.device or []:
        _check_device(spec)
    if args.batch_size < 1:
        raise UsageError("batch size must be at least 1")
    if args.reference and (args.tui or args.time_to_accuracy is not None):
        raise UsageError("--reference compares training speed: use it without --tui and --time-to-accuracy")
    if args.tui:
        from .tui.latency import main as tui_bench

        options = ["--device", (args.device or ["cpu"])[0], "--preset", (args.preset or ["fast"])[0]]
        return tui_bench(options)  # prints a summary and the same figures as JSON
    if args.time_to_accuracy is not None:
        if not 0 < args.time_to_accuracy <= 1:
            raise UsageError("--time-to-accuracy takes a fraction in (0, 1], e.g. 0.95")
        result = bench.time_to_accuracy(
            target=args.time_to_accuracy,
            time_limit_s=args.time_limit,
            device=(args.device or ["auto"])[0],
            preset=(args.preset or [None])[0],
            count=args.count,
            epochs=args.epochs,
            amp=args.amp,
            batch_size=args.batch_size,
            quiet=args.json,
        )
        print(json.dumps(result) if args.json else bench.format_tta(result))
        return 0
    report = bench.throughput(
        devices=args.device,
        presets=args.preset,
        batch_size=args.batch_size,
        images=args.images,
        repeats=args.repeats,
        amp=args.amp,
        progress=not args.json,
        size=args.size,
        with_reference=args.reference,
    )
    print(json.dumps(report) if args.json else bench.format_table(report))
    return 0


def _run_app(args: argparse.Namespace, config, autostart: bool, screen: str = "train") -> int:
    from .tui.app import run_app

    return run_app(
        config=config,
        image_dir=getattr(args, "images", DEFAULT_IMAGE_DIR),
        autostart=autostart,
        screen=screen,
        model=getattr(args, "model", None),
    )


COMMANDS = {
    "generate": cmd_generate,
    "prepare": cmd_prepare,
    "train": cmd_train,
    "eval": cmd_eval,
    "devices": cmd_devices,
    "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            config = _train_config(args)
            _check_device(config.device)
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                raise UsageError(
                    "the dashboard needs a terminal; use `captcha-tui train --headless` in scripts"
                )
            return _run_app(args, config, autostart=False)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"captcha-tui: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
