"""The command line, driven through ``main()`` on real files."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from captcha_tui.cli import _train_config, build_parser, main
from captcha_tui.core import events as ev
from captcha_tui.core.model import PRESETS
from captcha_tui.core.train import TrainConfig, Trainer
from captcha_tui.options import train_fields
from tests.helpers import history_rows


def test_generate_prepare_train_eval_from_the_command_line(tmp_path, capsys):
    images, data, run = tmp_path / "img", tmp_path / "data", tmp_path / "run"
    assert main(["generate", "--count", "150", "--seed", "3", "--out", str(images), "--workers", "1"]) == 0
    assert len(list(images.glob("*.png"))) == 150
    assert main(["prepare", str(images), "--out", str(data), "--workers", "1", "--size", "60x25"]) == 0
    out = capsys.readouterr().out
    assert "120 train / 15 val / 15 test" in out
    assert json.loads((data / "manifest.json").read_text())["spec"]["image_size"] == [60, 25]
    code = main(
        [
            "--epochs",  # train options work before the command as well as after it
            "1",
            "--label-smoothing",
            "0",
            "train",
            "--headless",
            "--data",
            str(data),
            "--out",
            str(run),
            "--preset",
            "tiny",
            "--device",
            "cpu",
            "--no-amp",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "epoch 1: train loss" in out and "test accuracy" in out and "\r" not in out
    assert "amp off" in out
    saved = json.loads((run / "config.json").read_text())
    assert saved["label_smoothing"] == 0.0 and saved["epochs"] == 1
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


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "--headless", "--device", "cuda:7"], "cuda:7"),
        (["train", "--headless", "--device", "banana"], "unknown device"),
        (["train", "--headless", "--batch-size", "0", "--device", "cpu"], "batch size"),
        (["train", "--headless", "--device", "cpu", "--data", "/nonexistent/data"], "captcha-tui prepare"),
        (["eval", "--model", "/nonexistent/best.pt", "x.png"], "not found"),
        (["prepare", "/nonexistent/images"], "not found"),
    ],
)
def test_bad_input_exits_2_with_advice(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("captcha-tui: error:") and words in err


# ---- the train options: declared once, on TrainConfig ---------------------------------------------------

# A value unlike the default for every option (a new option fails the coverage check until it is added).
OPTION_SAMPLES = {
    "data": (["--data", "elsewhere"], Path("elsewhere")),
    "out": (["--out", "runs/other"], Path("runs/other")),
    "preset": (["--preset", "tiny"], "tiny"),
    "device": (["--device", "cpu"], "cpu"),
    "epochs": (["--epochs", "3"], 3),
    "batch_size": (["--batch-size", "7"], 7),
    "lr": (["--lr", "0.02"], 0.02),
    "augment": (["--no-augment"], False),
    "label_smoothing": (["--label-smoothing", "0"], 0.0),
    "schedule": (["--schedule", "constant"], "constant"),
    "patience": (["--patience", "97"], 97),
    "amp": (["--no-amp"], False),
    "resume": (["--resume"], True),
    "seed": (["--seed", "5"], 5),
    "target_accuracy": (["--target", "0.9"], 0.9),
    "time_limit_s": (["--time-limit", "60"], 60.0),
    "train_images": (["--train-images", "150000"], 150_000),
    "threads": (["--threads", "2"], 2),
    "init": (["--init", "runs/x/best.pt"], Path("runs/x/best.pt")),
    "dist_timeout_s": (["--dist-timeout", "30"], 30.0),
    "log_dir": (["--log-dir", "runs/tb"], Path("runs/tb")),
    "unlabelled": (["--unlabelled", "mine/all"], Path("mine/all")),
    "pseudo_threshold": (["--pseudo-threshold", "0.8"], 0.8),
    "generated": (["--generated", "500"], 500),
}


def _config(argv: list[str], config_type=TrainConfig) -> TrainConfig:
    return _train_config(build_parser(config_type).parse_args(argv), config_type)


def test_every_train_option_reads_the_same_before_and_after_the_command():
    assert set(OPTION_SAMPLES) == {f.name for f, _, _ in train_fields()}
    default = TrainConfig()
    for name, (words, value) in OPTION_SAMPLES.items():
        after = _config(["train", "--headless", *words])
        assert _config([*words, "train", "--headless"]) == after, name
        assert _config(words) == after, name  # the dashboard (no command) takes them too
        assert (
            getattr(after, name)
            == type(getattr(default, name, value) or value)(value)
            != getattr(default, name)
        ), name
        assert dataclasses.replace(after, **{name: getattr(default, name)}) == default, name
    groups = [
        words for name, (words, _) in OPTION_SAMPLES.items() if name != "init"
    ]  # init + resume: refused
    everything = [word for words in groups for word in words]
    half = sum(len(words) for words in groups[: len(groups) // 2])  # between two options
    mixed = _config([*everything[:half], "train", *everything[half:]])
    assert mixed == _config(["train", *everything]) == _config([*everything, "train"])
    assert _config(["--amp", "train"]).amp is True and _config(["train", "--amp"]).amp is True


def test_the_cli_defaults_are_trainconfigs():
    assert _config(["train"]) == _config([]) == TrainConfig()
    declared = {f.name: f for f in dataclasses.fields(TrainConfig)}["epochs"]
    changed = declared.default + 11

    @dataclasses.dataclass
    class Tuned(TrainConfig):  # as if someone changed the default in train/config.py
        epochs: int = dataclasses.field(default=changed, metadata=declared.metadata)

    assert _config(["train"], Tuned).epochs == changed
    help_text = " ".join(build_parser(Tuned).format_help().split())
    assert f"--epochs EPOCHS {declared.metadata['help']} (default: {changed})" in help_text


def test_each_train_option_is_described_once_from_its_field(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping: each help text on one line
    texts = {}
    for argv in (["--help"], ["train", "--help"], ["bench", "speed", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        texts[argv[0]] = capsys.readouterr().out
    for f, flag, _ in train_fields():
        described = f.metadata["help"]
        if f.default is not None and not isinstance(f.default, bool):
            described += f" (default: {f.default})"
        for where in ("--help", "train"):
            assert texts[where].count(f"{described}\n") == 1, (where, flag)
    amp_help = {f.name: f for f in dataclasses.fields(TrainConfig)}["amp"].metadata["help"]
    assert amp_help in texts["bench"]  # bench's --amp/--no-amp: the same words
    for flag in (
        "--data", "--out", "--device", "--preset {" + ",".join(sorted(PRESETS)) + "}", "--epochs", "--batch-size", "--lr",
        "--patience", "--schedule {onecycle,constant}", "--amp, --no-amp", "--no-augment", "--label-smoothing X",
        "--resume", "--seed", "--target TARGET", "--time-limit SECONDS|none", "--threads",
    ):  # fmt: skip
        assert f"  {flag}" in texts["train"], flag


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--device", "cuda", "eval", "x.png"], "--device before `eval`: a training option"),
        (["--out", "x", "--seed", "3", "prepare", "y"], "--out, --seed before `prepare`: training options"),
    ],
)
def test_train_options_before_another_command_are_refused(argv, words, capsys):
    assert main(argv) == 2
    assert words in capsys.readouterr().err


# ---- prepare: nothing replaced without --force ----------------------------------------------------------


def test_prepare_over_a_dataset_needs_force_and_says_what_it_would_replace(captcha_files, tmp_path, capsys):
    first, second, data = tmp_path / "first", tmp_path / "second", tmp_path / "data"
    for folder, files in ((first, captcha_files[:10]), (second / "old", captcha_files[10:14])):
        folder.mkdir(parents=True)
        for f in files:
            (folder / f.name).write_bytes(f.read_bytes())
    (second / captcha_files[20].name).write_bytes(captcha_files[20].read_bytes())
    assert main(["prepare", str(first), "--out", str(data), "--workers", "1"]) == 0
    assert f"images from 1 folder: {first} (10)" in capsys.readouterr().out
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    assert main(["prepare", str(second), "--out", str(data), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{data} already holds a dataset (10 images from {first.resolve()}" in err
    assert "nothing was changed: add --force to replace it" in err
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before
    assert main(["prepare", str(second), "--out", str(data), "--workers", "1", "--force"]) == 0
    assert f"images from 2 folders: {second / 'old'} (4), {second} (1)" in capsys.readouterr().out


def test_describe_folders_names_the_fullest_and_sums_the_rest():
    from captcha_tui.cli import describe_folders

    folders = {Path(f"d{i}"): 100 - i for i in range(8)}
    assert describe_folders(folders, shown=2) == "images from 8 folders: d0 (100), d1 (99), and 6 more (573)"


def test_prepare_help_says_subfolders_are_searched(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    out = capsys.readouterr().out
    assert "every subfolder below it is searched too" in out and "--force" in out


def test_every_error_line_names_the_program(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "nothere.png"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == ["captcha-tui: error: nothere.png: no such file or folder"]


def test_the_preset_help_says_what_train_picks(monkeypatch):
    monkeypatch.setenv("COLUMNS", "500")  # argparse wraps at the terminal's width, mid-name at a hyphen
    # Written from the one rule that picks (issue 25: the help named crnn where train picked crnn-fast).
    from captcha_tui.core.generator import DEFAULT_CHARSET
    from captcha_tui.core.model import default_preset, default_preset_rule
    from captcha_tui.core.spec import CodeSpec

    one = default_preset(CodeSpec.fixed(DEFAULT_CHARSET, 4, (120, 50)))
    several = default_preset(CodeSpec(DEFAULT_CHARSET, 4, 8, (120, 50), decoder="ctc"))
    longer = default_preset(CodeSpec(DEFAULT_CHARSET, 4, 9, (120, 50), decoder="ctc"))
    rule = f"{one} for codes of one length, {several} for several, {longer} for codes longer than 8"
    assert default_preset_rule() == rule
    assert (one, several, longer) == ("fast", "crnn-fast", "crnn")
    assert rule in " ".join(_help_of("train").split())


def _help_of(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command].format_help()


def test_generate_style_mix_draws_many_sizes_that_prepare_packs(tmp_path, capsys):
    images, data = tmp_path / "img", tmp_path / "data"
    argv = [
        "generate",
        "--style",
        "mix",
        "--count",
        "40",
        "--seed",
        "2",
        "--out",
        str(images),
        "--workers",
        "1",
    ]
    assert main(argv) == 0
    files = sorted(images.glob("*.png"))
    assert len(files) == 40
    codes = [p.stem.split("-", 1)[1] for p in files]
    assert {len(c) for c in codes} == {4, 5, 6}  # the mix's default lengths, 4-6
    assert any(c.isupper() for c in "".join(codes))  # and its default case, mixed
    # Images come in several sizes; prepare resizes them to one and says so.
    assert main(["prepare", str(images), "--out", str(data), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "resized" in out and "32 train / 4 val / 4 test" in out
    # --length, --case and --size still rule when given.
    again = tmp_path / "again"
    argv = ["generate", "--style", "mix", "--count", "6", "--out", str(again), "--workers", "1"]
    assert main([*argv, "--length", "5", "--case", "upper", "--size", "150x50"]) == 0
    assert all(len(p.stem.split("-", 1)[1]) == 5 for p in again.glob("*.png"))
    assert all(p.stem.split("-", 1)[1].upper() == p.stem.split("-", 1)[1] for p in again.glob("*.png"))


def test_generate_refuses_an_unknown_style(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--style", "fancy", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert "invalid choice: 'fancy'" in capsys.readouterr().err


def test_runs_prints_each_runs_figures_without_a_terminal(three_runs, tmp_path, capsys):
    from captcha_tui.words import percent

    root, finished = three_runs
    assert main(["runs", str(root)]) == 0  # pytest's stdout is no terminal: a table, not the screen
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "run",
        "preset",
        "data",
        "epochs",
        "best",
        "val",
        "at",
        "test",
        "images",
        "time",
        "ended",
    ]
    assert [row.split()[0] for row in rows] == ["a-tiny", "b-ctc", "c-tiny-lr"]
    for row, (name, done) in zip(rows, finished.items(), strict=True):
        words = row.split()
        assert words[3:8] == [
            str(done.epochs_run),
            percent(done.best_val_accuracy),
            str(done.best_epoch),
            percent(done.test_accuracy),
            f"{done.images_seen:,}",
        ], name
        assert row.endswith("reached the last epoch")

    broken = tmp_path / "runs" / "broken"
    shutil.copytree(root / "a-tiny", broken)
    (broken / "config.json").unlink()
    assert main(["runs", str(broken.parent)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("broken") and out[1].endswith("⚠") and out[2].strip() == "no config.json"

    for argv, words in (
        (["runs", str(tmp_path / "missing")], "no such folder"),
        (["runs", str(broken / "train.log")], "not a folder"),
    ):
        assert main(argv) == 2
        assert words in capsys.readouterr().err


def test_every_option_of_every_command_says_what_it_does():
    """`captcha-tui COMMAND --help` lists no bare option (generate --seed, prepare --workers had none)."""
    import argparse

    from captcha_tui.cli import build_parser

    def parsers(parser, name):
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from parsers(sub, f"{name} {sub_name}")

    bare = [
        f"{name} {'/'.join(action.option_strings)}"
        for name, parser in parsers(build_parser(), "captcha-tui")
        for action in parser._actions
        if action.option_strings and action.help in (None, "") and action.help != argparse.SUPPRESS
    ]
    assert bare == []


def test_eval_prints_every_image_of_a_folder_whose_names_are_not_utf8(captcha_files, tmp_path, cli_env):
    """A file name of other bytes (Latin-1, say) ended `eval` mid-way with UnicodeEncodeError on a strict
    UTF-8 stdout, and made --json lines that were not UTF-8."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "odd"
    folder.mkdir()
    code = captcha_files[0].stem.split("-")[1]
    odd = os.fsdecode(b"caf\xe9-" + code.encode() + b".png")
    shutil.copyfile(captcha_files[0], folder / odd)
    shutil.copyfile(captcha_files[1], folder / captcha_files[1].name)
    env = dict(cli_env, PYTHONIOENCODING="utf-8")  # strict, as most terminals' locales are
    command = [sys.executable, "-m", "captcha_tui.cli", "eval", "--model", "base", str(folder)]
    text = subprocess.run(command, capture_output=True, env=env, timeout=120)
    assert text.returncode == 0, text.stderr.decode()
    lines = text.stdout.decode("utf-8").splitlines()  # valid UTF-8 throughout
    assert len([line for line in lines if ".png: " in line]) == 2
    assert any("caf\\xe9-" in line for line in lines)
    as_json = subprocess.run([*command, "--json"], capture_output=True, env=env, timeout=120)
    assert as_json.returncode == 0, as_json.stderr.decode()
    rows = [json.loads(line) for line in as_json.stdout.decode("utf-8").splitlines()]
    assert sorted(os.fsencode(row["path"]) for row in rows)[1] == os.fsencode(str(folder / odd))
    assert all(row["error"] is None for row in rows)


