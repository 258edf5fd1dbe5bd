"""Score checkpoints out of the box on captchas they were not trained on, beside ddddocr's stock model.

    PYTHONPATH=DIR_WITH_captcha_AND_ddddocr python -m tools.compare_readers MODEL [MODEL …] [--count 1000]

Three sets, each drawn afresh under a fixed seed: the built-in generator's default style (4–6 characters,
seed 777), and the PyPI ``captcha`` package's style with codes of 4 characters and of 4–6 (seeds 2 and 3,
as ``bench fine-tune`` draws them). ``captcha`` and ``ddddocr`` are for this comparison only (install them
into a folder of their own: ``pip install --target DIR captcha ddddocr``); captcha-tui needs neither.
Prints one JSON object: whole-code accuracy per reader and set, and by length.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

from captcha_tui.bench.fine_tune import FineTuneBenchError, draw_other_style
from captcha_tui.core.generator import DEFAULT_CHARSET, generate
from captcha_tui.core.labels import label_from_name
from captcha_tui.core.predictor import Predictor


def _score(pairs: list[tuple[str, str | None]]) -> dict:
    by_length: dict[int, list[bool]] = collections.defaultdict(list)
    for truth, read in pairs:
        by_length[len(truth)].append(read is not None and read.lower() == truth.lower())
    hits = [h for v in by_length.values() for h in v]
    return {
        "accuracy": round(sum(hits) / len(hits), 4),
        "count": len(hits),
        "by_length": {str(n): round(sum(v) / len(v), 4) for n, v in sorted(by_length.items())},
    }


def compare(models: list[str], count: int, ddddocr: bool = False) -> dict:
    """Whole-code accuracy of each checkpoint (and of ddddocr's stock model) on the three sets; the
    ``captcha`` package's two are left out, and said so under "skipped", where it is not installed."""
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp:
        work = Path(tmp)
        sets = {
            "builtin_4_6": sorted(
                generate(work / "builtin", count, seed=777, length=(4, 6)).out_dir.glob("*.png")
            )
        }
        report: dict = {}
        try:
            sets["captcha_pkg_4"] = draw_other_style(work / "pkg4", count, 2, DEFAULT_CHARSET, (4, 4))
            sets["captcha_pkg_4_6"] = draw_other_style(work / "pkg46", count, 3, DEFAULT_CHARSET, (4, 6))
        except FineTuneBenchError:  # the package is missing
            report["skipped"] = (
                "the captcha package's two sets: pip install captcha (for this comparison only)"
            )
        truth = {name: [label_from_name(p.name) for p in files] for name, files in sets.items()}
        for model in models:
            if model == "base":
                from captcha_tui.core.base_model import base_model_path

                model = str(base_model_path())
            reader = Predictor.load(model)
            report[model] = {}
            for name, files in sets.items():
                results = reader.predict_paths(files)
                reads = [r.prediction.code if r.prediction else None for r in results]
                report[model][name] = _score(list(zip(truth[name], reads, strict=True)))
        if ddddocr:
            import ddddocr as dddd

            ocr = dddd.DdddOcr(show_ad=False)
            report["ddddocr"] = {
                name: _score(
                    [(t, ocr.classification(p.read_bytes())) for t, p in zip(truth[name], files, strict=True)]
                )
                for name, files in sets.items()
            }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "models", nargs="+", help="checkpoints or ONNX files ('base': the shipped base model)"
    )
    parser.add_argument("--count", type=int, default=1000, help="captchas in each set")
    parser.add_argument("--no-ddddocr", action="store_true", help="leave ddddocr out")
    args = parser.parse_args(argv)
    print(json.dumps(compare(args.models, args.count, ddddocr=not args.no_ddddocr), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
