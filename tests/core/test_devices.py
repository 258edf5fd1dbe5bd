"""The device a run uses, and the mixed-precision default: on where the device has fast bf16/fp16 units."""

from __future__ import annotations

import pytest
import torch

from captcha_tui.core import devices
from captcha_tui.core.devices import resolve_amp
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
