"""Codes of varying length end to end: generate → prepare → train a tiny CTC preset → checkpoint → eval."""

from __future__ import annotations

import json

import pytest

from captcha_tui.cli import main
from captcha_tui.core.checkpoint import load_checkpoint

from .helpers import history_rows, varying_length_run


@pytest.fixture(scope="module")
def ctc_run(tmp_path_factory):
    # Codes of several lengths pick a CTC model by themselves (crnn); tiny keeps the test quick.
    return varying_length_run(tmp_path_factory.mktemp("ctc"), "crnn-tiny", epochs=1)


def test_prepare_keeps_every_length_and_training_records_a_ctc_model(ctc_run, capsys) -> None:
    images, data, run = ctc_run
    spec = json.loads((data / "manifest.json").read_text())["spec"]
    assert (spec["min_length"], spec["max_length"], spec["decoder"]) == (3, 5, "ctc")
    meta = load_checkpoint(run / "best.pt").meta
    assert meta.preset == "crnn-tiny" and meta.spec.decoder == "ctc" and meta.spec.lengths == "3–5"
    row = history_rows(run)[0]
    assert row["val_char_accuracy"] is None and row["val_char_error_rate"] >= 0
    log = (run / "train.log").read_text()
    assert "CER" in log or row["val_char_error_rate"] is not None
    # 72 training images: the small-set peak (3e-3), not the 6e-3 a CTC preset takes on a generated set.
    assert '"learning_rate": 0.003,' in log


def test_eval_reads_exactly_the_length_asked_for(ctc_run, capsys) -> None:
    images, _, run = ctc_run
    files = sorted(images.glob("*.png"))[:6]
    for length in (3, 5):
        assert (
            main(
                ["eval", "--model", str(run / "best.pt"), "--length", str(length), "--json", *map(str, files)]
            )
            == 0
        )
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(rows) == 6 and all(len(r["code"]) == length for r in rows)
        assert all(len(r["confidences"]) == length for r in rows)


def test_eval_masks_characters_and_refuses_what_cannot_be(ctc_run, capsys) -> None:
    images, _, run = ctc_run
    files = [str(p) for p in sorted(images.glob("*.png"))[:4]]
    assert (
        main(["eval", "--model", str(run / "best.pt"), "--charset", "23", "--length", "4", "--json", *files])
        == 0
    )
    codes = [json.loads(line)["code"] for line in capsys.readouterr().out.splitlines()]
    assert all(len(c) == 4 and set(c) <= set("23") for c in codes)
    assert main(["eval", "--model", str(run / "best.pt"), "--length", "99", *files]) == 2
    assert "at most 30 characters" in capsys.readouterr().err
    assert main(["eval", "--model", str(run / "best.pt"), "--charset", "01!", *files]) == 2
    assert "cannot read any of '01!'" in capsys.readouterr().err


def test_a_per_position_preset_refuses_codes_of_several_lengths(ctc_run, tmp_path, capsys) -> None:
    _, data, _ = ctc_run
    code = main(["train", "--headless", "--data", str(data), "--out", str(tmp_path), "--preset", "tiny"])
    assert code == 2  # a usage error: the command has to change
    err = capsys.readouterr().err
    assert err.startswith("captcha-tui: error: ") and "codes of 3–5 characters" in err
    assert not (tmp_path / "error.log").exists()
