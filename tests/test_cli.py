"""The command line, driven through ``main()`` on real files."""

from __future__ import annotations

import json

import pytest

from captcha_tui.cli import main
from captcha_tui.core.devices import resolve_amp


def test_generate_prepare_train_eval_from_the_command_line(tmp_path, capsys):
    images, data, run = tmp_path / "img", tmp_path / "data", tmp_path / "run"
    assert main(["generate", "--count", "150", "--seed", "3", "--out", str(images), "--workers", "1"]) == 0
    assert len(list(images.glob("*.png"))) == 150
    assert main(["prepare", str(images), "--out", str(data), "--workers", "1", "--size", "60x25"]) == 0
    out = capsys.readouterr().out
    assert "120 train / 15 val / 15 test" in out
    assert json.loads((data / "manifest.json").read_text())["image_size"] == [60, 25]
    code = main(
        [
            "train",
            "--headless",
            "--data",
            str(data),
            "--out",
            str(run),
            "--preset",
            "tiny",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--no-amp",
            "--label-smoothing",
            "0",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "epoch 1: train loss" in out and "test accuracy" in out and "\r" not in out
    assert "amp off" in out
    assert json.loads((run / "config.json").read_text())["label_smoothing"] == 0.0
    assert main(["eval", "--model", str(run / "best.pt"), str(images)]) == 0
    out = capsys.readouterr().out
    assert out.count(".png: ") == 150 and "accuracy " in out and "/150 = " in out
    assert main(["eval", "--json", "--model", str(run / "best.pt"), str(sorted(images.iterdir())[0])]) == 0
    row = json.loads(capsys.readouterr().out)
    assert len(row["code"]) == 4 and len(row["confidences"]) == 4 and row["error"] is None


def test_devices_lists_the_cpu(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "CUDA available:" in out and "cpu" in out and "threads" in out


def test_bench_json_has_the_agreed_fields(capsys):
    code = main(
        [
            "bench",
            "--json",
            "--device",
            "cpu",
            "--preset",
            "tiny",
            "--images",
            "40",
            "--batch-size",
            "20",
            "--repeats",
            "1",
            "--amp",
            "--size",
            "56x24",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    row = report["results"][0]
    assert row["image_size"] == [56, 24]  # the reference's size, as asked for
    for key in ("device", "preset", "batch_size", "train_images_per_s", "predict_images_per_s"):
        assert key in row
    assert row["device"] == "cpu" and row["preset"] == "tiny" and row["batch_size"] == 20
    assert row["amp"] is True  # asked for: bf16 autocast on the CPU, whatever the default would be
    assert (
        row["train_images_per_s"] > 0 and row["predict_images_per_s"] > 0 and row["train_gflop_per_image"] > 0
    )


def test_bench_time_to_accuracy_smoke(capsys, tmp_path):
    code = main(
        [
            "bench",
            "--json",
            "--time-to-accuracy",
            "0.99",
            "--time-limit",
            "30",
            "--count",
            "120",
            "--device",
            "cpu",
            "--preset",
            "tiny",
            "--epochs",
            "1",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert {"reached", "elapsed_s", "test_accuracy", "epochs", "images_seen"} <= result.keys()
    assert result["epochs"] == 1 and result["images_seen"] > 0 and result["reached"] is False
    assert result["amp"] is resolve_amp(None, "cpu")  # the default: on where the CPU has bf16 units


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "--headless", "--device", "cuda:7"], "cuda:7"),
        (["train", "--headless", "--device", "banana"], "unknown device"),
        (["train", "--headless", "--batch-size", "0", "--device", "cpu"], "batch size"),
        (["train", "--headless", "--device", "cpu", "--data", "/nonexistent/data"], "captcha-tui prepare"),
        (["eval", "--model", "/nonexistent/best.pt", "x.png"], "not found"),
        (["prepare", "/nonexistent/images"], "not found"),
        (["bench", "--time-to-accuracy", "95"], "fraction"),
        (["bench", "--reference", "--tui"], "--reference compares training speed"),
    ],
)
def test_bad_input_exits_2_with_advice(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("captcha-tui: error:") and words in err
