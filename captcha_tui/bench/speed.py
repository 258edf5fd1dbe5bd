"""``captcha-tui bench speed``: training and prediction speed per device and preset.

Numbers are medians of repeated timed passes over a seed-sized chunk (800 real captchas, mini-batches of
100), measured in one run so that ratios between devices and presets are fair on a noisy machine. With
``--reference`` the reference script's recipe (:mod:`captcha_tui.bench.reference`) is timed in the same
run, and each preset's speed is also given as a multiple of it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..core.devices import list_devices, parse_device_list, resolve_device
from ..core.generator import DEFAULT_CHARSET, DEFAULT_LENGTH
from ..core.images import MODEL_IMAGE_SIZE
from ..core.model import PRESETS, build_model, prefers_channels_last, preset_spec, to_model_input
from ..core.objectives import objective_for
from ..core.spec import CodeSpec
from ..core.train import mixed_precision, train_step
from ..options import UsageError, add_amp_option, check_device, check_devices, image_size
from . import reference
from .common import add_json_option, machine_info, make_chunk, print_result

SUMMARY = "training and prediction speed (images/s) per device and preset, optionally against the reference"
DEFAULT_PRESETS = ("fast", "resnet18")
REFERENCE_IMAGE_SIZE = reference.IMAGE_SIZE  # what the reference script trains on


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(work, images: int, device: torch.device) -> float:
    _sync(device)
    started = time.perf_counter()
    work()
    _sync(device)
    return images / (time.perf_counter() - started)


def _flops_per_image(model: torch.nn.Module, loss_of, x: torch.Tensor) -> float:
    """FLOPs of one training step per image (forward + backward), counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss_of(model(x)).backward()
    return counter.get_total_flops() / len(x)


def train_step_flops(
    preset: str, classes: int, device: torch.device, size: tuple[int, int] = MODEL_IMAGE_SIZE
) -> float:
    """FLOPs of one training step of ``preset`` per image."""
    spec = bench_spec(preset, size)
    model = build_model(preset, spec).to(device)
    x = torch.zeros(4, size[1], size[0], 3, dtype=torch.uint8, device=device)
    y = torch.zeros(4, DEFAULT_LENGTH, dtype=torch.long, device=device)
    objective = objective_for(spec)
    return _flops_per_image(model, lambda logits: objective.loss(logits, y), to_model_input(x))


def bench_spec(preset: str, size: tuple[int, int]) -> CodeSpec:
    """The default captchas' spec with the decoder ``preset`` needs (per-position or CTC)."""
    return preset_spec(preset, CodeSpec.fixed(DEFAULT_CHARSET, DEFAULT_LENGTH, size))


def reference_step_flops(classes: int, device: torch.device) -> float:
    """FLOPs of one training step of the reference recipe per image (at its 56×24)."""
    width, height = REFERENCE_IMAGE_SIZE
    model = reference.ReferenceResNet18(DEFAULT_LENGTH, classes).to(device)
    x = torch.zeros(4, 3, height, width, device=device)
    y = reference.one_hot_targets(torch.zeros(4, DEFAULT_LENGTH, dtype=torch.long, device=device), classes)
    return _flops_per_image(model, lambda probabilities: reference.reference_loss(probabilities, y), x)


@functools.cache
def matmul_gflops(device: torch.device, size: int | None = None, repeats: int = 5) -> float:
    """Sustained float32 matrix-product speed: the ceiling training can be compared with.
    Measured once per device and process (the GPU check asks three times; 8192² products are not free)."""
    size = size or (8192 if device.type == "cuda" else 4096)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b  # warm-up
    rate = statistics.median(_rate(lambda: a @ b, 1, device) for _ in range(repeats))
    return 2 * size**3 * rate / 1e9


