"""Command line: parse arguments, pick TUI or headless, call the core. Thin on purpose."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path

from . import __version__, serve
from .bench import add_bench_parser
from .core.generator import DEFAULT_CHARSET, DEFAULT_COUNT, DEFAULT_LENGTH, STYLES
from .core.learning import LearnSettings
from .core.oserrors import missing
from .core.train import DEFAULT_DATA_DIR, DEFAULT_RUN_DIR, TrainConfig
from .core.train.config import saved_recipe, with_saved_recipe
from .core.train.distributed import env_rank, launched
from .core.train.start import missing_run
from .options import (
    EXIT_USAGE,
    PROG,
    TRAIN_DEST,
    UsageError,
    add_train_option,
    check_device,
    check_devices,
    image_size,
    length_range,
    model_path,
    train_fields,
)

DEFAULT_IMAGE_DIR = Path("data/captchas")
# Several processes cannot share one screen: under torchrun a run is trained headless, rank 0 printing.
DASHBOARD_UNDER_TORCHRUN = (
    "torchrun started several processes: the dashboard cannot run on them; "
    "use `captcha-tui train --headless` (rank 0 prints the run's lines)"
)

# ---- argument parsing --------------------------------------------------------------------------------


def _add_train_options(parser: argparse.ArgumentParser, config_type: type = TrainConfig) -> None:
    group = parser.add_argument_group("training")
    for f, flag, kind in train_fields(config_type):
        add_train_option(group, f, flag, kind)


def _add_dashboard_options(parser: argparse.ArgumentParser, config_type: type) -> None:
    """What the dashboard takes: the train options and its image folder (for the top level and serve)."""
    _add_train_options(parser, config_type)
    parser.add_argument(
        "--images",
        type=Path,
        default=argparse.SUPPRESS,  # unset: DEFAULT_IMAGE_DIR (where the app reads it)
        help=f"image folder the app generates into or prepares from (default: {DEFAULT_IMAGE_DIR})",
    )


def build_parser(config_type: type = TrainConfig) -> argparse.ArgumentParser:
    """The whole command line; ``config_type`` (TrainConfig, or a variant in tests) gives the train options."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Teach a CNN to read text captchas and watch it learn. With no command: open the dashboard.",
    )
    parser.add_argument("--version", action="version", version=f"captcha-tui {__version__}")
    _add_dashboard_options(parser, config_type)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    gen = commands.add_parser("generate", help="write a synthetic captcha image set")
    gen.add_argument("--count", type=int, default=DEFAULT_COUNT, help="images to make (default: %(default)s)")
    gen.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the same seed draws the same images, byte for byte (default: %(default)s)",
    )
    gen.add_argument("--out", type=Path, default=DEFAULT_IMAGE_DIR, help="folder (default: %(default)s)")
    gen.add_argument(
        "--style",
        choices=STYLES,
        default="default",
        help="default: one look, the built-in set's; mix: a look drawn per image (fonts, colours, "
        "backgrounds, clutter, warps, sizes), for a model that reads captchas it never saw",
    )
    gen.add_argument(
        "--length",
        type=length_range,
        default=None,
        metavar="N|MIN-MAX",
        help=f"code length, or a range drawn evenly such as 4-6 (default: {DEFAULT_LENGTH}; 4-6 with --style mix)",
    )
    gen.add_argument(
        "--charset", default=DEFAULT_CHARSET, help="characters to draw from (default: %(default)s)"
    )
    gen.add_argument(
        "--case",
        choices=("lower", "upper", "mixed"),
        default=None,
        help="letters as in the charset, upper-cased, or each one either way; file names carry the case "
        "drawn (default: lower; mixed with --style mix)",
    )
    gen.add_argument(
        "--size",
        type=image_size,
        default=None,
        help="WIDTHxHEIGHT (default: 120x50; with --style mix, sizes from 100x40 to 200x70, per image)",
    )
    gen.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")

    prep = commands.add_parser(
        "prepare", help="pack a folder of labelled images (its subfolders too) into a dataset"
    )
    prep.add_argument(
        "image_dir",
        nargs="?",
        type=Path,
        default=DEFAULT_IMAGE_DIR,
        help="folder of labelled images; every subfolder below it is searched too (default: %(default)s)",
    )
    prep.add_argument(
        "--out", type=Path, default=DEFAULT_DATA_DIR, help="dataset folder (default: %(default)s)"
    )
    prep.add_argument(
        "--force", action="store_true", help="replace the dataset already in --out (default: refuse)"
    )
    prep.add_argument(
        "--charset", default=None, help="allowed characters (default: inferred from the labels)"
    )
    prep.add_argument(
        "--length",
        type=length_range,
        default=None,
        metavar="N|MIN-MAX",
        help="code lengths to keep, e.g. 5 or 4-6 (default: every length found; several lengths train a CTC model)",
    )
    prep.add_argument("--keep-case", action="store_true", help="keep upper/lower case apart")
    prep.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split")
    prep.add_argument(
        "--size",
        type=image_size,
        default=None,
        metavar="WxH",
        help="WIDTHxHEIGHT images are packed at (default: the most common size among them)",
    )
    prep.add_argument(
        "--workers", type=int, default=None, help="processes decoding the images (default: all cores)"
    )

    train = commands.add_parser(
        "train", help="train a model (dashboard in a terminal, plain lines otherwise)"
    )
    _add_train_options(train, config_type)
    train.add_argument("--headless", action="store_true", help="plain lines, no dashboard")

    ev = commands.add_parser("eval", help="read captchas with a trained model")
    ev.add_argument("paths", nargs="*", help="image files, folders or globs (none: open the eval screen)")
    ev.add_argument(
        "--model",
        type=model_path,
        default=None,
        help=f"checkpoint, or a model from `export` (.onnx), or `base` for the base model shipped with "
        f"captcha-tui (default: {DEFAULT_RUN_DIR / 'best.pt'} if it exists, else the base model)",
    )
    ev.add_argument("--device", default="cpu", help="device to predict on (default: cpu)")
    ev.add_argument(
        "--charset",
        default=None,
        metavar="CHARS",
        help="read only these characters (the model's others are masked out), e.g. 0123456789",
    )
    ev.add_argument(
        "--length",
        type=int,
        default=None,
        metavar="N",
        help="read exactly N characters: the most probable reading of that length",
    )
    ev.add_argument("--json", action="store_true", help="one JSON object per image")

    lab = commands.add_parser(
        "label", help="label a folder of your own captchas, least confident first (into its labels.csv)"
    )
    lab.add_argument("folder", type=Path, help="the images; answers are appended to FOLDER/labels.csv")
    lab.add_argument(
        "--model",
        type=model_path,
        default=None,
        help="checkpoint whose reading is typed in already, or `base` for the base model shipped with "
        f"captcha-tui (default: {DEFAULT_RUN_DIR / 'best.pt'} if it exists, else the base model)",
    )
    lab.add_argument(
        "--learn-every",
        type=int,
        default=LearnSettings.every,
        metavar="N",
        help="fine-tune the model on your answers every N labelled answers, in the background, and rank "
        "what is left by the new model (0: only on Ctrl+T) (default: %(default)s)",
    )
    lab.add_argument(
        "--learn-time-limit",
        type=float,
        default=LearnSettings.time_limit_s,
        metavar="SECONDS",
        help="training time of each of those fine-tunes (default: %(default)s)",
    )
    lab.add_argument(
        "--learn-device",
        default=LearnSettings.device,
        help="where they train: cpu, cuda, cuda:N or mps (default: %(default)s)",
    )
    runs = commands.add_parser(
        "runs",
        help="every run folder under DIR: figures, validation curves overlaid, config differences "
        "(a table on stdout when not in a terminal)",
    )
    runs.add_argument(
        "folder",
        type=Path,
        nargs="?",
        default=DEFAULT_RUN_DIR.parent,
        metavar="DIR",
        help="the folder of run folders (default: %(default)s)",
    )
    export = commands.add_parser("export", help="write a checkpoint as one ONNX file for onnxruntime")
    export.add_argument(
        "checkpoint",
        type=model_path,
        help="checkpoint to export, e.g. runs/default/best.pt, or base for the base model",
    )
    export.add_argument(
        "--out",
        type=Path,
        default=None,
        help="ONNX file to write (default: beside the checkpoint, .onnx; base.onnx here for the base model)",
    )
    export.add_argument("--force", action="store_true", help="replace the file if it exists")

    commands.add_parser(
        "devices",
        help="what PyTorch can compute on",
        description="What this PyTorch can compute on: its CUDA build, each GPU (name, memory, compute "
        "capability) and MPS; the names --device takes.",
    )

    served = commands.add_parser(
        "serve",
        help="the dashboard in a browser (textual-serve): captcha-tui serve [--host H] [--port P] [options]",
        description="Serve the dashboard to a browser: each tab opens its own, with the options given here "
        "(as for `captcha-tui [options]` in a terminal).",
    )
    serve.add_arguments(served)
    _add_dashboard_options(served, config_type)

    add_bench_parser(commands)
    return parser


