"""``captcha-tui bench SUBCOMMAND``: one subcommand per benchmark, each with its own options and help."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from captcha_tui.bench import BENCHMARKS, add_bench_parser
from captcha_tui.cli import main

NAMES = ["speed", "accuracy", "fine-tune", "onnx", "label", "tui"]


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # wrapping undone: one long line


def _own_options(name: str) -> list[argparse.Action]:
    """The options ``bench NAME`` declares, from a parser built the way the command line builds it."""
    bench = add_bench_parser(argparse.ArgumentParser().add_subparsers())
    (benchmarks,) = [a for a in bench._actions if isinstance(a, argparse._SubParsersAction)]
    parser = benchmarks.choices[name]
    return [a for a in parser._actions if a.dest != "help" and a.help is not argparse.SUPPRESS]


def test_bench_without_a_subcommand_exits_2_naming_them(capsys):
    assert list(BENCHMARKS) == NAMES
    with pytest.raises(SystemExit) as exited:
        main(["bench"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "error: the following arguments are required: {" + ",".join(NAMES) + "}" in err


def test_bench_help_says_in_a_line_what_each_measures_and_what_the_reference_is(capsys):
    text = _help(["bench"], capsys)
    for name, module in BENCHMARKS.items():
        assert f"{name} {module.SUMMARY}" in text
    assert "The reference\" is the script this project grew from: a blog article's ResNet-18" in text


@pytest.mark.parametrize("name", NAMES)
def test_each_subcommand_lists_its_own_options_with_their_defaults(name, capsys):
    text = _help(["bench", name], capsys)
    options = _own_options(name)
    assert options
    for action in options:
        flag = action.option_strings[0] if action.option_strings else action.metavar
        assert f" {flag}" in text, flag
        described = " ".join(action.help.split())
        if action.choices:
            assert "{" + ",".join(action.choices) + "}" in text, flag
        if action.default is None or isinstance(action.default, bool):
            assert f"{described} (default:" not in text, flag  # no "(default: None)"
        else:
            assert f"{described} (default: {action.default})" in text, flag
    # The options of the other subcommands are not offered here.
    others = {
        a.option_strings[0]
        for other in NAMES
        if other != name
        for a in _own_options(other)
        if a.option_strings
    }
    mine = {a.option_strings[0] for a in options if a.option_strings}
    for flag in others - mine:
        assert f"[{flag}" not in text, flag


def test_the_defaults_the_issue_found_missing_are_shown(capsys):
    text = _help(["bench", "speed"], capsys)
    assert "--batch-size BATCH_SIZE mini-batch of the presets (default: 100)" in text
    assert "timed passes; the median is reported (default: 3)" in text
    assert "--preset {crnn,crnn-fast,crnn-tiny,fast,resnet18,slots-fast,slots-tiny,tiny}" in text
    assert "--size WxH" in text and "(default: 120x50)" in text
    assert "--one-run" not in _help(["bench", "tui"], capsys)  # internal: the fresh process's own switch


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["bench", "speed", "--batch-size", "0"], "batch size must be at least 1"),
        (["bench", "speed", "--device", "banana"], "unknown device"),
        (["bench", "accuracy", "--target", "95"], "a fraction in (0, 1], e.g. 0.95: --target 0.95 for 95%"),
        (["bench", "accuracy", "--target", "-1"], "--target takes a fraction in (0, 1], e.g. 0.95\n"),
        (
            ["bench", "accuracy", "--target", "0.9", "--train-images", "0"],
            "--train-images must be at least 1",
        ),
        (["bench", "accuracy", "--target", "0.9", "--device", "banana"], "unknown device"),
        (["bench", "accuracy", "--target", "0.9", "--lr", "-1"], "--lr must be a positive number"),
        (["bench", "fine-tune", "--labelled", "5"], "--labelled takes at least 10"),
        (["bench", "onnx", "/nonexistent/best.pt"], "checkpoint not found"),
        (["bench", "label", "--images", "50"], "at least 100"),
        (["bench", "label", "--model", "/nonexistent/best.pt"], "checkpoint not found"),
        (["bench", "tui", "--rounds", "0"], "take at least 1"),
    ],
)
def test_bad_input_exits_2_with_advice(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("captcha-tui: error:") and words in err


def test_a_preset_is_checked_against_the_choices(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["bench", "accuracy", "--target", "0.9", "--preset", "resnet50"])
    assert exited.value.code == 2
    assert "invalid choice: 'resnet50'" in capsys.readouterr().err


def test_building_the_command_line_does_not_load_the_dashboard():
    # Every benchmark module is imported to build `bench`'s options; the label and tui ones import the
    # app where they use it, so `captcha-tui --help` or `eval` pay nothing for textual.
    probe = "import sys, captcha_tui.cli as c; c.build_parser(); print('textual' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
