"""The GPU checks in one short run (under 5 minutes on one CUDA GPU): ``python -m captcha_tui.gpu_check [OUT]``.

1. what PyTorch and NVML see; 2. the CUDA-marked tests; 3. ``bench`` on cuda, fp32 and ``--amp``;
4. the GPU time-to-accuracy run (resnet18, mixed precision, target 99%), sampling GPU utilization through
NVML while it trains; then a short table. Results also go to OUT/gpu_check.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import bench
from .core.hardware import HardwareSampler, Monitor


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else ".")
    out.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available():
        print("no CUDA GPU visible: nothing to check", file=sys.stderr)
        return 2
    report: dict = {"machine": bench.machine_info()}
    print(json.dumps(report["machine"]), flush=True)

    started = time.perf_counter()
    tests = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"],
                           capture_output=True, text=True)
    summary = (tests.stdout.strip().splitlines() or ["(no output)"])[-1]
    report["cuda_tests"] = {"exit_code": tests.returncode, "summary": summary,
                            "seconds": round(time.perf_counter() - started, 1)}
    print(tests.stdout[-3000:], tests.stderr[-2000:], flush=True)

    report["bench_fp32"] = bench.throughput(devices=["cuda"], repeats=5, progress=False)
    report["bench_amp"] = bench.throughput(devices=["cuda"], repeats=5, amp=True, progress=False)
    report["bench_amp_batch512"] = bench.throughput(devices=["cuda"], presets=["resnet18"], batch_size=512,
                                                    images=4096, repeats=5, amp=True, progress=False)
    for key in ("bench_fp32", "bench_amp", "bench_amp_batch512"):
        print(bench.format_table(report[key]), flush=True)

    utilization: list[int] = []

    def on_sample(sample):
        for gpu in sample.gpus:
            if gpu.index == 0 and gpu.utilization is not None:
                utilization.append(gpu.utilization)

    with Monitor(on_sample, HardwareSampler(device="cuda:0"), interval=0.5):
        tta = bench.time_to_accuracy(target=0.99, time_limit_s=200, device="cuda", preset="resnet18", amp=True,
                                     count=60000, epochs=24, batch_size=256)
    tta["gpu_utilization_median"] = statistics.median(utilization) if utilization else None
    report["time_to_accuracy"] = tta
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))

    print("\n== summary ==")
    print(f"GPU: {', '.join(report['machine'].get('gpus', []))}; torch {report['machine']['torch']}")
    print(f"CUDA tests: {summary} (exit {tests.returncode})")
    for key in ("bench_fp32", "bench_amp", "bench_amp_batch512"):
        for r in report[key]["results"]:
            print(f"{key:19s} {r['preset']:9s} batch {r['batch_size']:4d}: train {r['train_images_per_s']:>10,.0f} img/s, "
                  f"predict {r['predict_images_per_s']:>10,.0f} img/s, one image {r['predict_one_ms']:.2f} ms")
    print(bench.format_tta(tta))
    print(f"GPU utilization while training (NVML, median of samples): {tta['gpu_utilization_median']}%")
    return 0 if tests.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
