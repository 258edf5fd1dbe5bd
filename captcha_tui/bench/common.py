"""What the benchmarks share: the machine they ran on, a chunk of real captchas, latency figures, the
help format and the way a result is printed."""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
from collections.abc import Callable

import numpy as np
import torch

from ..core.devices import cpu_name
from ..core.generator import DEFAULT_CHARSET, DEFAULT_LENGTH, random_code, render_captcha
from ..core.images import MODEL_IMAGE_SIZE, to_model_array


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written (line by line), and each option's default after its help, taken from the
    option itself so it cannot drift. Not shown where the default is no value (None, or a flag's False):
    those options' help says what happens without them."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


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


def summarize(values: list[float]) -> dict:
    """Latencies in ms → their count, median, 95th percentile and maximum."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(max(values), 1),
    }


def add_json_option(parser: argparse.ArgumentParser, note: str = "") -> None:
    help_text = "print one JSON object instead of a summary" + (f" ({note})" if note else "")
    parser.add_argument("--json", action="store_true", help=help_text)


def print_result(result: dict, as_json: bool, describe: Callable[[dict], str]) -> None:
    print(json.dumps(result) if as_json else describe(result))