def test_eval_fails_when_a_path_is_missing_though_it_reads_the_rest(captcha_files, tmp_path, capsys):
    """As cat does: the images that are there are read and printed, and the exit status says one was not
    (a script's mistyped path went unnoticed with 0)."""
    missing = tmp_path / "nope.png"
    assert main(["eval", "--model", "base", str(missing), str(captcha_files[0])]) == 1
    out, err = capsys.readouterr()
    assert f"{captcha_files[0]}: " in out and str(missing) in err
    broken = tmp_path / "00001-abcd.png"
    broken.write_text("not an image")
    assert main(["eval", "--model", "base", str(broken), str(captcha_files[0])]) == 1
    assert main(["eval", "--model", "base", str(captcha_files[0])]) == 0


def test_resume_carries_on_with_the_runs_own_data_and_epoch_budget(
    prepared_dataset, tmp_path, monkeypatch, capsys
):
    """`train --resume --out runs/c`, as a stopped run's last line prints it, failed with "no dataset at
    data/dataset"; given --data, it changed the run's 3-epoch budget to the default 15."""
    run = tmp_path / "runs" / "c"
    config = TrainConfig(
        data=prepared_dataset, out=run, preset="tiny", epochs=3, device="cpu", threads=1, time_limit_s=600.0
    )
    trainer = Trainer(config)
    trainer._step_hook = lambda epoch, batch, size: epoch == 2 and trainer.request_stop()
    assert isinstance(trainer.run(), ev.Finished)
    monkeypatch.chdir(tmp_path)  # no data/dataset here: the run's own data or nothing
    assert main(["train", "--headless", "--resume", "--out", str(run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "--epochs 3 is the run's total: up to 2 more epochs" in out, out
    assert [row["epoch"] for row in history_rows(run)] == [1, 2, 3]
    saved = json.loads((run / "config.json").read_text())
    assert saved["epochs"] == 3 and saved["data"] == str(prepared_dataset) and saved["preset"] == "tiny"
    # Its time limit is this sitting's too (it was dropped: the patience it had off came on).
    assert saved["time_limit_s"] == 600.0
    # What the line says wins: one more epoch on the budget, and a time limit of its own.
    argv = ["train", "--headless", "--resume", "--out", str(run), "--device", "cpu", "--epochs", "4"]
    assert main([*argv, "--time-limit", "500"]) == 0
    assert [row["epoch"] for row in history_rows(run)] == [1, 2, 3, 4]
    assert json.loads((run / "config.json").read_text())["time_limit_s"] == 500.0
    # `--time-limit none` lifts it.
    argv[-1] = "5"
    assert main([*argv, "--time-limit", "none"]) == 0
    assert json.loads((run / "config.json").read_text())["time_limit_s"] is None


@pytest.mark.parametrize("seconds", ["0", "-5", "inf", "nan"])
def test_a_time_limit_that_allows_no_training_is_refused(prepared_dataset, tmp_path, capsys, seconds):
    """--time-limit 0 ran no step, said "reached the time limit" and left an empty run folder behind."""
    args = ["train", "--headless", "--data", str(prepared_dataset), "--out", str(tmp_path / "run")]
    assert main([*args, "--time-limit", seconds]) == 2
    assert "--time-limit must be a positive number of seconds" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_image_folder_given_as_data_is_named_as_one(captcha_dir, tmp_path, capsys):
    """It said "make one with captcha-tui prepare IMAGE_DIR --out imgs": into the user's image folder."""
    assert main(["train", "--headless", "--data", str(captcha_dir), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{captcha_dir} holds images, not a packed dataset" in err
    assert f"captcha-tui prepare {captcha_dir} --out DATASET_DIR" in err


def test_eval_scores_a_folder_by_its_labels_csv(captcha_files, tmp_path, capsys):
    """A folder the label screen answered (names without codes, a labels.csv): eval read it but scored
    nothing, so a fine-tune could not be judged on the user's own captchas."""
    folder = tmp_path / "mine"
    folder.mkdir()
    rows = []
    for i, source in enumerate(captcha_files[:6]):
        shutil.copy(source, folder / f"shot{i}.png")
        rows.append(f"shot{i}.png,{source.stem.split('-')[1] if i else 'zzzz'}")  # the first answer wrong
    # As prepare reads the file: a later row wins (an undone answer leaves the image unlabelled), and
    # an image it does not list is unlabelled whatever its name says.
    rows.append("shot5.png,,undone")
    shutil.copy(captcha_files[6], folder / f"cap-{captcha_files[6].stem.split('-')[1]}.png")
    (folder / "labels.csv").write_text("file,label,note\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert main(["eval", "--model", "base", "--json", str(folder)]) == 0
    records = {Path(r["path"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    codes = [f.stem.split("-")[1] for f in captcha_files[:6]]
    assert [records[f"shot{i}.png"]["label"] for i in range(6)] == ["zzzz", *codes[1:5], None]
    assert records["shot0.png"]["correct"] is False
    assert records[f"cap-{captcha_files[6].stem.split('-')[1]}.png"]["label"] is None
    # A path or a glob into the folder is scored by its file too.
    assert main(["eval", "--model", "base", "--json", str(folder / "shot1.png"), str(folder / "shot2*")]) == 0
    assert [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()] == codes[1:3]
    assert main(["eval", "--model", "base", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "✗ (label zzzz)" in out and "accuracy " in out and "/5 = " in out


def test_eval_of_only_empty_paths_is_a_usage_error(capsys):
    """`eval "$IMG"` with IMG unset printed nothing and exited 0."""
    assert main(["eval", "--model", "base", "", " "]) == 2
    assert "no image path given" in capsys.readouterr().err


def test_eval_prints_as_it_reads_and_ctrl_c_keeps_what_was_read(captcha_files, tmp_path, cli_env):
    """60,000 images printed nothing for minutes, then all at once; Ctrl+C threw every reading away."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(2000):  # eight chunks of 256
        source = captcha_files[i % len(captcha_files)]
        (folder / f"{i:05d}-{source.stem.split('-')[1]}.png").hardlink_to(source)
    command = [sys.executable, "-m", "captcha_tui.cli", "eval", "--model", "base", str(folder)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env)
    timer = threading.Timer(120, child.kill)  # a hung child fails the test instead of hanging it
    timer.start()
    try:
        first = child.stdout.readline()  # the first chunk's lines come before the rest is read
        child.send_signal(signal.SIGINT)
        rest = child.stdout.read()  # not communicate(): it reads past what readline() buffered
        err = child.stderr.read()
        child.wait(timeout=120)
    finally:
        timer.cancel()
        child.kill()
    assert first.startswith(str(folder / "00000-")), first + err
    assert child.returncode == 130, err
    read = int(re.search(r"interrupted after ([\d,]+) of 2,000 images", err).group(1).replace(",", ""))
    assert 1 <= read < 2000
    assert len((first + rest).splitlines()) == read + 1  # every reading, and the accuracy so far
    assert f"of the first {read:,}" in rest.splitlines()[-1]


def test_eval_and_label_list_a_scraped_captcha_saved_without_an_extension(captcha_files, tmp_path, capsys):
    from captcha_tui.core.labelling import list_images

    folder = tmp_path / "scraped"
    folder.mkdir()
    shutil.copy(captcha_files[0], folder / "captcha")
    shutil.copy(captcha_files[1], folder / "code.php")
    shutil.copy(captcha_files[2], folder / "x.png")
    (folder / "readme.txt").write_text("where these came from")
    assert [name for name, _ in list_images(folder)] == ["captcha", "code.php", "x.png"]
    assert main(["eval", "--model", "base", "--json", str(folder)]) == 0
    read = [Path(json.loads(line)["path"]).name for line in capsys.readouterr().out.splitlines()]
    assert read == ["captcha", "code.php", "x.png"]


def test_generate_into_a_folder_of_captchas_says_it_adds_to_them(tmp_path, capsys):
    """A second `generate` into the same folder mixed the two sets without a word."""
    out = tmp_path / "gen"
    argv = ["generate", "--count", "5", "--out", str(out), "--workers", "1"]
    assert main([*argv, "--seed", "1"]) == 0
    assert "already held" not in capsys.readouterr().err
    assert main([*argv, "--seed", "2"]) == 0
    assert f"note: {out} already held 5 images: these were added beside them" in capsys.readouterr().err
    assert len(list(out.glob("*.png"))) == 10


def test_eval_runs_from_a_thread_where_no_signal_handler_can_be_set(captcha_files, capsys):
    """Python lets only the main thread set a signal handler: eval's Ctrl+C handling made it fail there."""
    codes = []
    worker = threading.Thread(
        target=lambda: codes.append(main(["eval", "--model", "base", str(captcha_files[0])]))
    )
    worker.start()
    worker.join(timeout=120)
    assert codes == [0] and captcha_files[0].name in capsys.readouterr().out
