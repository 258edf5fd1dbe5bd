"""The device a run uses, and the mixed-precision default: on where the device has fast bf16/fp16 units."""

from __future__ import annotations

import re

import pytest
import torch

from captcha_tui.core import devices
from captcha_tui.core.devices import DeviceError, parse_device_list, resolve_amp
from captcha_tui.core.train import mixed_precision


def test_an_explicit_choice_wins():
    assert resolve_amp(True, "cpu") is True
    assert resolve_amp(False, "cuda") is False


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"), [(True, False, True), (False, True, True), (False, False, False)]
)
def test_auto_turns_mixed_precision_on_for_cpus_with_bf16_units(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert resolve_amp(None, "cpu") is expected
    autocast, scaler = mixed_precision(None, torch.device("cpu"))
    assert scaler is None
    assert (autocast.fast_dtype if autocast is not None else None) == (torch.bfloat16 if expected else None)


def test_auto_is_on_for_cuda_and_off_for_mps_and_nonsense():
    assert resolve_amp(None, "cuda:0") is True
    assert resolve_amp(None, "mps") is False
    assert resolve_amp(None, "banana") is False


def test_a_cpu_without_the_probe_functions_counts_as_without_bf16(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    assert devices.fast_low_precision(torch.device("cpu")) is False


def test_the_device_name_shown_before_a_run_is_the_resolved_one_or_what_was_asked():
    assert devices.device_name("auto") == str(devices.resolve_device("auto"))
    assert devices.device_name(" CPU ") == "cpu"
    assert devices.device_name("tpu") == "tpu"  # names no device: shown as asked, and the run says why


# ---- device lists: one run on several devices --------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "names", "spelled"),
    [
        ("cuda:0,cuda:2", ("cuda:0", "cuda:2"), "cuda:0,cuda:2"),
        (" CUDA:1 , gpu:3 ", ("cuda:1", "cuda:3"), "cuda:1,cuda:3"),
        ("cuda:all", ("cuda:0", "cuda:1", "cuda:2", "cuda:3"), "cuda:0,cuda:1,cuda:2,cuda:3"),
        ("cpu:2", ("cpu", "cpu"), "cpu:2"),
        ("cpu:1", ("cpu",), "cpu"),  # one process: today's single device
        ("cuda:2", ("cuda:2",), "cuda:2"),
    ],
)
def test_a_device_list_names_one_device_a_process(spec, names, spelled):
    devices = parse_device_list(spec, visible_gpus=4)
    assert devices.names == names
    assert devices.several == (len(names) > 1)
    assert str(devices) == spelled
    assert parse_device_list(str(devices), visible_gpus=4) == devices  # the spelling parses back


def test_one_item_is_todays_single_device_as_typed():
    assert parse_device_list("auto").names == ("auto",)
    assert parse_device_list("cpu").names == ("cpu",)
    assert not parse_device_list("auto").several


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("cuda:0,cuda:0", "lists cuda:0 more than once"),
        ("cuda:0,gpu:0,cuda:1", "lists cuda:0 more than once"),
        ("cuda:0,cuda:7", "cuda:7 not present; 2 GPUs are visible (cuda:0, cuda:1)"),
        ("cuda:7", "cuda:7 was asked for, but it is not present; 2 GPUs are visible"),
        ("cpu,cuda:0", "cpu cannot be one item of a list"),
        ("cuda:0,cpu:2", "use cpu:N for N processes on the CPU"),
        ("cuda:0,cuda", "name each GPU: cuda:N"),
        ("cuda:0,,cuda:1", "has an empty item"),
        ("cuda:0,", "has an empty item"),
        ("cuda:0,tpu:1", "unknown device 'tpu:1'"),
        ("cpu:0", "at least 1"),
        (" ", "--device is empty"),
    ],
)
def test_a_bad_device_list_is_refused_in_one_line(spec, words):
    with pytest.raises(DeviceError, match=re.escape(words)) as caught:
        parse_device_list(spec, visible_gpus=2)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_every_gpu_without_cuda_says_why():
    for spec in ("cuda:all", "cuda:0,cuda:1"):
        with pytest.raises(DeviceError, match=rf"{spec} was asked for, but .*use --device cpu"):
            parse_device_list(spec)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_every_gpu_is_every_visible_one():
    assert parse_device_list("cuda:all").processes == torch.cuda.device_count()
