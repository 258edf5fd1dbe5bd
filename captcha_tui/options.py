"""Command-line pieces that ``cli`` and the ``bench`` package both use.

Apart from ``cli`` so that the benchmarks can declare their own options without importing it: ``cli``
builds the ``bench`` parser from them, so importing each other would be a cycle; and under ``python -m
captcha_tui.cli`` (how ``bench tui`` starts its runs) an import of ``cli`` would load a second copy, whose
``UsageError`` the running ``main`` would not catch.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from .core.train import TrainConfig

EXIT_USAGE = 2
PROG = "captcha-tui"  # how every error line starts: "captcha-tui: error: …"


class UsageError(Exception):
    """Bad input from the user: printed as one message, exit code 2."""


def length_range(text: str) -> tuple[int, int]:
    """argparse type of ``--length``: ``5`` or ``4-6``."""
    from .core.spec import parse_length_range

    try:
        return parse_length_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def image_size(text: str) -> tuple[int, int]:
    """argparse type of ``--size``: ``120x50`` → (120, 50)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 120x50, got {text!r}") from None
    return width, height


def model_path(text: str) -> Path:
    """argparse type of ``--model``: a checkpoint's path, or ``base`` for the shipped base model."""
    from .core.base_model import named_model

    path = named_model(text)
    if path is None:
        raise argparse.ArgumentTypeError("this install of captcha-tui has no base model: name a checkpoint")
    return path


def check_device(spec: str) -> None:
    from .core.devices import DeviceError, resolve_device

    try:
        resolve_device(spec)
    except DeviceError as exc:
        raise UsageError(str(exc)) from None


def check_devices(spec: str):
    """``--device`` of a training run: one device or a list of them (core.devices.DeviceList), checked
    before anything starts."""
    from .core.devices import DeviceError, parse_device_list

    try:
        return parse_device_list(spec)
    except DeviceError as exc:
        raise UsageError(str(exc)) from None


# The train options are built from TrainConfig's fields (their metadata holds each help text), parsed
# under their own names so that `prepare --out` or `eval --device` never mix with them, and with no
# default: only what was typed is in the namespace and TrainConfig fills in the rest. That is why
# `captcha-tui --epochs 3 train` and `captcha-tui train --epochs 3` read the same.
TRAIN_DEST = "config."


def train_fields(config_type: type = TrainConfig) -> list[tuple[dataclasses.Field, str, type]]:
    """(field, flag, value type) for each of ``config_type``'s fields that is an option."""
    hints = typing.get_type_hints(config_type)
    out = []
    for f in dataclasses.fields(config_type):
        if "help" not in f.metadata:
            continue
        hint = hints[f.name]
        kinds = [k for k in typing.get_args(hint) if k is not type(None)] or [hint]
        optional_bool = kinds == [bool] and hint is not bool
        name = f.name.replace("_", "-")
        flag = f.metadata.get("flag") or (f"--no-{name}" if hint is bool and f.default else f"--{name}")
        out.append((f, flag, bool | None if optional_bool else kinds[0]))
    return out


def add_train_option(parser, f: dataclasses.Field, flag: str, kind, **overrides) -> None:
    help_text = f.metadata["help"]
    options: dict = {"dest": TRAIN_DEST + f.name, "default": argparse.SUPPRESS}
    if kind is bool:
        options["action"] = "store_false" if f.default else "store_true"
    elif kind == bool | None:
        options["action"] = argparse.BooleanOptionalAction
    else:
        options["type"] = f.metadata.get("parse", kind)
        if "choices" in f.metadata:
            options["choices"] = f.metadata["choices"]
        else:
            options["metavar"] = (
                f.metadata.get("metavar") or flag.removeprefix("--").replace("-", "_").upper()
            )
        if f.default is not None and f.default is not dataclasses.MISSING:
            help_text += f" (default: {f.default})"
    options["help"] = help_text.replace("%", "%%")
    options.update(overrides)
    parser.add_argument(flag, **options)


def add_amp_option(parser) -> None:
    """``--amp/--no-amp`` for commands other than train: the same words, an ``amp`` of None by default."""
    f, flag, kind = next(option for option in train_fields() if option[0].name == "amp")
    add_train_option(parser, f, flag, kind, dest="amp", default=None)
