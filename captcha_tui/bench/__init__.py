"""``captcha-tui bench``: one subcommand per benchmark, one module per subcommand.

Each module declares its options (``add_arguments``), says in one line what it measures (``SUMMARY``) and
runs from the parsed arguments (``main(args) -> exit code``); bad input raises
:class:`captcha_tui.options.UsageError`, which the command line prints as ``captcha-tui: error: …``.
"""

from __future__ import annotations

import argparse

from . import accuracy, fine_tune, label, onnx, speed, tui
from .common import HelpFormatter

BENCHMARKS = {
    "speed": speed,
    "accuracy": accuracy,
    "fine-tune": fine_tune,
    "onnx": onnx,
    "label": label,
    "tui": tui,
}

DESCRIPTION = """\
Measure captcha-tui on this machine; each benchmark is a subcommand with its own options
(captcha-tui bench SUBCOMMAND --help).

"The reference" is the script this project grew from: a blog article's ResNet-18 captcha trainer
(softmax + BCELoss, Adam, float32, 56x24 images). `bench speed --reference` times its recipe, rebuilt
in captcha_tui/bench/reference.py, in the same run as our presets, so that speeds compare on one machine."""


def add_bench_parser(commands) -> argparse.ArgumentParser:
    """``bench`` and its subcommands, under the command line's ``commands`` (its subparsers)."""
    bench = commands.add_parser(
        "bench",
        help="time training and prediction, accuracy on the clock, fine-tuning, ONNX, the screens",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    # No dest: a missing subcommand is then reported by its choices ({speed,accuracy,…}), not a name.
    benchmarks = bench.add_subparsers(title="benchmarks", required=True)
    for name, module in BENCHMARKS.items():
        parser = benchmarks.add_parser(
            name, help=module.SUMMARY, description=module.SUMMARY, formatter_class=HelpFormatter
        )
        module.add_arguments(parser)
        parser.set_defaults(run_benchmark=module.main)
    return bench