# ---- commands ----------------------------------------------------------------------------------------


def _given_train_options(args: argparse.Namespace) -> dict:
    """The train options typed, wherever on the line, by TrainConfig field name."""
    return {k.removeprefix(TRAIN_DEST): v for k, v in vars(args).items() if k.startswith(TRAIN_DEST)}


def _train_config(args: argparse.Namespace, config_type: type = TrainConfig) -> TrainConfig:
    given = _given_train_options(args)
    config = config_type(**given)
    if config.resume:
        # The run's own data and recipe unless the line says otherwise: `train --resume --out runs/c`, as
        # the run's last line prints it, carries on with its data and epoch budget, not the defaults.
        config = with_saved_recipe(config, saved_recipe(Path(config.out)), given)
    try:
        config.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return config


def _refuse_train_options_before(command: str, args: argparse.Namespace) -> None:
    """``captcha-tui --device cuda eval …``: a train option typed before another command would be
    dropped without a word (eval reads its own --device), so say so instead."""
    if command == "train":
        return
    flags = {f.name: flag for f, flag, _ in train_fields()}
    given = [flags[name] for name in _given_train_options(args)]
    if command == "serve":  # serve takes them too (for the dashboard): only those typed before it are lost
        before = args.argv[: args.argv.index("serve")]
        given = [flag for flag in given if any(word.split("=")[0] == flag for word in before)]
    if given:
        raise UsageError(
            f"{', '.join(given)} before `{command}`: "
            f"{'a training option' if len(given) == 1 else 'training options'}, which `{command}` does not read; "
            f"put {command}'s own options after it (see captcha-tui {command} --help)"
        )


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
    from .core.images import is_image_name

    try:
        before = sum(1 for entry in os.scandir(args.out) if is_image_name(entry.name))
    except OSError:  # not there yet (or not a folder: generate says so)
        before = 0
    update, context = _progress("generating")
    try:
        with context:
            report = generate(
                args.out,
                args.count,
                args.seed,
                length=args.length,
                charset=args.charset,
                case=args.case,
                size=args.size,
                workers=args.workers,
                on_progress=update,
                style=args.style,
            )
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        print(f"{PROG}: error: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {report.count} captchas to {report.out_dir} in {report.seconds:.1f}s ({report.images_per_second:,.0f}/s)"
    )
    if before:
        print(
            f"note: {args.out} already held {before:,} images: these were added beside them, and `prepare` "
            "packs them all (generate into an empty folder to keep sets apart)",
            file=sys.stderr,
        )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .core.dataset import DatasetError, DatasetExists, prepare

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
                replace=args.force,
            )
    except DatasetExists as exc:
        raise UsageError(
            f"{exc}; nothing was changed: add --force to replace it, or choose another --out"
        ) from None
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    print_prepare_report(report)
    return 0


