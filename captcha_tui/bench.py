"""`captcha-tui bench`: training and prediction speed per device, and time to accuracy.

Numbers are medians of repeated timed passes over a seed-sized chunk (800 real captchas, mini-batches of
100), measured in one run so that ratios between devices and presets are fair on a noisy machine. With
``--reference`` the reference script's recipe (:mod:`captcha_tui.reference`) is timed in the same run, and
each preset's speed is also given as a multiple of it.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import reference
from .core.devices import cpu_name, list_devices, resolve_amp, resolve_device
from .core.generator import DEFAULT_CHARSET, DEFAULT_COUNT, DEFAULT_LENGTH, random_code, render_captcha
from .core.images import MODEL_IMAGE_SIZE, to_model_array
from .core.model import build_model, prefers_channels_last, preset_spec, to_model_input
from .core.objectives import objective_for
from .core.spec import CodeSpec
from .core.trainer import TrainConfig, mixed_precision, train_step

DEFAULT_PRESETS = ("fast", "resnet18")
REFERENCE_IMAGE_SIZE = reference.IMAGE_SIZE  # what the reference script trains on


def make_chunk(
    count: int, seed: int = 0, size: tuple[int, int] = MODEL_IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` real captchas packed at ``size`` (width, height), made in memory: (N, H, W, 3) uint8 and
    (N, 4) labels."""
    images, labels = [], []
    for index in range(count):
        rng = random.Random(f"bench:{seed}:{index}")
        code = random_code(rng, DEFAULT_LENGTH, DEFAULT_CHARSET)
        images.append(to_model_array(render_captcha(code, rng), size))
        labels.append([DEFAULT_CHARSET.index(c) for c in code])
    return np.stack(images), np.asarray(labels, dtype=np.int64)


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
) -> Recipe:
    torch.manual_seed(0)
    classes = len(DEFAULT_CHARSET)
    size = (images.shape[2], images.shape[1])
    spec = bench_spec(preset, size)
    objective = objective_for(spec)
    model = build_model(preset, spec).to(device)
    model.set_channels_last(prefers_channels_last(preset, device))
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


REFERENCE_ROW = "reference"


