"""`captcha-tui bench`: training and prediction speed per device, and time to accuracy.

Numbers are medians of repeated timed passes over a seed-sized chunk (800 real captchas, mini-batches of
100), measured in one run so that ratios between devices and presets are fair on a noisy machine.
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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .core.devices import cpu_name, list_devices, resolve_amp, resolve_device
from .core.generator import DEFAULT_CHARSET, DEFAULT_COUNT, DEFAULT_LENGTH, random_code, render_captcha
from .core.images import MODEL_IMAGE_SIZE, to_model_array
from .core.model import build_model, prefers_channels_last, to_model_input
from .core.spec import CodeSpec
from .core.trainer import TrainConfig, mixed_precision, train_step

DEFAULT_PRESETS = ("fast", "resnet18")
REFERENCE_IMAGE_SIZE = (56, 24)  # what the reference script trains on; its throughput was measured there


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


def _median_rate(work, images: int, repeats: int, device: torch.device) -> float:
    rates = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        work()
        _sync(device)
        rates.append(images / (time.perf_counter() - started))
    return statistics.median(rates)


def train_step_flops(
    preset: str, classes: int, device: torch.device, size: tuple[int, int] = MODEL_IMAGE_SIZE
) -> float:
    """FLOPs of one training step per image (forward + backward), counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(preset, CodeSpec.fixed(DEFAULT_CHARSET, DEFAULT_LENGTH, size)).to(device)
    x = torch.zeros(4, size[1], size[0], 3, dtype=torch.uint8, device=device)
    y = torch.zeros(4, DEFAULT_LENGTH, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as counter:
        loss = F.cross_entropy(model(to_model_input(x)).flatten(0, 1), y.flatten())
        loss.backward()
    return counter.get_total_flops() / 4


@functools.cache
def matmul_gflops(device: torch.device, size: int | None = None, repeats: int = 5) -> float:
    """Sustained float32 matrix-product speed: the ceiling training can be compared with.
    Measured once per device and process (the GPU check asks three times; 8192² products are not free)."""
    size = size or (8192 if device.type == "cuda" else 4096)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b  # warm-up
    rate = _median_rate(lambda: a @ b, 1, repeats, device)
    return 2 * size**3 * rate / 1e9


def bench_one(
    device: torch.device,
    preset: str,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    repeats: int,
    amp: bool | None,
) -> dict:
    torch.manual_seed(0)
    classes = len(DEFAULT_CHARSET)
    size = (images.shape[2], images.shape[1])
    model = build_model(preset, CodeSpec.fixed(DEFAULT_CHARSET, DEFAULT_LENGTH, size)).to(device)
    model.set_channels_last(prefers_channels_last(preset, device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    autocast, scaler = mixed_precision(amp, device)
    x_all = torch.from_numpy(images).to(device)
    y_all = torch.from_numpy(labels).to(device)
    n = len(x_all)

    def train_pass():
        model.train()
        for start in range(0, n, batch_size):
            x, y = to_model_input(x_all[start : start + batch_size]), y_all[start : start + batch_size]
            train_step(model, optimizer, x, y, autocast, scaler)

    @torch.inference_mode()
    def predict_pass():
        model.eval()
        for start in range(0, n, batch_size):
            with autocast or contextlib.nullcontext():
                model(to_model_input(x_all[start : start + batch_size]))

    one = x_all[:1]

    @torch.inference_mode()
    def predict_one():
        model.eval()
        with autocast or contextlib.nullcontext():
            model(to_model_input(one)).argmax(-1).cpu()  # .cpu(): a user waits for the answer

    # Warm-up (allocator, cuDNN autotuning, first-call overheads) is not timed.
    torch.backends.cudnn.benchmark = device.type == "cuda"
    for start in range(0, min(n, 2 * batch_size), batch_size):
        x, y = to_model_input(x_all[start : start + batch_size]), y_all[start : start + batch_size]
        train_step(model, optimizer, x, y, autocast, scaler)
    predict_pass()
    for _ in range(3):
        predict_one()

    train_rate = _median_rate(train_pass, n, repeats, device)
    predict_rate = _median_rate(predict_pass, n, repeats, device)
    single = []
    for _ in range(max(20, repeats * 10)):
        started = time.perf_counter()
        predict_one()
        single.append((time.perf_counter() - started) * 1000)
    flops = train_step_flops(preset, classes, device, size)
    return {
        "device": str(device),
        "preset": preset,
        "image_size": list(size),
        "batch_size": batch_size,
        "amp": autocast is not None,
        "images": n,
        "train_images_per_s": round(train_rate, 1),
        "seconds_per_chunk": round(n / train_rate, 2),
        "predict_images_per_s": round(predict_rate, 1),
        "predict_one_ms": round(statistics.median(single), 2),
        "train_gflop_per_image": round(flops / 1e9, 3),
        "train_gflops": round(flops * train_rate / 1e9, 1),
    }


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
    images: int = 800,
    repeats: int = 3,
    amp: bool | None = None,
    progress: bool = True,
    size: tuple[int, int] = MODEL_IMAGE_SIZE,
) -> dict:
    device_names = devices or [d.name for d in list_devices(False)]
    chunk_images, chunk_labels = make_chunk(images, size=size)
    results, peaks = [], {}
    for name in device_names:
        device = resolve_device(name)
        peaks[str(device)] = round(matmul_gflops(device), 1)
        for preset in presets or DEFAULT_PRESETS:
            if progress:
                print(f"timing {preset} on {device}…", file=sys.stderr, flush=True)
            row = bench_one(device, preset, chunk_images, chunk_labels, batch_size, repeats, amp)
            row["matmul_gflops"] = peaks[str(device)]
            row["fraction_of_matmul"] = round(row["train_gflops"] / peaks[str(device)], 3)
            results.append(row)
    return {"machine": machine_info(), "repeats": repeats, "results": results}


def size_text(size) -> str:
    """``120×50`` for a (width, height) pair."""
    return "×".join(map(str, size))


def format_table(report: dict) -> str:
    machine, results = report["machine"], report["results"]
    chunk = (
        f"{results[0]['images']} images of {size_text(results[0]['image_size'])}" if results else "no images"
    )
    lines = [
        f"{machine['cpu']}, {machine['threads']} threads; PyTorch {machine['torch']}"
        + (f"; GPUs: {', '.join(machine['gpus'])}" if machine.get("gpus") else ""),
        f"median of {report['repeats']} passes over {chunk}",
        "",
        f"{'device':8} {'preset':9} {'batch':>5} {'amp':>4} {'train img/s':>12} {'s/chunk':>8} "
        f"{'predict img/s':>14} {'1 image ms':>10} {'GFLOP/s':>8} {'of matmul':>9}",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['device']:8} {r['preset']:9} {r['batch_size']:5d} {'on' if r['amp'] else 'off':>4} "
            f"{r['train_images_per_s']:12,.1f} {r['seconds_per_chunk']:8.2f} {r['predict_images_per_s']:14,.1f} "
            f"{r['predict_one_ms']:10.2f} {r['train_gflops']:8.1f} {r['fraction_of_matmul']:9.1%}"
        )
    return "\n".join(lines)


FINAL_EVAL_SHARE = 0.02


def time_to_accuracy(
    target: float,
    time_limit_s: float,
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
) -> dict:
    """Generate and prepare the default data (codes of ``length``: one or a (min, max) range) and train
    until validation accuracy reaches ``target`` or time runs out; the clock covers all of it. The test
    split is only scored at the end. ``keep``: copy the run folder there."""
    from .core.dataset import prepare
    from .core.events import EpochEnd, Failed
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
            # No epoch budget given: the time limit alone shapes the learning-rate schedule.
            epochs=epochs or 1000,
            batch_size=batch_size,
            amp=amp,
            target_accuracy=target,
            patience=1000,  # on the clock: only the target or the time limit ends it
            # Keep back a little for scoring the last weights on the validation and test splits.
            time_limit_s=max(1.0, time_limit_s * (1 - FINAL_EVAL_SHARE) - data_s),
        )
        result = Trainer(config, on_event).run()
        elapsed = time.perf_counter() - started
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
        "length": list(length),
        "best_val_accuracy": round(result.best_val_accuracy, 4),
        "epochs": result.epochs_run,
        "images_seen": result.images_seen,
        "device": str(resolved),
        "preset": preset,
        "amp": resolve_amp(amp, resolved),
        "count": count,
        "curve": curve,
        "machine": machine_info(),
    }


def format_tta(r: dict) -> str:
    verdict = "reached" if r["reached"] else "did not reach"
    test = "n/a" if r["test_accuracy"] is None else f"{r['test_accuracy']:.1%}"
    return (
        f"{verdict} {r['target']:.1%} validation accuracy: {r['elapsed_s']:.0f} s in all "
        f"({r['data_s']:.0f} s making data), {r['epochs']} epochs, {r['images_seen']:,} images seen\n"
        f"test accuracy of the best weights: {test}  [{r['preset']} on {r['device']}, amp {'on' if r['amp'] else 'off'}]"
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