@dataclass
class Recipe:
    """One thing to time: a model with its optimiser and data, as closures over one mini-batch each.

    ``train_batch(start)`` runs a training step on the mini-batch at ``start``; ``predict_batch(start, end)``
    a forward pass in eval mode on images ``start:end``."""

    row: dict  # what is timed: device, preset, image size, batch, amp
    images: int
    batch_size: int
    train_batch: Callable[[int], None]
    predict_batch: Callable[[int, int], torch.Tensor]
    flops_per_image: float

    def train_pass(self) -> None:
        for start in range(0, self.images, self.batch_size):
            self.train_batch(start)

    def predict_pass(self) -> None:
        for start in range(0, self.images, self.batch_size):
            self.predict_batch(start, start + self.batch_size)

    def predict_one(self) -> None:
        self.predict_batch(0, 1).argmax(-1).cpu()  # .cpu(): a user waits for the answer


def time_recipes(device: torch.device, recipes: list[Recipe], repeats: int) -> list[dict]:
    """Time every recipe the same way, in rounds: each round times one pass of each recipe in turn, so
    that on a shared machine a change of load hits all of them alike. A row per recipe with median rates
    and, under ``train_rounds``/``predict_rounds``, the rate of each round."""
    # Warm-up (allocator, cuDNN autotuning, first-call overheads) is not timed.
    torch.backends.cudnn.benchmark = device.type == "cuda"
    for recipe in recipes:
        for start in range(0, min(recipe.images, 2 * recipe.batch_size), recipe.batch_size):
            recipe.train_batch(start)
        recipe.predict_pass()
        for _ in range(3):
            recipe.predict_one()
    train = [[_rate(r.train_pass, r.images, device) for r in recipes] for _ in range(repeats)]
    predict = [[_rate(r.predict_pass, r.images, device) for r in recipes] for _ in range(repeats)]
    rows = []
    for index, recipe in enumerate(recipes):
        single = []
        for _ in range(max(20, repeats * 10)):
            started = time.perf_counter()
            recipe.predict_one()
            single.append((time.perf_counter() - started) * 1000)
        train_rounds = [round(rates[index], 2) for rates in train]
        predict_rounds = [round(rates[index], 2) for rates in predict]
        train_rate = statistics.median(rates[index] for rates in train)
        rows.append(
            {
                **recipe.row,
                "images": recipe.images,
                "train_images_per_s": round(train_rate, 1),
                "seconds_per_chunk": round(recipe.images / train_rate, 2),
                "predict_images_per_s": round(statistics.median(rates[index] for rates in predict), 1),
                "predict_one_ms": round(statistics.median(single), 2),
                "train_gflop_per_image": round(recipe.flops_per_image / 1e9, 3),
                "train_gflops": round(recipe.flops_per_image * train_rate / 1e9, 1),
                "train_rounds": train_rounds,
                "predict_rounds": predict_rounds,
            }
        )
    return rows


