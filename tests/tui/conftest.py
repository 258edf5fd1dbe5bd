"""Fixtures for the TUI tests.

The real data comes from the suite-wide fixtures in ``tests/conftest.py`` (made once per session):
``captcha_dir``/``captcha_files`` (300 generated captchas), ``prepared_dataset`` (them, prepared) and
``tiny_run`` (one epoch of the tiny preset: best.pt and last.pt). Tests here never change those.
"""

from __future__ import annotations

import pytest

from captcha_tui.tui.dataset_info import DatasetSummary, read_dataset_summary


@pytest.fixture(scope="session")
def dataset_summary(prepared_dataset) -> DatasetSummary:
    return read_dataset_summary(prepared_dataset)
