"""tools.train_base: the whole recipe at a tiny scale, on the CPU: captchas drawn, packed, a real run, the
candidate written beside them (the shipped asset untouched) and scored with the shipped base."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import torch

from captcha_tui.core.base_model import base_model_path
from captcha_tui.core.checkpoint import load_checkpoint
from captcha_tui.core.predictor import Predictor
from captcha_tui.core.train.launch import EXIT_INTERRUPTED
from tests.helpers import history_rows
from tools import train_base

REPO = Path(__file__).resolve().parents[2]


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


def test_an_interrupted_run_goes_on_where_it_stopped_with_resume(
    tmp_path, cli_env, capsys, monkeypatch, one_thread
):
    """A real SIGINT mid-training, then ``--resume`` in another process: no captcha drawn or packed again,
    the run goes on from its last.pt (its epochs numbered on), and the base is written from the whole run."""
    work = tmp_path / "work"
    first = [sys.executable, "-m", "tools.train_base", str(work), "--device", "cpu", "--preset", "crnn-tiny"]
    first += ["--scale", "0.002", "--train-images", "200000", "--workers", "1"]  # far more than it will see
    child = subprocess.Popen(
        first, cwd=REPO, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    timer = threading.Timer(300, child.kill)  # a hung child fails the test instead of hanging it
    timer.start()
    try:
        output = ""
        for line in child.stdout:
            output += line
            if line.startswith("epoch 2:"):
                child.send_signal(signal.SIGINT)
        code = child.wait()
    finally:
        timer.cancel()
        child.kill()
        child.stdout.close()
    assert code == EXIT_INTERRUPTED, output
    assert f"go on with: python -m tools.train_base {work} --resume" in output
    assert not (work / "base.pt").exists()
    epochs_before = [row["epoch"] for row in history_rows(work / "run")]
    seen_before = load_checkpoint(work / "run" / "last.pt").trainer["images_seen"]
    drawn = {p: p.stat().st_mtime_ns for p in (work / "images").rglob("*.png")}
    packed = (work / "set" / "manifest.json").stat().st_mtime_ns

    # The recipe comes from the first sitting; the time limit is this sitting's own. Run from another
    # folder, with WORK relative to it, and a line of steps.log cut short by a kill.
    with open(work / train_base.STEPS_LOG, "a", encoding="utf-8") as log:
        log.write("captcha-tui train --out\n")
    monkeypatch.chdir(tmp_path)
    code = train_base.main(["work", "--resume", "--device", "cpu", "--time-limit", "3", "--count", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("done before: captcha-tui generate") == len(train_base.RECIPE)
    assert "done before: captcha-tui prepare" in out
    assert {p: p.stat().st_mtime_ns for p in (work / "images").rglob("*.png")} == drawn
    assert (work / "set" / "manifest.json").stat().st_mtime_ns == packed
    resumed = [line for line in out.splitlines() if line.startswith("$ captcha-tui train")]
    assert len(resumed) == 1 and resumed[0].endswith("--resume") and "--preset crnn-tiny" in resumed[0]
    # On from where it stopped (in the epoch after the last one finished), none trained twice; three
    # seconds may end inside that epoch on a busy machine, so the images seen say it trained.
    assert f"resumed from {work / 'run' / 'last.pt'} at epoch {len(epochs_before) + 1}" in out, out
    assert load_checkpoint(work / "run" / "last.pt").trainer["images_seen"] > seen_before
    epochs = [row["epoch"] for row in history_rows(work / "run")]
    assert epochs[: len(epochs_before)] == epochs_before and epochs == list(range(1, len(epochs) + 1))
    made_by = load_checkpoint(work / "base.pt").meta.to_dict()["made_by"]
    assert "--resume" in made_by and "--scale" not in made_by


def test_resume_refuses_another_recipe_or_a_folder_it_did_not_make(tmp_path, capsys):
    assert train_base.main([str(tmp_path / "none"), "--resume", "--device", "cpu"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    work = tmp_path / "work"
    work.mkdir()
    (work / train_base.SAVED).write_text(
        '{"scale": 0.5, "preset": "crnn", "train_images": 9, "batch_size": null}'
    )
    assert train_base.main([str(work), "--resume", "--device", "cpu", "--preset", "crnn-fast"]) == 2
    assert "--preset crnn-fast differs from this run's crnn" in capsys.readouterr().err
    assert [p.name for p in work.iterdir()] == [train_base.SAVED]  # nothing drawn