def preset_recipe(
    device: torch.device,
    preset: str,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    amp: bool | None,
    wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> Recipe:
    """``wrap``: what the model is trained as (DistributedDataParallel over it, for several devices)."""
    torch.manual_seed(0)
    classes = len(DEFAULT_CHARSET)
    size = (images.shape[2], images.shape[1])
    spec = bench_spec(preset, size)
    objective = objective_for(spec)
    model = build_model(preset, spec).to(device)
    model.set_channels_last(prefers_channels_last(preset, device))
    if wrap is not None:
        model = wrap(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    autocast, scaler = mixed_precision(amp, device)
    x_all = torch.from_numpy(images).to(device)
    y_all = torch.from_numpy(labels).to(device)

    def train_batch(start: int) -> None:
        model.train()
        x, y = to_model_input(x_all[start : start + batch_size]), y_all[start : start + batch_size]
        train_step(model, optimizer, x, y, autocast, scaler, objective)

    @torch.inference_mode()
    def predict_batch(start: int, end: int) -> torch.Tensor:
        model.eval()
        with autocast or contextlib.nullcontext():
            return model(to_model_input(x_all[start:end]))

    row = {
        "device": str(device),
        "preset": preset,
        "image_size": list(size),
        "batch_size": batch_size,
        "amp": autocast is not None,
    }
    flops = train_step_flops(preset, classes, device, size)
    return Recipe(row, len(x_all), batch_size, train_batch, predict_batch, flops)


def data_parallel_rounds(
    device_spec: str, preset: str, images: np.ndarray, labels: np.ndarray, batch_size: int, amp, repeats: int
) -> tuple[list[float], bool] | None:
    """One process of a data-parallel timing (the launcher's entry point): this rank trains on its share
    of the chunk, mini-batches of ``batch_size`` a process, the gradients all-reduced as in a run on
    several devices. Returns, on rank 0, the images/s of all the processes together in each round (the
    slowest process ends a round) and whether it trained in mixed precision; None elsewhere."""
    import torch.distributed as dist

    from ..core.train.distributed import join

    group = join(device_spec, timeout_s=600)
    try:
        if group.device.type == "cpu":  # the cores shared out, as train does
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // group.world))
        share = slice(group.rank, None, group.world)
        recipe = preset_recipe(
            group.device, preset, images[share], labels[share], batch_size, amp, group.wrap
        )
        for start in range(0, min(recipe.images, 2 * batch_size), batch_size):  # warm-up, not timed
            recipe.train_batch(start)
        rates = []
        for _ in range(repeats):
            dist.barrier()
            _sync(group.device)
            started = time.perf_counter()
            recipe.train_pass()
            _sync(group.device)
            dist.barrier()
            rates.append(len(images) / (time.perf_counter() - started))
        return (rates, recipe.row["amp"]) if group.main else None
    finally:
        group.close()


def data_parallel_row(
    devices, preset: str, images: np.ndarray, labels: np.ndarray, batch_size: int, amp, repeats: int
) -> dict:
    """Training images/s of ``preset`` on several devices (a :class:`~captcha_tui.core.devices.DeviceList`),
    one process each, as ``train --device`` runs them. Prediction runs on one device: not timed here."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    from ..core.train.launch import one_machine

    try:
        returned = elastic_launch(one_machine(devices), data_parallel_rounds)(
            str(devices), preset, images, labels, batch_size, amp, repeats
        )
    except ChildFailedError as failed:
        rank, failure = failed.get_first_failure()
        raise UsageError(
            f"bench speed --device {devices}: process {rank} ({devices.names[failure.local_rank]}) failed "
            f"with exit status {failure.exitcode}"
        ) from None
    rates, mixed = returned[0]
    rounds = [round(rate, 2) for rate in rates]
    rate = statistics.median(rounds)
    return {
        "device": str(devices),
        "processes": devices.processes,
        "preset": preset,
        "image_size": [images.shape[2], images.shape[1]],
        "batch_size": batch_size,  # a process
        "amp": mixed,
        "images": len(images),
        "train_images_per_s": round(rate, 1),
        "seconds_per_chunk": round(len(images) / rate, 2),
        "predict_images_per_s": None,
        "predict_one_ms": None,
        "train_gflop_per_image": None,
        "train_gflops": None,
        "matmul_gflops": None,
        "fraction_of_matmul": None,
        "train_rounds": rounds,
        "predict_rounds": None,
    }


REFERENCE_ROW = "reference"


def reference_recipe(device: torch.device, images: np.ndarray, labels: np.ndarray) -> Recipe:
    """The reference script's recipe (:mod:`captcha_tui.bench.reference`) on ``images`` already at its 56×24:
    its mini-batch of 100 and float32, whatever ``--batch-size`` and ``--amp`` say for the presets."""
    if (images.shape[2], images.shape[1]) != REFERENCE_IMAGE_SIZE:
        raise ValueError(f"the reference trains on {size_text(REFERENCE_IMAGE_SIZE)} images")
    torch.manual_seed(0)
    classes = len(DEFAULT_CHARSET)
    batch_size = reference.BATCH_SIZE
    model = reference.ReferenceResNet18(DEFAULT_LENGTH, classes).to(device)
    optimizer = reference.reference_optimizer(model)
    x_all = reference.to_reference_input(torch.from_numpy(images).to(device))
    y_all = reference.one_hot_targets(torch.from_numpy(labels).to(device), classes)

    def train_batch(start: int) -> None:
        model.train()
        reference.reference_step(
            model, optimizer, x_all[start : start + batch_size], y_all[start : start + batch_size]
        )

    @torch.inference_mode()
    def predict_batch(start: int, end: int) -> torch.Tensor:
        model.eval()
        return model(x_all[start:end]).view(-1, DEFAULT_LENGTH, classes)

    row = {
        "device": str(device),
        "preset": REFERENCE_ROW,
        "image_size": list(REFERENCE_IMAGE_SIZE),
        "batch_size": batch_size,
        "amp": False,
    }
    return Recipe(
        row, len(x_all), batch_size, train_batch, predict_batch, reference_step_flops(classes, device)
    )


def ratio_to_reference(rounds: list[float], reference_rounds: list[float]) -> float:
    """Median over rounds of (this rate ÷ the reference's rate in the same round), to 2 decimals: each
    ratio compares two passes timed back to back, under the same load."""
    return round(statistics.median(a / b for a, b in zip(rounds, reference_rounds, strict=True)), 2)


def add_reference_ratios(rows: list[dict], reference_row: dict) -> None:
    """Each row's speed as a multiple of the reference's, timed in the same rounds on the same device."""
    for row in rows:
        row["train_vs_reference"] = ratio_to_reference(row["train_rounds"], reference_row["train_rounds"])
        row["predict_vs_reference"] = ratio_to_reference(
            row["predict_rounds"], reference_row["predict_rounds"]
        )


def throughput(
    devices: list[str] | None = None,
    presets: list[str] | None = None,
    batch_size: int = 100,
    images: int = reference.CHUNK,
    repeats: int = 3,
    amp: bool | None = None,
    progress: bool = True,
    size: tuple[int, int] = MODEL_IMAGE_SIZE,
    with_reference: bool = False,
) -> dict:
    """Bench rows per device and preset, the presets of a device timed in the same rounds.
    ``with_reference``: the reference recipe joins each device's rounds (on its own 56×24 chunk of the same
    captchas) and every preset row gets its ratios to it; the reference rows are under ``"reference"``."""
    device_names = devices or [d.name for d in list_devices(False)]
    chunk_images, chunk_labels = make_chunk(images, size=size)
    if with_reference:
        reference_images = (
            chunk_images if size == REFERENCE_IMAGE_SIZE else make_chunk(images, size=REFERENCE_IMAGE_SIZE)[0]
        )
    results, reference_rows, peaks = [], [], {}
    for name in device_names:
        several = parse_device_list(name)
        if several.several:
            if progress:
                print(
                    f"timing {', '.join(presets or DEFAULT_PRESETS)} on {several} (training), {repeats} rounds…",
                    file=sys.stderr,
                    flush=True,
                )
            for preset in presets or DEFAULT_PRESETS:
                results.append(
                    data_parallel_row(several, preset, chunk_images, chunk_labels, batch_size, amp, repeats)
                )
            continue
        device = resolve_device(name)
        peaks[str(device)] = round(matmul_gflops(device), 1)
        names = list(presets or DEFAULT_PRESETS)
        recipes = [preset_recipe(device, p, chunk_images, chunk_labels, batch_size, amp) for p in names]
        if with_reference:
            recipes.insert(0, reference_recipe(device, reference_images, chunk_labels))
        if progress:
            timed = ([REFERENCE_ROW] if with_reference else []) + names
            print(f"timing {', '.join(timed)} on {device}, {repeats} rounds…", file=sys.stderr, flush=True)
        rows = time_recipes(device, recipes, repeats)
        for row in rows:
            row["matmul_gflops"] = peaks[str(device)]
            row["fraction_of_matmul"] = round(row["train_gflops"] / peaks[str(device)], 3)
        if with_reference:
            add_reference_ratios(rows[1:], rows[0])
            reference_rows.append(rows.pop(0))
        results += rows
    report = {"machine": machine_info(), "repeats": repeats, "results": results}
    if with_reference:
        report["reference"] = reference_rows
    return report


def size_text(size) -> str:
    """``120×50`` for a (width, height) pair."""
    return "×".join(map(str, size))


def _shown(value: float | None, spec: str) -> str:
    """``value`` as ``spec`` formats it, or n/a right-aligned to the same width (a several-device row
    times training only)."""
    if value is not None:
        return format(value, spec)
    width = int("".join(c for c in spec.split(".")[0] if c.isdigit()) or 0)
    return f"{'n/a':>{width}}"


def format_table(report: dict) -> str:
    machine, results = report["machine"], report["results"]
    references = report.get("reference", [])
    sizes = sorted({size_text(r["image_size"]) for r in results + references})
    chunk = f"{results[0]['images']} images of {' and '.join(sizes)}" if results else "no images"
    ratio = bool(references)
    lines = [
        f"{machine['cpu']}, {machine['threads']} threads; PyTorch {machine['torch']}"
        + (f"; GPUs: {', '.join(machine['gpus'])}" if machine.get("gpus") else ""),
        f"median of {report['repeats']} passes over {chunk}",
        "",
        f"{'device':8} {'preset':9} {'size':>6} {'batch':>5} {'amp':>4} {'train img/s':>12} {'s/chunk':>8} "
        f"{'predict img/s':>14} {'1 image ms':>10} {'GFLOP/s':>8} {'of matmul':>9}"
        + (f" {'train ×ref':>10} {'predict ×ref':>12}" if ratio else ""),
    ]
    for r in references + results:
        line = (
            f"{r['device']:8} {r['preset']:9} {size_text(r['image_size']):>6} {r['batch_size']:5d} "
            f"{'on' if r['amp'] else 'off':>4} {r['train_images_per_s']:12,.1f} {r['seconds_per_chunk']:8.2f} "
            f"{_shown(r['predict_images_per_s'], '14,.1f')} {_shown(r['predict_one_ms'], '10.2f')} "
            f"{_shown(r['train_gflops'], '8.1f')} {_shown(r['fraction_of_matmul'], '9.1%')}"
        )
        if "train_vs_reference" in r:
            line += f" {r['train_vs_reference']:9.2f}× {r['predict_vs_reference']:11.2f}×"
        lines.append(line)
    if ratio:
        lines += [
            "",
            "reference: the reference script's recipe, timed in the same rounds (ResNet-18 with a 3×3 stride-1 "
            "stem, softmax per character + BCELoss, Adam 1e-3, fp32, 56×24)",
            "×ref: median over the rounds of preset images/s ÷ reference images/s in that round",
        ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        action="append",
        help="device to time (repeatable; default: every device); a list such as cuda:0,cuda:1, cuda:all or "
        "cpu:N times training on all of them at once, one process each, as train --device runs it",
    )
    parser.add_argument(
        "--preset",
        action="append",
        choices=sorted(PRESETS),
        help=f"model preset (repeatable; default: {' and '.join(DEFAULT_PRESETS)})",
    )
    parser.add_argument("--batch-size", type=int, default=100, help="mini-batch of the presets")
    parser.add_argument(
        "--images",
        type=int,
        default=reference.CHUNK,
        help="images in the timed chunk: the reference's training share of one of its files",
    )
    parser.add_argument(
        "--size",
        type=image_size,
        default="x".join(map(str, MODEL_IMAGE_SIZE)),  # a string: shown as typed, parsed by image_size
        metavar="WxH",
        help="WIDTHxHEIGHT the chunk is packed at: `prepare`'s default; the reference used "
        f"{'x'.join(map(str, REFERENCE_IMAGE_SIZE))}",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the median is reported")
    add_amp_option(parser)
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also time the reference's recipe (ResNet-18, softmax + BCELoss, Adam, fp32, 56x24) in the same "
        "rounds and show each preset's speed as a multiple of it",
    )
    add_json_option(parser)


def main(args: argparse.Namespace) -> int:
    for spec in args.device or []:
        if not check_devices(spec).several:
            check_device(spec)
    if args.batch_size < 1:
        raise UsageError("batch size must be at least 1")
    report = throughput(
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
    print_result(report, args.json, format_table)
    return 0
