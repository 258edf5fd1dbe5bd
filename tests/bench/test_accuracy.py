"""``bench accuracy``: time to accuracy from nothing, on the clock or on a budget of training images."""

from __future__ import annotations

import json

from captcha_tui.cli import main
from captcha_tui.core.devices import resolve_amp


def test_time_to_accuracy_smoke(capsys, tmp_path):
    argv = ["bench", "accuracy", "--json", "--target", "0.99", "--time-limit", "30", "--count", "120"]
    argv += ["--device", "cpu", "--preset", "tiny", "--epochs", "1", "--keep", str(tmp_path / "kept")]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"reached", "elapsed_s", "test_accuracy", "epochs", "images_seen"} <= result.keys()
    assert result["epochs"] == 1 and result["images_seen"] > 0 and result["reached"] is False
    assert result["amp"] is resolve_amp(None, "cpu")  # the default: on where the CPU has bf16 units
    assert result["length"] == [4, 4] and result["time_limit_s"] == 30  # --length's default, parsed
    assert (tmp_path / "kept" / "best.pt").is_file()  # --keep: the run folder outlives the benchmark


def test_time_to_accuracy_on_an_image_budget_reports_each_length(capsys):
    # 300 images of 3-5 characters: 240 train, so a budget of 600 images is two and a half epochs.
    argv = ["bench", "accuracy", "--json", "--target", "0.999", "--count", "300", "--length", "3-5"]
    argv += ["--device", "cpu", "--preset", "crnn-tiny", "--train-images", "600", "--lr", "0.004"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["lr"] == 0.004 and result["preset"] == "crnn-tiny"
    assert result["reason"] == "image_budget" and result["time_limit_s"] is None
    assert 600 <= result["images_seen"] < 600 + 100  # at the first mini-batch that reaches the budget
    assert result["train_images"] == 600 and result["elapsed_s"] > 0 and result["test_accuracy"] is not None
    by_length = result["test_accuracy_by_length"]
    assert set(by_length) == {"3", "4", "5"} and all(0 <= a <= 1 for a in by_length.values())
