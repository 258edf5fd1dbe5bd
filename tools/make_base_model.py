"""Write the base model shipped in the package (``captcha_tui/assets/base.pt``) from a finished run.

The base is made by the commands of :data:`COMMANDS` (the README gives the same), ending with
``python -m tools.make_base_model runs/base3``. Each run after the first goes on from the one before on
captchas none of them has seen (fresh seeds, so its test split is new to every run), its one-cycle schedule
peaking at a third of the first's learning rate (a fine-tune's). The third run's style-mix captchas are
drawn at fixed sizes that ``prepare``'s resize to 120x50 squeezes or stretches: lettering proportions the
mix alone never draws, and which other generators do (the ``captcha`` package's tall, narrow glyphs).

Only the best weights (in half precision: half the size, and reading as well, as the test that scores it
shows) and the metadata are kept; the optimizer state and the history are dropped. The metadata's
``made_by`` records the commands, the machine, the training time and the test score, read from the run's
``train.log``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

import captcha_tui
from captcha_tui.core.checkpoint import load_checkpoint, save_checkpoint
from captcha_tui.core.devices import cpu_name

ASSET = Path(__file__).resolve().parents[1] / "captcha_tui" / "assets" / "base.pt"
# What made the base, in order; made_by adds the last run's time and machine (the earlier runs' are noted here).
COMMANDS = "; ".join(
    (
        "captcha-tui generate --style mix --count 40000 --seed 101 --out data/base-images/mix",
        "captcha-tui generate --style mix --count 60000 --seed 103 --out data/base-images/mix2",
        "captcha-tui generate --length 4-6 --count 20000 --seed 102 --out data/base-images/default",
        "captcha-tui generate --length 4-6 --count 40000 --seed 104 --out data/base-images/default2",
        "captcha-tui prepare data/base-images --out data/base-set",
        "captcha-tui train --headless --data data/base-set --out runs/base --preset crnn-fast --device cpu "
        "--epochs 1000 --train-images 900000 (49 min)",
        "captcha-tui generate --style mix --count 100000 --seed 105 --out data/base-images2/mix3",
        "captcha-tui generate --length 4-6 --count 60000 --seed 106 --out data/base-images2/default3",
        "captcha-tui prepare data/base-images2 --out data/base-set2",
        "captcha-tui train --headless --data data/base-set2 --out runs/base2 --init runs/base/best.pt "
        "--device cpu --epochs 1000 --train-images 1000000 (44 min)",
        "captcha-tui generate --style mix --count 25000 --seed 107 --size 240x50 --out data/base-images3/mix-240x50",
        "captcha-tui generate --style mix --count 25000 --seed 108 --size 200x50 --out data/base-images3/mix-200x50",
        "captcha-tui generate --style mix --count 15000 --seed 109 --size 100x70 --out data/base-images3/mix-100x70",
        "captcha-tui generate --style mix --count 20000 --seed 110 --out data/base-images3/mix",
        "captcha-tui generate --length 4-6 --count 60000 --seed 111 --out data/base-images3/default",
        "captcha-tui prepare data/base-images3 --out data/base-set3 --size 120x50",
        "captcha-tui train --headless --data data/base-set3 --out runs/base3 --init runs/base2/best.pt "
        "--device cpu --epochs 1000 --train-images 500000",
    )
)
DATASET = (
    "the built-in generator: 285,000 captchas of its style mix (fonts, colours, clutter, warps and sizes "
    "drawn per image; 65,000 of them squeezed or stretched to 120x50) and 180,000 of its default style, "
    "codes of 4-6 characters, in three runs of 160,000, 160,000 and 145,000"
)


def logged(run: Path, kind: str) -> dict:
    """The last ``kind`` event of the run's train.log (one ``date time Kind {json}`` line per event)."""
    found = None
    for line in (run / "train.log").read_text(encoding="utf-8").splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] == kind:
            found = json.loads(parts[3])
    if found is None:
        raise SystemExit(f"{run / 'train.log'} has no {kind} line: is the run finished?")
    return found


def made_by(run: Path, commands: str) -> str:
    started, finished = logged(run, "RunStarted"), logged(run, "Finished")
    cer = finished.get("test_char_error_rate")
    return (
        f"{commands} (captcha-tui {captcha_tui.__version__}, torch {torch.__version__}, Python "
        f"{platform.python_version()}) on {cpu_name()}, {torch.get_num_threads()} threads, "
        f"{started['device']}, amp {'on' if started['amp'] else 'off'}: {finished['images_seen']:,} training images "
        f"({finished['images_seen'] / started['train_count']:.1f} epochs of {started['train_count']:,}) in "
        f"{finished['elapsed_s'] / 60:.0f} min; test split "
        f"({started['test_count']:,} images): {finished['test_accuracy']:.2%} whole-code"
        + (f", character error rate {cer:.2%}" if cer is not None else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the finished run folder (best.pt, train.log)")
    parser.add_argument("--commands", default=COMMANDS, help="what made the run, as the README gives it")
    parser.add_argument("--dataset", default=DATASET, help="what it was trained on, in words")
    parser.add_argument("--out", type=Path, default=ASSET)
    args = parser.parse_args()
    made = made_by(args.run, args.commands)
    path = write_base(args.run, args.out, made, args.dataset)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)\n  made by: {made}")


def write_base(run: Path, out: Path, made: str, dataset: str) -> Path:
    """The run's best weights in half precision with ``made`` (:func:`made_by`) and ``dataset`` in its
    metadata, at ``out`` (written atomically)."""
    checkpoint = load_checkpoint(run / "best.pt")
    meta = checkpoint.meta.to_dict()
    meta["made_by"] = made
    meta["dataset"] = dataset
    weights = {k: v.half() if v.is_floating_point() else v for k, v in checkpoint.model.items()}
    return save_checkpoint(out, {"meta": meta, "model": weights})


if __name__ == "__main__":
    main()
