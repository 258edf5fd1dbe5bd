"""The GPU checks in one short run (about 5 minutes on one CUDA GPU)::

    python -m captcha_tui.gpu_check OUT_DIR            # on a machine with a CUDA GPU
    python -m captcha_tui.gpu_check OUT_DIR --quick --device cpu   # a dry run of the script itself

1. the CUDA-marked tests; 2. ``bench`` on the GPU, fp32 and mixed precision; 3. a screenshot of the
training screen while it trains on the GPU, with real NVML panels; 4. the GPU time-to-accuracy run
(resnet18, mixed precision, target 99%) with NVML sampling utilization alongside; then a short table.
Everything also goes to OUT_DIR/gpu_check.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .bench import accuracy, speed
from .bench.common import machine_info
from .core.hardware import HardwareSampler, Monitor


async def training_screenshot(
    out_dir: Path, data: Path, run: Path, device: str, preset: str, seconds: float
) -> dict:
    """Train in the real app on ``device`` for a while and save an SVG of the screen (real NVML panels)."""
    from .core.train import TrainConfig
    from .tui.app import CaptchaApp

    config = TrainConfig(
        data=data, out=run, preset=preset, device=device, amp=device != "cpu", epochs=20, batch_size=256
    )
    app = CaptchaApp(config, data.parent / "images", monitor_interval=0.5)
    async with app.run_test(size=(130, 42)) as pilot:
        await pilot.press("s")
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            await pilot.pause(0.5)
        path = app.save_screenshot("screenshot-train-gpu.svg", path=str(out_dir))
        await pilot.press("q")
        for _ in range(200):
            if not app.is_running:
                break
            await pilot.pause(0.1)
    return {"path": path}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m captcha_tui.gpu_check", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path("."))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, not the GPU")
    args = parser.parse_args(argv)
    out = args.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    report: dict = {"machine": machine_info()}
    print(json.dumps(report["machine"]), flush=True)

    # 1. The CUDA-marked tests.
    started = time.perf_counter()
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
    )
    lines = tests.stdout.strip().splitlines() or ["(no output)"]
    report["cuda_tests"] = {
        "exit_code": tests.returncode,
        "summary": lines[-1],
        "seconds": round(time.perf_counter() - started, 1),
    }
    print("\n".join(lines[-15:]), tests.stderr[-1500:], flush=True)

    # 2. Throughput: the reference's chunk (800 images of 56×24) at mini-batch 100, fp32 (with the reference
    # recipe timed alongside, for the ratios) and mixed precision, then a GPU-sized batch of full-size images,
    # as the time-to-accuracy run trains on.
    chunk = 200 if quick else 800
    presets = ["tiny"] if quick else None
    ref = speed.REFERENCE_IMAGE_SIZE
    report["bench_fp32"] = speed.throughput(
        [args.device],
        presets,
        images=chunk,
        repeats=3,
        amp=False,
        progress=False,
        size=ref,
        with_reference=True,
    )
    report["bench_amp"] = speed.throughput(
        [args.device], presets, images=chunk, repeats=3, amp=True, progress=False, size=ref
    )
    report["bench_amp_batch512"] = speed.throughput(
        [args.device],
        presets or ["resnet18"],
        batch_size=512,
        images=1024 if quick else 8192,
        repeats=3,
        amp=True,
        progress=False,
    )
    for key in ("bench_fp32", "bench_amp", "bench_amp_batch512"):
        print(speed.format_table(report[key]), flush=True)

    # 3. The dashboard on this device, with the real NVML backend.
    from .core.dataset import prepare
    from .core.generator import generate

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        generate(work / "images", 600 if quick else 30000, seed=5)
        prepare(work / "images", work / "dataset")
        shot = asyncio.run(
            training_screenshot(
                out,
                work / "dataset",
                work / "run",
                args.device,
                "tiny" if quick else "resnet18",
                8 if quick else 25,
            )
        )
    report["screenshot"] = shot
    print(f"screenshot: {shot}", flush=True)

    # 4. Time to accuracy, with NVML sampling utilization on its own thread.
    utilization: list[int] = []

    def on_sample(sample) -> None:
        utilization.extend(g.utilization for g in sample.gpus if g.index == 0 and g.utilization is not None)

    with Monitor(on_sample, HardwareSampler(device=args.device), interval=0.5):
        tta = accuracy.time_to_accuracy(
            target=0.99,
            time_limit_s=30 if quick else 240,
            device=args.device,
            preset="tiny" if quick else "resnet18",
            amp=True,
            count=1000 if quick else 60000,
            epochs=2 if quick else 20,
            batch_size=256,
            quiet=True,
        )
    tta["gpu_utilization_median"] = statistics.median(utilization) if utilization else None
    tta["gpu_utilization_samples"] = len(utilization)
    report["time_to_accuracy"] = tta
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))

    print("\n== summary ==")
    print(f"machine: {json.dumps(report['machine'])}")
    print(f"CUDA tests: {report['cuda_tests']['summary']} (exit {tests.returncode})")
    for key in ("bench_fp32", "bench_amp", "bench_amp_batch512"):
        for r in report[key]["results"]:
            print(
                f"{key:19s} {r['preset']:9s} {speed.size_text(r['image_size']):>6} batch {r['batch_size']:4d}: "
                f"train {r['train_images_per_s']:>10,.0f} "
                f"img/s, predict {r['predict_images_per_s']:>10,.0f} img/s, one image {r['predict_one_ms']:.2f} ms, "
                f"{r['fraction_of_matmul']:.1%} of matmul"
            )
    print(accuracy.format_tta(tta))
    print(f"epochs: {[(c['epoch'], c['val_accuracy'], c['elapsed_s']) for c in tta['curve']]}")
    print(
        f"GPU utilization while training (NVML): median {tta['gpu_utilization_median']}% "
        f"over {len(utilization)} samples"
    )
    return 0 if tests.returncode in (0, 5) else 1


if __name__ == "__main__":
    sys.exit(main())
