"""Codes of varying length with a slots model end to end: generate → prepare → train a tiny slots preset
→ eval with read options → export to ONNX and read it back → fine-tune from the checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from captcha_tui.cli import main
from captcha_tui.core.checkpoint import load_checkpoint
from captcha_tui.core.decoding import ReadOptions
from captcha_tui.core.images import load_image
from captcha_tui.core.predictor import Predictor

from .helpers import history_rows, varying_length_run

TRAIN = ["--headless", "--batch-size", "24", "--threads", "1"]


@pytest.fixture(scope="module")
def slots_run(tmp_path_factory):
    return varying_length_run(tmp_path_factory.mktemp("slots"), "slots-tiny", epochs=2)


def test_training_records_a_slots_model_scored_like_other_varying_length_ones(slots_run) -> None:
    _, _, run = slots_run
    meta = load_checkpoint(run / "best.pt").meta
    assert meta.preset == "slots-tiny" and meta.spec.decoder == "slots" and meta.spec.lengths == "3–5"
    rows = history_rows(run)
    assert len(rows) == 2
    assert all(r["val_char_accuracy"] is None and r["val_char_error_rate"] >= 0 for r in rows)
    assert all(np.isfinite(r["train_loss"]) for r in rows)


def test_eval_reads_exactly_the_length_and_characters_asked_for(slots_run, capsys) -> None:
    images, _, run = slots_run
    files = [str(p) for p in sorted(images.glob("*.png"))[:6]]
    for length in (3, 5):
        assert main(["eval", "--model", str(run / "best.pt"), "--length", str(length), "--json", *files]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(rows) == 6 and all(len(r["code"]) == length for r in rows)
        assert all(len(r["confidences"]) == length for r in rows)
    argv = ["eval", "--model", str(run / "best.pt"), "--charset", "23", "--length", "4", "--json", *files]
    assert main(argv) == 0
    codes = [json.loads(line)["code"] for line in capsys.readouterr().out.splitlines()]
    assert all(len(c) == 4 and set(c) <= set("23") for c in codes)
    assert main(["eval", "--model", str(run / "best.pt"), "--json", *files]) == 0
    codes = [json.loads(line)["code"] for line in capsys.readouterr().out.splitlines()]
    assert all(3 <= len(c) <= 5 for c in codes)  # no --length: one of the lengths it was trained on
    assert main(["eval", "--model", str(run / "best.pt"), "--length", "6", *files]) == 2
    assert "has 5 slots" in capsys.readouterr().err


def test_the_exported_model_reads_as_the_checkpoint_does(slots_run, tmp_path, capsys) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    images, _, run = slots_run
    out = tmp_path / "slots.onnx"
    assert main(["export", str(run / "best.pt"), "--out", str(out)]) == 0
    assert "+ 1 end) logits" in capsys.readouterr().out
    torch_reader, onnx_reader = Predictor.load(run / "best.pt"), Predictor.load(out)
    assert onnx_reader.spec == torch_reader.spec
    files = sorted(images.glob("*.png"))[:32]
    arrays = np.stack([load_image(f, torch_reader.spec.image_size) for f in files])
    expected, got = torch_reader.logits(arrays).numpy(), onnx_reader.logits(arrays).numpy()
    assert got.shape == expected.shape == (32, 5, torch_reader.spec.classes + 1)
    assert np.abs(got - expected).max() <= 1e-4
    for options in (None, ReadOptions(length=4), ReadOptions(charset="2345"), ReadOptions("23", 3)):
        mine = torch_reader.predict_arrays(arrays, options)
        theirs = onnx_reader.predict_arrays(arrays, options)
        assert [p.code for p in theirs] == [p.code for p in mine]
        assert all(
            np.allclose(a.confidences, b.confidences, atol=2e-4) for a, b in zip(theirs, mine, strict=True)
        )


def test_fine_tuning_from_a_slots_checkpoint_copies_every_layer(slots_run, tmp_path, capsys) -> None:
    _, data, run = slots_run
    out = tmp_path / "tuned"
    argv = ["train", *TRAIN, "--data", str(data), "--out", str(out), "--epochs", "1"]
    assert main([*argv, "--init", str(run / "best.pt")]) == 0  # the preset comes from the checkpoint
    log = (out / "train.log").read_text()
    assert "fine-tuning from" in log and "output layer rebuilt" not in log
    assert load_checkpoint(out / "best.pt").meta.preset == "slots-tiny"