def reference_recipe(device: torch.device, images: np.ndarray, labels: np.ndarray) -> Recipe:
    """The reference script's recipe (:mod:`captcha_tui.reference`) on ``images`` already at its 56×24:
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


def machine_info() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


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
            f"{r['predict_images_per_s']:14,.1f} {r['predict_one_ms']:10.2f} {r['train_gflops']:8.1f} "
            f"{r['fraction_of_matmul']:9.1%}"
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


FINAL_EVAL_SHARE = 0.02


def time_to_accuracy(
    target: float,
    time_limit_s: float | None,
    device: str = "auto",
    preset: str | None = None,
    count: int = DEFAULT_COUNT,
    epochs: int | None = None,
    amp: bool | None = None,
    batch_size: int = 100,
    quiet: bool = False,
    workdir: str | Path | None = None,
    length: tuple[int, int] | None = None,
    keep: Path | None = None,
    train_images: int | None = None,
) -> dict:
    """Generate and prepare the default data (codes of ``length``: one or a (min, max) range) and train
    until validation accuracy reaches ``target``, or time (``time_limit_s``, data included) or the image
    budget (``train_images``) runs out; the clock covers all of it. The test split is only scored at the
    end. ``keep``: copy the run folder there."""
    from .core.dataset import prepare
    from .core.events import EpochEnd, Failed, Finished
    from .core.generator import generate
    from .core.model import DEFAULT_CTC_PRESET, DEFAULT_PRESET
    from .core.trainer import Trainer
    from .headless import HeadlessPrinter

    resolved = resolve_device(device)
    length = length or (DEFAULT_LENGTH, DEFAULT_LENGTH)
    fixed = length[0] == length[1]
    preset = preset or (
        DEFAULT_CTC_PRESET if not fixed else DEFAULT_PRESET if resolved.type == "cpu" else "resnet18"
    )
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
        "reached": result.reason == "target_reached",
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
        "amp": resolve_amp(amp, resolved),
        "count": count,
        "curve": curve,
        "machine": machine_info(),
    }


def accuracy_by_length(checkpoint: Path, dataset_dir: Path, split: str = "test") -> dict[str, float]:
    """Whole-code accuracy of ``checkpoint`` on ``split``, by code length ({"4": 0.97, …}): where a
    varying-length reader loses its codes."""
    from .core.dataset import load_dataset
    from .core.predictor import Predictor

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


LATENCY_RUNS = 200


def onnx_vs_torch(checkpoint: str | Path, images: int = 1000, runs: int = LATENCY_RUNS) -> dict:
    """Export ``checkpoint`` to a temporary ONNX file and compare ONNX Runtime with PyTorch on the CPU:
    the codes and largest logit difference over ``images`` real captchas, and the median time of ``runs``
    one-image reads each (interleaved, so both see the same noise on a shared machine)."""
    from .core.export import export_onnx
    from .core.predictor import Predictor

    torch_reader = Predictor.load(checkpoint, "cpu")
    with tempfile.TemporaryDirectory() as folder:
        onnx_reader = Predictor.load(export_onnx(checkpoint, Path(folder) / "model.onnx"), "cpu")
    spec = torch_reader.spec
    chunk, _ = make_chunk(images, seed=7, size=spec.image_size)
    same, difference = 0, 0.0
    for start in range(0, images, 100):
        batch = chunk[start : start + 100]
        expected, got = torch_reader.logits(batch), onnx_reader.logits(batch)
        difference = max(difference, float((got - expected).abs().max()))
        same += sum(
            a.code == b.code
            for a, b in zip(
                torch_reader.predict_arrays(batch), onnx_reader.predict_arrays(batch), strict=True
            )
        )
    one = chunk[:1]
    timings: dict[str, list[float]] = {"torch": [], "onnx": []}
    for reader in (torch_reader, onnx_reader):
        for _ in range(10):  # warm-up: first calls allocate and pick kernels
            reader.predict_arrays(one)
    for _ in range(runs):
        for name, reader in (("torch", torch_reader), ("onnx", onnx_reader)):
            started = time.perf_counter()
            reader.predict_arrays(one)
            timings[name].append((time.perf_counter() - started) * 1e3)
    torch_ms, onnx_ms = (statistics.median(timings[name]) for name in ("torch", "onnx"))
    import onnxruntime

    return {
        "machine": {**machine_info(), "onnxruntime": onnxruntime.__version__},
        "checkpoint": str(checkpoint),
        "preset": torch_reader.meta.preset,
        "decoder": spec.decoder,
        "images": images,
        "same_codes": same,
        "max_logit_difference": difference,
        "runs": runs,
        "torch_one_image_ms": round(torch_ms, 3),
        "onnx_one_image_ms": round(onnx_ms, 3),
        "torch_over_onnx": round(torch_ms / onnx_ms, 2),
    }


def format_onnx(r: dict) -> str:
    machine = r["machine"]
    return "\n".join(
        [
            f"{machine['cpu']}, {machine['threads']} threads; PyTorch {machine['torch']}, "
            f"ONNX Runtime {machine['onnxruntime']}",
            f"{r['preset']} ({r['decoder']}) from {r['checkpoint']}",
            f"same codes on {r['same_codes']}/{r['images']} captchas; logits differ by at most "
            f"{r['max_logit_difference']:.2g}",
            f"one image, median of {r['runs']}: PyTorch {r['torch_one_image_ms']:.2f} ms, ONNX Runtime "
            f"{r['onnx_one_image_ms']:.2f} ms ({r['torch_over_onnx']:.2f}× as fast)",
        ]
    )
