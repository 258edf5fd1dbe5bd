"""The repository's text files as a reader gets them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = (
    "README.md",
    "pyproject.toml",
    "docs/**/*.md",
    "captcha_tui/**/*.py",
    "captcha_tui/**/*.tcss",
    "tests/**/*.py",
    "tools/**/*.py",
)


def test_no_file_holds_a_merge_conflicts_markers():
    """docs/faults.md carried `<<<<<<< HEAD … >>>>>>> label-fixes` for a week: both halves shown to
    readers, one of them out of date."""
    marker = re.compile(r"^(<{7} |={7}$|>{7} )", re.MULTILINE)
    files = sorted({path for pattern in TEXT for path in ROOT.glob(pattern)})
    assert len(files) > 100
    assert [str(f.relative_to(ROOT)) for f in files if marker.search(f.read_text(encoding="utf-8"))] == []
