"""Byte units, defined once for the panels, the fake cards, the CLI and the tests."""

from __future__ import annotations

MiB = 1024**2
GiB = 1024**3
