"""Small text helpers shared by the widgets (numbers, sizes, bars)."""

from __future__ import annotations

from rich.text import Text

from ..core.base_model import READS_LITTLE, is_base_model, reads_little
from ..core.units import GiB, MiB


def size(value: int | None) -> str:
    """Bytes as GiB (or MiB below one GiB)."""
    if value is None:
        return "n/a"
    if value >= GiB:
        return f"{value / GiB:.1f} GiB"
    return f"{value / MiB:.0f} MiB"


def size_pair(used: int | None, total: int | None) -> str:
    """``7.2/24.0 GiB``: both in the unit of the total so they read as one quantity."""
    if used is None or total is None:
        return "n/a"
    if total >= GiB:
        return f"{used / GiB:.1f}/{total / GiB:.1f} GiB"
    return f"{used / MiB:.0f}/{total / MiB:.0f} MiB"


def text_bar(fraction: float | None, width: int = 16) -> str:
    """A fixed-width bar of full and light blocks; a deterministic stand-in for a widget per row."""
    if fraction is None:
        return "·" * width
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def model_origin(path) -> tuple[str, str]:
    """The (text, style) that ends a model line: where the model came from."""
    if is_base_model(path):
        return " · the base model shipped with captcha-tui", "bold"
    return f" · {path}", "dim"


def reads_little_note(path, val_accuracy: float) -> Text:
    """ " (reads little: --model base may read better)" in yellow for a checkpoint that read little of its
    validation split; empty otherwise. Put before the path on a model line: the path may be cut off."""
    return Text(f" ({READS_LITTLE})", style="bold yellow") if reads_little(path, val_accuracy) else Text("")


def charset_preview(charset: str, limit: int = 12) -> str:
    if len(charset) <= limit:
        return charset
    return f"{charset[: limit // 2]}…{charset[-(limit // 2) :]}"


def repaint(widget, content) -> None:
    """``Static.update`` that asks for a layout pass only when the shape of the text changes.

    A layout pass re-arranges the whole screen. The panels refreshed every second keep the same lines of
    the same lengths nearly always (fixed-width numbers), so most updates need only a repaint of the widget
    itself; a line that grows or shrinks may wrap differently, so it gets the layout pass.
    """
    plain = content.plain if hasattr(content, "plain") else str(content)
    shape = tuple(len(line) for line in plain.split("\n"))
    changed = getattr(widget, "_repaint_shape", None) != shape
    widget._repaint_shape = shape
    widget.update(content, layout=changed)