def print_prepare_report(report) -> None:
    counts = report.counts
    print(
        f"dataset {report.out_dir}: {counts['train']} train / {counts['val']} val / {counts['test']} test, "
        f"{report.spec.lengths} characters from {report.spec.charset!r} ({report.total / max(report.seconds, 1e-9):,.0f} images/s)"
    )
    print(describe_folders(report.folders))
    if len(report.lengths) > 1:
        print("codes by length: " + ", ".join(f"{n} × {length}" for length, n in report.lengths.items()))
    if report.resized:
        others = ", ".join(
            f"{w}×{h} ({n:,})"
            for (w, h), n in report.source_sizes.items()
            if (w, h) != report.spec.image_size
        )
        width, height = report.spec.image_size
        print(f"resized {report.resized:,} images to {width}×{height}: {others}")
    for warning in report.warnings():
        print(f"warning: {warning}")
    if report.skipped:
        print(f"skipped {sum(report.skipped.values())} files:")
        for reason, count in sorted(report.skipped.items(), key=lambda item: -item[1]):
            print(f"  {count:6d}  {reason}  (e.g. {report.examples.get(reason, '?')})")


def describe_folders(folders: dict[Path, int], shown: int = 5) -> str:
    """``images from 3 folders: data/captchas (60,000), data/captchas/old (2,900), …``: the folders below
    the one given are searched too, so say where the images came from (``folders``: the fullest first)."""
    ranked = list(folders.items())
    parts = [f"{folder} ({count:,})" for folder, count in ranked[:shown]]
    rest = ranked[shown:]
    if rest:
        parts.append(f"and {len(rest):,} more ({sum(count for _, count in rest):,})")
    return f"images from {len(ranked):,} folder{'s' if len(ranked) != 1 else ''}: {', '.join(parts)}"


