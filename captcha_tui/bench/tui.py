"""How much the dashboard costs: ``captcha-tui bench tui [--preset fast] [--images 8000]``.

(a) Key-to-repaint latency while a real training run (CPU) goes on in the same process, and while idle.
    Method: the app runs headless under ``run_test``; ``App._display`` (what the screen calls with each
    new frame, just before it would be written to the terminal) is wrapped to record a timestamp and the
    screen shown. A key event is handed to the driver exactly as a terminal key would arrive (not through
    ``pilot.press``, which waits for the whole process to go idle and so never returns promptly while a
    training thread computes), and the latency is the time from that hand-off to the first frame showing
    the expected screen. The key opens the device picker (``d``) and closes it (``escape``): a real,
    harmless interaction that repaints a good part of the screen. Writing the frame to a real terminal is
    not included (headless mode skips it).
(b) Training throughput under the dashboard vs headless: the same config and data, a few epochs per
    run, each run in a fresh process, alternating headless (main thread, like ``train --headless``),
    the trainer on a plain thread with no UI, and the TUI (with its real hardware monitor), twice each.
    images/s is the trainer's own per-epoch figure (history.jsonl: training images over the epoch's
    seconds, validation included). Epochs after the first give the steady-state ratio; the ratio of each
    round (runs minutes apart) is given too, as this shared machine's speed drifts. The UI thread's own CPU
    time while training (a share of one core) is the steadier figure of what the dashboard costs.

Prints a summary and the same numbers as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch

from ..core.dataset import prepare
from ..core.generator import generate
from ..core.model import PRESETS
from ..core.train import HISTORY, TrainConfig, Trainer
from ..options import UsageError, check_device
from .common import summarize

# The app (textual, the screens, the hardware monitor) is imported where it is used: this module is
# loaded whenever the command line is built, and a plain `captcha-tui --help` should not pay for it.
SUMMARY = "the dashboard's cost: key-to-repaint latency, and training speed under it against headless"
SIZE = (120, 40)
UI_COST_FILE = "ui_cost.json"


class FrameRecorder:
    """Wraps ``app._display`` to note when each frame was produced and which screen it showed."""

    def __init__(self, app) -> None:
        self.frames: list[tuple[float, object]] = []
        original = app._display

        def display(screen, renderable) -> None:
            if renderable is not None:
                self.frames.append((time.perf_counter(), screen))
            original(screen, renderable)

        app._display = display

    def first_after(self, start: float, screen_type: type | None, app) -> float | None:
        for stamp, screen in self.frames:
            if stamp < start:
                continue
            if (screen_type is None and screen is app.train_screen) or (
                screen_type is not None and isinstance(screen, screen_type)
            ):
                return stamp
        return None


async def measure_keys(app, presses: int) -> list[float]:
    """Alternate d / escape ``presses`` times in ``app``; return key-to-frame latencies in ms."""
    from textual import events

    from ..tui.screens.device_picker import DevicePicker

    recorder = FrameRecorder(app)
    latencies = []
    for i in range(presses):
        opening = i % 2 == 0
        key, char = ("d", "d") if opening else ("escape", "\x1b")
        expected = DevicePicker if opening else None
        start = time.perf_counter()
        app._driver.send_message(events.Key(key, char))
        deadline = start + 5.0
        while (stamp := recorder.first_after(start, expected, app)) is None:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no repaint after pressing {key}")
            await asyncio.sleep(0.001)
        latencies.append((stamp - start) * 1000)
        recorder.frames.clear()
        await asyncio.sleep(0.15)  # a person's pace between keys
    return latencies


async def latency_run(config: TrainConfig, presses: int) -> dict:
    """Key-to-frame latencies idle and while ``config`` trains. The run is given work that cannot run out
    (no epoch budget, patience, target or time limit to end it) and is stopped once the presses are done,
    so a fast machine cannot finish it first."""
    from ..core.hardware import HardwareSampler
    from ..tui.app import CaptchaApp
    from ..tui.widgets.batch_panel import BatchPanel

    endless = 10**9
    config = replace(config, epochs=endless, patience=endless, target_accuracy=None, time_limit_s=None)
    app = CaptchaApp(config, Path("unused"), devices=[], sampler=HardwareSampler(device=config.device))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        idle = await measure_keys(app, presses)
        await pilot.press("s")
        panel = app.train_screen.query_one(BatchPanel)
        while panel.last is None:  # training under way, batch reports arriving
            await asyncio.sleep(0.05)
        training = await measure_keys(app, presses)
        still_training = app.training
        if app.trainer is not None:
            app.trainer.request_stop()
        while app.training:
            await asyncio.sleep(0.05)
    if not still_training:
        print("warning: the run ended before the key presses did; use more --images", file=sys.stderr)
    return {"idle": summarize(idle), "training": summarize(training), "training_throughout": still_training}


def epoch_rates(run_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / HISTORY).read_text().splitlines()]
    return [row["images_per_s"] for row in rows]


def run_headless(config: TrainConfig) -> list[float]:
    Trainer(config).run()
    return epoch_rates(config.out)


def run_in_thread(config: TrainConfig) -> list[float]:
    """The trainer on a plain thread, no UI: separates the cost of threading from the cost of the UI."""
    thread = threading.Thread(target=Trainer(config).run)
    thread.start()
    thread.join()
    return epoch_rates(config.out)


async def _run_tui(config: TrainConfig) -> None:
    from ..core.hardware import HardwareSampler
    from ..tui.app import CaptchaApp

    app = CaptchaApp(
        config, Path("unused"), devices=[], autostart=True, sampler=HardwareSampler(device=config.device)
    )
    async with app.run_test(size=SIZE):
        while not app.training and app.last_result is None:
            await asyncio.sleep(0.05)
        # The app runs on this (main) thread: its CPU time while training is what the UI costs.
        cpu, wall = time.thread_time(), time.perf_counter()
        while app.training:
            await asyncio.sleep(0.1)
        share = (time.thread_time() - cpu) / (time.perf_counter() - wall)
    (config.out / UI_COST_FILE).write_text(json.dumps({"ui_thread_cpu_share": round(share, 4)}))


def run_tui(config: TrainConfig) -> list[float]:
    asyncio.run(_run_tui(config))
    return epoch_rates(config.out)


MODES = {"headless": run_headless, "thread": run_in_thread, "tui": run_tui}


def run_fresh(mode: str, config: TrainConfig) -> list[float]:
    """One run in a new process.

    In one process the runs would disturb each other: torch work on the main thread leaves an
    OpenMP thread pool behind that slows a later run on another thread (measured: 25% on 2 cores).
    The real app never computes on its main thread, so each mode gets a clean process.
    """
    command = [sys.executable, "-m", "captcha_tui.cli", "bench", "tui", "--one-run", mode]
    command += ["--data", str(config.data)]
    command += ["--out", str(config.out), "--device", config.device]
    command += ["--preset", config.preset] if config.preset else []  # None: the trainer picks from the data
    command += ["--epochs", str(config.epochs)]
    subprocess.run(command, check=True)
    return epoch_rates(config.out)


def throughput(base: TrainConfig, work: Path, rounds: int, epochs: int) -> dict:
    """Per-epoch images/s of each mode, each run in a fresh process, alternating modes ``rounds`` times.

    The first epoch of every run pays one-time costs (kernel selection, allocator, caches), so the
    comparison that matters for a long run is the later epochs ("steady"); the first is reported too.
    """
    runs: dict[str, list[list[float]]] = {mode: [] for mode in MODES}
    for i in range(rounds):
        for mode in MODES:
            runs[mode].append(run_fresh(mode, replace(base, out=work / f"{mode}-{i}", epochs=epochs)))
    summary = {}
    for mode, rates in runs.items():
        summary[mode] = {
            "epochs_images_per_s": [[round(v, 1) for v in run] for run in rates],
            "first_epoch": round(statistics.median(run[0] for run in rates), 1),
            "steady": round(statistics.median(v for run in rates for v in run[1:]), 1)
            if epochs > 1
            else None,
        }
    key = "steady" if epochs > 1 else "first_epoch"
    summary["tui_over_headless"] = round(summary["tui"][key] / summary["headless"][key], 3)
    summary["thread_over_headless"] = round(summary["thread"][key] / summary["headless"][key], 3)
    # The machine's speed drifts over minutes: runs next to each other (one round) compare best.
    first = 0 if epochs == 1 else 1
    summary["tui_over_headless_by_round"] = [
        round(statistics.median(tui[first:]) / statistics.median(headless[first:]), 3)
        for tui, headless in zip(runs["tui"], runs["headless"], strict=True)
    ]
    summary["ui_thread_cpu_share"] = [
        json.loads((work / f"tui-{i}" / UI_COST_FILE).read_text())["ui_thread_cpu_share"]
        for i in range(rounds)
    ]
    summary["tui_over_headless_first_epoch"] = round(
        summary["tui"]["first_epoch"] / summary["headless"]["first_epoch"], 3
    )
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="fast", help="model preset")
    parser.add_argument("--device", default="cpu", help="device to train on")
    parser.add_argument("--images", type=int, default=8000, help="captchas to generate for the runs")
    parser.add_argument("--presses", type=int, default=30, help="keys pressed idle, and again while training")
    parser.add_argument("--rounds", type=int, default=3, help="times each mode runs for the throughput")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per throughput run")
    # Internal: one throughput run in this (fresh) process; see run_fresh.
    parser.add_argument("--one-run", choices=sorted(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    """Prints a summary and the same figures as JSON."""
    check_device(args.device)
    if args.one_run:
        config = TrainConfig(
            data=args.data, out=args.out, preset=args.preset, device=args.device, epochs=args.epochs
        )
        MODES[args.one_run](config)
        return 0
    if min(args.images, args.presses, args.rounds, args.epochs) < 1:
        raise UsageError("--images, --presses, --rounds and --epochs take at least 1")

    with tempfile.TemporaryDirectory(prefix="captcha-latency-") as tmp:
        work = Path(tmp)
        generate(work / "images", args.images, seed=3)
        prepare(work / "images", work / "dataset")
        base = TrainConfig(
            data=work / "dataset", out=work / "run", preset=args.preset, device=args.device, epochs=1000
        )
        keys = asyncio.run(latency_run(base, args.presses))
        rates = throughput(base, work, args.rounds, args.epochs)

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "preset": args.preset,
        "device": args.device,
        "images": args.images,
        "key_to_frame": keys,
        "throughput": rates,
    }
    k, r = keys, rates
    print(
        f"key → frame while idle:     median {k['idle']['median_ms']} ms, p95 {k['idle']['p95_ms']} ms\n"
        f"key → frame while training: median {k['training']['median_ms']} ms, p95 {k['training']['p95_ms']} ms "
        f"({args.presses} presses, preset {args.preset} on {args.device})\n"
        f"training images/s, epochs 2+ (first epoch): headless {r['headless']['steady']} "
        f"({r['headless']['first_epoch']}), trainer on a plain thread {r['thread']['steady']} "
        f"({r['thread']['first_epoch']}), under the TUI {r['tui']['steady']} ({r['tui']['first_epoch']})\n"
        f"TUI/headless {r['tui_over_headless']} (first epoch {r['tui_over_headless_first_epoch']}; "
        f"by round {r['tui_over_headless_by_round']}), "
        f"thread/headless {r['thread_over_headless']}\n"
        f"UI thread CPU while training, share of one core, per TUI run: {r['ui_thread_cpu_share']}"
    )
    print(json.dumps(result))
    return 0
