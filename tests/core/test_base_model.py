"""The base model: where it is found, when it stands in for a missing run, and that it reads as claimed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import captcha_tui
from captcha_tui.cli import main
from captcha_tui.core import base_model
from captcha_tui.core import events as ev
from captcha_tui.core.base_model import base_model_path, default_model, is_base_model
from captcha_tui.core.checkpoint import load_checkpoint
from captcha_tui.core.dataset import load_dataset
from captcha_tui.core.generator import generate
from captcha_tui.core.predictor import Predictor, accuracy
from captcha_tui.core.train import TrainConfig, Trainer, resolve_init

SHIPPED = Path(captcha_tui.__file__).parent / "assets" / "base.pt"
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_base_model_ships_in_the_package_and_says_how_it_was_made():
    assert base_model_path() == SHIPPED and SHIPPED.is_file()
    assert SHIPPED.stat().st_size < 8 * 2**20  # a few MB: it goes into every wheel
    meta = load_checkpoint(SHIPPED).meta
    assert meta.spec.decoder == "ctc" and meta.spec.min_length < meta.spec.max_length
    assert "captcha-tui train" in meta.made_by and "test split" in meta.made_by


def test_the_base_model_reads_fresh_built_in_captchas_at_the_accuracy_the_readme_states(tmp_path):
    meta = load_checkpoint(SHIPPED).meta
    readme = README.read_text()
    tested = float(re.search(r"test split \([\d,]+ images\): ([\d.]+)% whole-code", meta.made_by).group(1))
    assert f"{tested:.2f}%" in readme  # the README quotes the file's own figure
    # and what it reads of the built-in default style, from its table of readers
    claimed = float(re.search(r"\| \*\*this base model\*\* \| \*\*([\d.]+)%\*\*", readme).group(1))
    # Codes it never saw (another seed than its training data), of every length it reads.
    images = tmp_path / "images"
    generate(images, 400, seed=12345, length=(meta.spec.min_length, meta.spec.max_length), workers=1)
    predictor = Predictor.load(SHIPPED)
    right, judged = accuracy(predictor.predict_paths(sorted(images.iterdir())))
    assert judged == 400
    # 400 images: a standard error of about 1 point near 96%; 4 points of slack keeps it from flaking.
    assert right / judged >= claimed / 100 - 0.04, (right, judged, claimed)


def test_a_missing_run_falls_back_to_the_base_model_and_a_run_wins_over_it(tiny_run, tmp_path):
    assert default_model(tmp_path / "no-run") == (SHIPPED, True)
    assert default_model(tiny_run) == (tiny_run / "best.pt", False)
    assert is_base_model(SHIPPED) and not is_base_model(tiny_run / "best.pt")


def test_without_a_base_model_nothing_pretends_there_is_one(tmp_path, monkeypatch):
    monkeypatch.setattr(base_model, "base_model_path", lambda: None)
    assert default_model(tmp_path) == (tmp_path / "best.pt", False)
    assert not is_base_model(SHIPPED)


def test_eval_with_no_model_and_no_run_reads_with_the_base_model_and_says_so(
    captcha_files, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # no runs/default here
    assert main(["eval", str(captcha_files[0])]) == 0
    out, err = capsys.readouterr()
    assert "base model shipped with captcha-tui" in err and str(captcha_files[0]) in out


def test_eval_names_the_missing_checkpoint_when_there_is_no_base_model_either(
    captcha_files, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(base_model, "base_model_path", lambda: None)
    assert main(["eval", str(captcha_files[0])]) == 2
    err = capsys.readouterr().err
    assert "checkpoint not found: runs/default/best.pt" in err and "train one first" in err


def test_init_base_names_the_shipped_file():
    assert resolve_init("base") == SHIPPED


def test_model_base_reads_with_the_base_model_and_a_weak_default_run_is_said(
    tiny_run, captcha_files, tmp_path, monkeypatch, capsys
):
    """`--model base` as `--init base`; and a runs/default/best.pt that read almost nothing (a run of
    300 captchas: 0.0%) is still the default, but eval says what it read and what may read better."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    shutil.copytree(tiny_run, tmp_path / "runs" / "default")
    weak = load_checkpoint(tiny_run / "best.pt").meta.val_accuracy
    assert weak < base_model.WEAK_MODEL  # one epoch of the tiny preset
    assert main(["eval", str(captcha_files[0])]) == 0
    err = capsys.readouterr().err
    assert f"note: runs/default/best.pt read {weak:.1%} of its validation split: reads little" in err
    assert "--model base may read better" in err
    assert main(["eval", "--model", "base", str(captcha_files[0])]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith(f"{captcha_files[0]}: {captcha_files[0].stem.split('-')[1]}")
    # Named explicitly, a checkpoint is used without a word; the base model itself is never called weak.
    assert main(["eval", "--model", "runs/default/best.pt", str(captcha_files[0])]) == 0
    assert capsys.readouterr().err == ""
    assert not base_model.reads_little(SHIPPED, 0.0) and base_model.reads_little(tiny_run / "best.pt", 0.0)
    monkeypatch.setattr(base_model, "base_model_path", lambda: None)
    with pytest.raises(SystemExit) as refused:  # argparse's usage error
        main(["eval", "--model", "base", str(captcha_files[0])])
    assert (
        refused.value.code == 2 and "this install of captcha-tui has no base model" in capsys.readouterr().err
    )


def test_a_fine_tune_from_the_base_model_on_codes_of_one_length_starts_where_the_base_reads(
    prepared_dataset, tmp_path, one_thread
):
    """The base model reads codes of 4–6; fine-tuned on codes of 4 (the common case) it rebuilt its output
    layer for "max length 6 ≠ 4", and read 45% after an epoch at a learning rate of 1e-9, against the
    base's 95%. Now every layer is copied: at that rate the epoch's validation is the base's own."""
    events: list = []
    config = TrainConfig(
        data=prepared_dataset,
        out=tmp_path / "ft",
        init="base",
        epochs=1,
        lr=1e-9,
        augment=False,
        device="cpu",
    )
    result = Trainer(config, events.append).run()
    assert isinstance(result, ev.Finished), getattr(result, "message", "")
    notice = next(e.message for e in events if isinstance(e, ev.Notice) and "fine-tuning" in e.message)
    assert "rebuilt" not in notice, notice
    data = load_dataset(prepared_dataset)
    read = Predictor.load(SHIPPED).predict_arrays(data.images["val"])
    base = sum(
        p.code == data.spec.decode(row) for p, row in zip(read, data.labels["val"], strict=True)
    ) / len(read)
    assert base >= 0.8 and result.best_val_accuracy >= base - 0.1, (base, result.best_val_accuracy)