def cmd_train(args: argparse.Namespace) -> int:
    if launched() and not args.headless:  # refused on a terminal or not: the same command, the same answer
        raise UsageError(DASHBOARD_UNDER_TORCHRUN)
    config = _train_config(args)
    devices = check_devices(config.device)
    if config.resume and (refused := missing_run(config.out)) is not None:
        raise UsageError(refused)  # said before the dataset: a typo in --out is the likelier mistake
    if not config.resume or not (config.out / "last.pt").exists():
        _check_dataset(config.data)
    if not args.headless and sys.stdin.isatty() and sys.stdout.isatty():
        return _run_app(args, config, autostart=True)
    if devices.several and not launched():  # under torchrun each process takes its item of the list
        return train_launched(config, devices)
    return train_headless(config)


def train_launched(config: TrainConfig, devices) -> int:
    """One run on several devices from this one command: a process each, rank 0 printing the lines."""
    from .core.train.launch import launch
    from .headless import HeadlessPrinter

    outcome = launch(config, devices, HeadlessPrinter)
    if outcome.message:
        print(f"{PROG}: error: {outcome.message}", file=sys.stderr, flush=True)
    return outcome.exit_code


def _check_dataset(path: Path) -> None:
    from .core.dataset import DatasetError, load_dataset

    try:
        load_dataset(path, mmap=True)
    except DatasetError as exc:
        raise UsageError(str(exc)) from None


