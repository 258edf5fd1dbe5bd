"""tools.train_base: the whole recipe at a tiny scale, on the CPU: captchas drawn, packed, a real run, the
candidate written beside them (the shipped asset untouched) and scored with the shipped base."""

from __future__ import annotations

import hashlib
import json

import torch

from captcha_tui.core.base_model import base_model_path
from captcha_tui.core.checkpoint import load_checkpoint
from captcha_tui.core.predictor import Predictor
from tools import train_base


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_command_makes_a_scored_base_candidate_and_leaves_the_asset_alone(tmp_path, capsys, one_thread):
    asset = base_model_path()
    before = _digest(asset) if asset else None
    work = tmp_path / "work"
    code = train_base.main(
        [str(work), "--device", "cpu", "--preset", "crnn-tiny", "--scale", "0.002", "--train-images", "300"]
        + ["--workers", "1", "--count", "20"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    # Each step said as the command it is, in the recipe's order.
    said = [line[2:] for line in out.splitlines() if line.startswith("$ ")]
    assert [line.split()[1] for line in said] == ["generate"] * len(train_base.RECIPE) + ["prepare", "train"]
    assert "--style mix --size 240x50 --seed 202 --count 80" in said[1]

    stored = torch.load(work / "base.pt", weights_only=True)["model"]  # as written: loading makes it float32
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    made_by = load_checkpoint(work / "base.pt").meta.to_dict()["made_by"]
    assert said[0] in made_by and "--preset crnn-tiny --device cpu" in made_by
    some = sorted((work / "images" / "default").glob("*.png"))[:3]
    assert len(Predictor.load(work / "base.pt").predict_paths(some)) == 3

    report = json.loads((work / "compare.json").read_text())
    for model in (str(work / "base.pt"), str(asset)):
        assert report[model]["builtin_4_6"]["count"] == 20
    assert ("captcha_pkg_4" in report[str(asset)]) != ("skipped" in report)  # scored, or said why not
    if asset:
        assert _digest(asset) == before


def test_a_folder_with_something_in_it_is_refused_untouched(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep")
    assert train_base.main([str(tmp_path), "--device", "cpu", "--scale", "0.001"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
