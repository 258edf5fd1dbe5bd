"""Durations in words, for every front end and for the events' own summaries (core cannot import
``words``, so the one formatter family lives here)."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """``04:05`` or ``1:02:05``: a time as a clock shows it."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def rough_duration(seconds: float) -> str:
    """``75 s``, ``6 min``, ``1.2 h``: a time far ahead, said as roughly as it is known."""
    seconds = max(0.0, seconds)
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