def train_headless(config) -> int:
    from .core.train import Trainer
    from .headless import HeadlessPrinter

    printer = HeadlessPrinter()
    trainer = Trainer(config, printer)
    printer.on_closed = trainer.request_stop  # the output went away (`| head`): stop, resumably
    interrupts = 0
    stopped_by: int | None = None  # the first signal: the exit status says the run was cut short

    several = launched()

    def on_signal(signum, frame):  # noqa: ARG001
        nonlocal interrupts, stopped_by
        interrupts += 1
        stopped_by = stopped_by or signum
        if interrupts > 1:
            # torchrun passes the terminal's Ctrl+C on to its processes, which got it already: a second
            # signal is not the user insisting. torchrun sends SIGKILL itself if they do not end.
            if several:
                return
            raise KeyboardInterrupt
        if env_rank() == 0:
            print(
                f"\n{signal.Signals(signum).name}: saving a resumable checkpoint…",
                file=sys.stderr,
                flush=True,
            )
        trainer.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = trainer.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    from .core.events import Failed
    from .core.train.stopping import StopRequest

    if isinstance(result, Failed):
        return EXIT_USAGE if result.usage else 1
    if stopped_by is not None and result.reason == StopRequest.reason:
        # 130 for Ctrl+C, 143 for SIGTERM, as the shell reports a command a signal ended and as a run on
        # several processes ends: `train && eval` must not go on to read with a model cut short. (A signal
        # while the finished run scored its test split stopped nothing: that run ends well.)
        return 128 + stopped_by
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if not args.paths:
        if sys.stdin.isatty() and sys.stdout.isatty():
            return _run_app(args, None, autostart=False, screen="eval")
        raise UsageError("give image paths to read (or run in a terminal to open the eval screen)")
    from .core.base_model import READS_LITTLE, base_model_note, default_model, reads_little
    from .core.checkpoint import CheckpointError
    from .core.decoding import ReadError, ReadOptions
    from .core.predictor import FolderLabels, Predictor, accuracy, expand_paths

    check_device(args.device)
    model, is_base = (args.model, False) if args.model else default_model(DEFAULT_RUN_DIR)
    try:
        predictor = Predictor.load(model, args.device)
    except CheckpointError as exc:
        hint = "" if Path(model).exists() else " (train one first: captcha-tui train)"
        raise UsageError(f"{exc}{hint}") from None
    if is_base:
        print(
            f"note: no --model and no {DEFAULT_RUN_DIR / 'best.pt'}: {base_model_note(model)}",
            file=sys.stderr,
        )
    elif not args.model and reads_little(model, predictor.meta.val_accuracy):
        validation = predictor.meta.val_accuracy
        print(f"note: {model} read {validation:.1%} of its validation split: {READS_LITTLE}", file=sys.stderr)
    options = ReadOptions(args.charset, args.length)
    try:
        plan = predictor.plan(options)
    except ReadError as exc:
        raise UsageError(str(exc)) from None
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    paths, problems = expand_paths(args.paths)
    for problem in problems:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
    labels = FolderLabels()
    if not paths and not problems:  # only empty arguments (`eval "$IMG"` with IMG unset)
        raise UsageError("no image path given: the paths were empty")
    right = labelled = read = 0
    failed = False
    # A chunk at a time, printed as it is read: 60,000 images are minutes of reading. Ctrl+C stops after
    # the chunk being read (a KeyboardInterrupt inside a print lost lines already read), keeping what was
    # printed and saying the accuracy so far; a second one quits at once.
    interrupted = []

    def on_interrupt(signum, frame):  # noqa: ARG001
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(signum)

    # Only where Python lets it (the main thread) and where Ctrl+C is not ignored (started with `&`).
    catch = threading.current_thread() is threading.main_thread()
    catch = catch and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    previous = signal.signal(signal.SIGINT, on_interrupt) if catch else None
    try:
        for chunk in predictor.read_chunks(paths, options=options, labels=labels):
            for result in chunk:
                _print_reading(result, args.json)
            sys.stdout.flush()
            hits, judged = accuracy(chunk)
            right, labelled, read = right + hits, labelled + judged, read + len(chunk)
            failed = failed or any(r.error is not None for r in chunk)
            if interrupted:
                break
    finally:
        if catch:
            signal.signal(signal.SIGINT, previous)
    for problem in labels.problems:
        print(f"{PROG}: warning: {problem}", file=sys.stderr)
    if interrupted and read < len(paths):  # a Ctrl+C during the last chunk stopped nothing
        if labelled and not args.json:
            print(
                f"accuracy {right:,}/{labelled:,} = {right / labelled:.1%} (whole code) of the first {read:,}"
            )
        print(f"interrupted after {read:,} of {len(paths):,} images", file=sys.stderr)
        return 130
    if labelled and not args.json:
        print(f"accuracy {right:,}/{labelled:,} = {right / labelled:.1%} (whole code)")
    if not read and problems:
        return EXIT_USAGE
    # As cat or grep: a path that was not there, or an image that could not be read, fails the command
    # (a script's mistyped path went unnoticed), though every other image is read and printed.
    return 1 if problems or failed else 0


def _print_reading(result, as_json: bool) -> None:
    """One line of `eval`: the code and each character's confidence, ✓/✗ against a label."""
    if as_json:
        record = {
            "path": str(result.path),
            "code": result.prediction.code if result.prediction else None,
            "confidences": list(result.prediction.confidences) if result.prediction else None,
            "label": result.label,
            "correct": result.correct,
            "error": result.error,
        }
        line = json.dumps(record, ensure_ascii=False)
        if not _utf8(line):  # a file name that is not UTF-8: \u escapes keep the line valid JSON
            line = json.dumps(record)
        print(line)
    elif result.prediction is None:
        print(f"{_shown(result.path)}: error: {result.error}")
    else:
        p = result.prediction
        chars = " ".join(f"{c}:{conf:.2f}" for c, conf in zip(p.code, p.confidences, strict=True))
        mark = "" if result.correct is None else ("  ✓" if result.correct else f"  ✗ (label {result.label})")
        print(f"{_shown(result.path)}: {p.code}  [{chars}]{mark}")


def _utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: a file name of other bytes holds lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(path: Path) -> str:
    """A path to print: bytes of a non-UTF-8 name as \\xNN escapes (printing them ended eval mid-way)."""
    text = str(path)
    return text if _utf8(text) else os.fsencode(text).decode("utf-8", "backslashreplace")


