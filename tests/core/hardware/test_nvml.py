"""The words for NVML errors, and which errors take a whole card down."""

from __future__ import annotations

import pynvml
import pytest

from captcha_tui.core.hardware.nvml import describe_nvml_error, is_card_fatal


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED), "not supported"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST), "GPU is lost (fell off the bus)"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND), "NVML library not found (no NVIDIA driver)"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED), "NVIDIA driver not loaded"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH), "driver/library version mismatch"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION), "no permission"),
        (pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN), "Unknown Error"),  # falls back to NVML's own text
        (ModuleNotFoundError("No module named 'pynvml'"), "nvidia-ml-py (pynvml) not installed"),
        (ValueError("boom"), "ValueError: boom"),
    ],
)
def test_describe_nvml_error(exc, words):
    assert describe_nvml_error(exc) == words


@pytest.mark.parametrize(
    ("exc", "fatal"),
    [
        (pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST), True),
        (pynvml.NVMLError(pynvml.NVML_ERROR_RESET_REQUIRED), True),
        (pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED), False),  # one reading, not the card
        (RuntimeError("GPU is lost"), False),  # only NVML's own errors count
    ],
)
def test_card_fatal_errors(exc, fatal):
    assert is_card_fatal(exc) is fatal
