"""``captcha-tui bench onnx CHECKPOINT``: ONNX Runtime against PyTorch on the CPU, for one checkpoint.

The checkpoint is exported (as ``captcha-tui export`` does) to a temporary file; both readers then read
the same real captchas: the codes must agree and the logits differ by float rounding alone. One-image
latency is timed interleaved, so that both see the same noise on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ..options import UsageError
from .common import add_json_option, machine_info, make_chunk, print_result

SUMMARY = "ONNX Runtime against PyTorch on the CPU for a checkpoint: same codes, logit difference, latency"

LATENCY_RUNS = 200


def onnx_vs_torch(checkpoint: str | Path, images: int = 1000, runs: int = LATENCY_RUNS) -> dict:
    """Export ``checkpoint`` to a temporary ONNX file and compare ONNX Runtime with PyTorch on the CPU:
    the codes and largest logit difference over ``images`` real captchas, and the median time of ``runs``
    one-image reads each (interleaved, so both see the same noise on a shared machine)."""
    from ..core.export import export_onnx
    from ..core.predictor import Predictor

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        type=Path,
        metavar="CHECKPOINT",
        help="checkpoint to export and compare, e.g. runs/default/best.pt",
    )
    parser.add_argument("--images", type=int, default=1000, help="captchas both read")
    add_json_option(parser)


def main(args: argparse.Namespace) -> int:
    from ..core.checkpoint import CheckpointError

    if args.images < 1:
        raise UsageError("--images takes at least 1")
    try:
        result = onnx_vs_torch(args.checkpoint, images=args.images)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    print_result(result, args.json, format_onnx)
    return 0