def cmd_label(args: argparse.Namespace) -> int:
    folder = args.folder.expanduser()
    if not folder.is_dir():
        raise UsageError(f"{'not a folder' if folder.exists() else 'no such folder'}: {missing(folder)}")
    if args.model is not None and not args.model.is_file():
        raise UsageError(f"checkpoint not found: {missing(args.model)}")
    if args.learn_every < 0:
        raise UsageError(f"--learn-every takes 0 (off) or more answers (got {args.learn_every})")
    if not args.learn_time_limit > 0:
        raise UsageError(
            f"--learn-time-limit takes a positive number of seconds (got {args.learn_time_limit})"
        )
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("labelling needs a terminal")
    from .tui.app import run_app

    learn = LearnSettings(
        every=args.learn_every, time_limit_s=args.learn_time_limit, device=args.learn_device
    )
    # No --model: the app takes the run folder's best.pt, else the base model (none: the screen says so).
    return run_app(
        None, DEFAULT_IMAGE_DIR, False, "label", args.model, label_dir=folder, label_learn=learn
    ).code


def cmd_runs(args: argparse.Namespace) -> int:
    folder = args.folder.expanduser()
    if not folder.is_dir():
        raise UsageError(f"{'not a folder' if folder.exists() else 'no such folder'}: {missing(folder)}")
    if sys.stdin.isatty() and sys.stdout.isatty():
        from .tui.app import run_app

        return run_app(None, DEFAULT_IMAGE_DIR, False, "runs", None, runs_dir=folder).code
    print_runs(folder)
    return 0


def print_runs(folder: Path) -> None:
    """The runs screen's table as plain columns, each run's problems on a line below it."""
    from .core.runs import list_runs
    from .words import RUN_COLUMNS, run_cells

    records = list_runs(folder)
    if not records:
        print(f"no runs in {folder}")
        return
    rows = [RUN_COLUMNS, *(run_cells(record) for record in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(RUN_COLUMNS))]
    print("  ".join(name.ljust(width) for name, width in zip(RUN_COLUMNS, widths, strict=True)).rstrip())
    for record, cells in zip(records, rows[1:], strict=True):
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip())
        for problem in ((f"failed: {record.failure}",) if record.failure else ()) + record.problems:
            print(f"    {problem}")


def cmd_export(args: argparse.Namespace) -> int:
    from .core.base_model import is_base_model
    from .core.checkpoint import CheckpointError
    from .core.export import export_onnx
    from .core.onnx_format import read_onnx_metadata

    out = args.out
    if out is None and is_base_model(args.checkpoint):  # not into the installed package's folder
        out = Path(args.checkpoint.with_suffix(".onnx").name)
    try:
        path = export_onnx(args.checkpoint, out, force=args.force)
        info = read_onnx_metadata(path)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    meta, spec = info.meta, info.meta.spec
    width, height = spec.image_size
    if spec.decoder == "ctc":
        outputs = f"(N, {info.steps}, {spec.classes} + 1 blank)"
    elif spec.decoder == "slots":
        outputs = f"(N, {spec.max_length}, {spec.classes} + 1 end)"
    else:
        outputs = f"(N, {spec.max_length}, {spec.classes})"
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    print(
        f"  {meta.preset} ({spec.decoder}) reads {spec.lengths} characters of {spec.charset!r} at "
        f"{width}×{height}; epoch {meta.epoch}, validation {meta.val_accuracy:.1%}"
    )
    print(
        f"  input {info.input!r}: (N, {height}, {width}, 3) uint8 → output {info.output!r}: {outputs} "
        "logits; all of it in metadata 'captcha_tui' (JSON)"
    )
    if info.checked is None:
        print("  not checked: install onnxruntime to compare it with PyTorch at export")
    else:
        print(f"  checked with onnxruntime: logits within {info.checked:.1g} of PyTorch's")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:  # noqa: ARG001
    import torch

    from .core.devices import cuda_build, list_devices, mps_available
    from .core.units import GiB

    print(f"PyTorch {torch.__version__}; CUDA build: {cuda_build() or 'none (CPU-only build)'}")
    print(
        f"CUDA available: {torch.cuda.is_available()}; CUDA devices: {torch.cuda.device_count()}; MPS: {mps_available()}"
    )
    for device in list_devices():
        parts = [f"{device.name:8s} {device.description}"]
        if device.threads:
            parts.append(f"{device.threads} threads")
        if device.total_memory:
            parts.append(f"{device.total_memory / GiB:.1f} GiB total")
        if device.free_memory is not None:
            parts.append(f"{device.free_memory / GiB:.1f} GiB free")
        if device.capability:
            parts.append(f"compute capability {device.capability}")
        print("  " + ", ".join(parts))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    return args.run_benchmark(args)  # the subcommand's own main (captcha_tui.bench)


def _run_app(args: argparse.Namespace, config, autostart: bool, screen: str = "train") -> int:
    from .core.events import Failed

    if launched():
        raise UsageError(DASHBOARD_UNDER_TORCHRUN)
    from .tui.app import run_app

    reading = {}
    if screen == "eval":  # eval's own options: the screen reads on that device, with those constraints
        from .core.decoding import ReadOptions

        reading = dict(eval_device=args.device, eval_options=ReadOptions(args.charset, args.length))
    ended = run_app(
        config=config,
        image_dir=getattr(args, "images", DEFAULT_IMAGE_DIR),
        autostart=autostart,
        screen=screen,
        model=getattr(args, "model", None),
        given_options=frozenset(_given_train_options(args)),
        **reading,
    )
    # The dashboard's screen is gone once it exits: say how its run ended, where the files are.
    lines = outcome_lines(ended.result, ended.run_dir)
    if lines:
        print("\n".join(lines), file=sys.stderr if isinstance(ended.result, Failed) else sys.stdout)
    return ended.code


def outcome_lines(result, run_dir: Path) -> list[str]:
    """What a dashboard session leaves on the terminal: its last run's outcome, in the headless
    printer's words, and the run folder's files. Nothing when the session trained nothing."""
    from .core.train import BEST, HISTORY, LAST, LOG
    from .words import describe_event

    if result is None:
        return []
    lines = (describe_event(result) or "").splitlines()
    files = [name for name in (BEST, LAST, HISTORY, LOG) if (Path(run_dir) / name).is_file()]
    if files:
        lines.append(f"run folder {run_dir}: {', '.join(files)}")
    return lines


def cmd_serve(args: argparse.Namespace) -> int:
    # The dashboard's options exactly as typed after `serve` (its own --host/--port taken out), so each
    # browser tab starts `captcha-tui OPTIONS` as a terminal would: nothing is rebuilt from parsed values.
    tail = args.argv[args.argv.index("serve") + 1 :]
    app_args = serve.dashboard_args(tail)

    def check_dashboard_args(app_args: list[str]) -> None:
        parsed = _parse_quietly(app_args)
        if parsed.command is not None:
            raise UsageError(
                f"serve opens the dashboard; `{parsed.command}` is another command (give the dashboard's "
                "options only, e.g. --data data/mine)"
            )
        check_devices(_train_config(parsed).device)

    return serve.main(args, app_args, check_dashboard_args)


def _parse_quietly(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed as the whole command line would be; argparse's complaint becomes a UsageError."""
    parser = build_parser()

    def refuse(message: str):
        raise UsageError(f"the dashboard's options: {message}")

    parser.error = refuse  # type: ignore[method-assign]
    try:
        return parser.parse_args(argv)
    except SystemExit:  # a subcommand's own parser complained (on stderr, above)
        raise UsageError("the dashboard's options: see the complaint above") from None


COMMANDS = {
    "generate": cmd_generate,
    "prepare": cmd_prepare,
    "train": cmd_train,
    "eval": cmd_eval,
    "label": cmd_label,
    "runs": cmd_runs,
    "export": cmd_export,
    "devices": cmd_devices,
    "bench": cmd_bench,
    "serve": cmd_serve,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # as typed: serve hands the dashboard's part on verbatim
    try:
        if args.command is None:
            config = _train_config(args)
            check_devices(config.device)
            served = os.environ.get(serve.SERVED_ENV)  # textual-serve's web driver: the browser is the screen
            if not served and not (sys.stdin.isatty() and sys.stdout.isatty()):
                raise UsageError(
                    "the dashboard needs a terminal; use `captcha-tui train --headless` in scripts"
                )
            return _run_app(args, config, autostart=False)
        _refuse_train_options_before(args.command, args)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        # Under torchrun every process says its own (a dataset may be missing on one machine only).
        rank = f"process {env_rank()}: " if launched() and env_rank() else ""
        print(f"{PROG}: error: {rank}{exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
