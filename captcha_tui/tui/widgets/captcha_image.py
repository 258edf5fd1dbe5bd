"""The captcha itself: in coloured half cells, or with textual-image where the terminal draws pixels
(Sixel, the kitty graphics protocol); a line of text where neither the terminal nor the file can.

textual-image asks the terminal what it can draw when it is imported, which only works before Textual
takes over the terminal, so it is imported here, at module import, not when the first image is shown.

Half cells are drawn here rather than by textual-image, which builds a new style for every cell of every
frame (about 60 ms for the label screen's 80×16 cells on a busy machine); :func:`halfcell_strips` makes
the lines once per image and size, keeps the last few, and may run in any thread, so that a screen can
prepare the next image before it is asked for.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from rich.color import Color
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

try:
    from textual_image import renderable as image_renderables
    from textual_image import widget as image_widgets
except Exception:  # noqa: BLE001 - no terminal to ask, an odd platform: fall back to text
    image_widgets = image_renderables = None

UPPER_HALF = "▀"  # the upper pixel in the foreground colour, the lower one in the background colour


DRAWN_KEPT = 32  # images kept drawn (the one on show, the next few, a few back)
_drawn: OrderedDict[tuple[str, int, int, int], tuple[Strip, ...]] = OrderedDict()
_drawn_lock = threading.Lock()


def halfcell_strips(
    path: str | Path, width: int, height: int, pause: Callable[[], None] | None = None
) -> tuple[Strip, ...]:
    """``path`` scaled to ``width``×``height`` cells, one strip per line, kept per version of the file.
    ``pause`` (for a worker thread) is called between lines: it may wait while the UI draws a frame, as
    this pure-Python loop would otherwise hold the GIL the UI thread needs. Raises OSError or a Pillow
    error for a file that cannot be drawn."""
    key = (str(path), os.stat(path).st_mtime_ns, width, height)
    with _drawn_lock:
        strips = _drawn.get(key)
        if strips is not None:
            _drawn.move_to_end(key)
            return strips
    strips = _draw_halfcells(key[0], width, height, pause)
    with _drawn_lock:
        _drawn[key] = strips
        while len(_drawn) > DRAWN_KEPT:
            _drawn.popitem(last=False)
    return strips


def _draw_halfcells(
    path: str, width: int, height: int, pause: Callable[[], None] | None
) -> tuple[Strip, ...]:
    with Image.open(path) as image:
        # The scaling textual-image's half cells use, so both draw the same colours.
        data = image.convert("RGB").resize((width, 2 * height)).tobytes()
    styles: dict[bytes, Style] = {}
    row = 3 * width
    strips = []
    for y in range(height):
        if pause is not None:
            pause()
        top, bottom = data[2 * y * row : (2 * y + 1) * row], data[(2 * y + 1) * row : (2 * y + 2) * row]
        segments = []
        for x in range(0, row, 3):
            key = top[x : x + 3] + bottom[x : x + 3]
            style = styles.get(key)
            if style is None:
                style = styles[key] = Style.from_color(
                    Color.from_triplet(ColorTriplet(*key[:3])), Color.from_triplet(ColorTriplet(*key[3:]))
                )
            segments.append(Segment(UPPER_HALF, style))
        strips.append(Strip(segments, width))
    return tuple(strips)


class HalfcellPicture(Widget):
    """An image filling the widget, two pixels a cell; its size comes from the stylesheet."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._image: str | None = None

    @property
    def image(self) -> str | None:
        return self._image

    @image.setter
    def image(self, value: str | Path | None) -> None:
        if value is not None:
            with Image.open(value):  # reads the header only: a file that is no image fails here
                pass
        self._image = None if value is None else str(value)
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        # The strips as made, skipping the per-segment styling pass every widget's lines go through:
        # with a style per cell that pass costs more than drawing the image did. (The picture has no
        # border, padding, background or opacity for it to apply.)
        width, height = self.size
        strips: tuple[Strip, ...] = ()
        if self._image is not None:
            try:
                strips = halfcell_strips(self._image, width, height)
            except Exception:  # noqa: BLE001 - changed or removed since it was shown: draw nothing
                strips = ()
        blank = Strip.blank(width)
        return [(strips[y] if y < len(strips) else blank).crop(crop.x, crop.right) for y in crop.line_range]


def draw_ahead(path: Path, size: tuple[int, int], pause: Callable[[], None] | None = None) -> None:
    """Make ``path``'s half cells at ``size`` now (in a worker thread) so that showing it is instant. A file
    that cannot be drawn is left for :meth:`CaptchaImage.show` to report."""
    with contextlib.suppress(Exception):
        halfcell_strips(path, *size, pause=pause)


def image_widget_class(renderer: str) -> type[Widget] | None:
    """ "auto" (best the terminal supports), "halfcell", "unicode", or "none" (text only)."""
    if image_widgets is None or renderer == "none":
        return None
    if renderer == "halfcell" or (
        renderer == "auto" and image_renderables.Image is image_renderables.HalfcellImage
    ):
        return HalfcellPicture
    return {"auto": image_widgets.Image, "unicode": image_widgets.UnicodeImage}.get(renderer)


class CaptchaImage(Vertical):
    def __init__(self, renderer: str = "auto", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "image"
        self._widget_class = image_widget_class(renderer)
        self.path: Path | None = None

    def compose(self) -> ComposeResult:
        if self._widget_class is not None:
            yield self._widget_class(id="captcha-picture")
        yield Static(Text("no image yet", style="dim"), id="captcha-caption")

    def show(self, path: Path, *, layout: bool = True) -> None:
        """``layout=False`` where the caption has a fixed size: it is just repainted."""
        self.path = path
        caption = self.query_one("#captcha-caption", Static)
        caption.update(Text(path.name, style="dim"), layout=layout)
        if self._widget_class is None:
            caption.update(
                Text(f"{path.name} (no image preview in this terminal)", style="dim"), layout=layout
            )
            return
        picture = self.query_one("#captcha-picture")
        try:
            picture.image = str(path)
        except Exception as exc:  # noqa: BLE001 - a preview must never break the screen
            picture.image = None
            caption.update(Text(f"{path.name}: no preview ({exc})", style="dim"))

    @property
    def ahead_size(self) -> tuple[int, int] | None:
        """The picture's size in cells where it is drawn in half cells (which :func:`draw_ahead` can
        prepare), once laid out; None otherwise. Read it on the UI thread."""
        if self._widget_class is not HalfcellPicture:
            return None
        width, height = self.query_one("#captcha-picture").size
        return (width, height) if width and height else None

    def clear(self, text: str = "no image") -> None:
        """No image: ``text`` in its place."""
        self.path = None
        self.query_one("#captcha-caption", Static).update(Text(text, style="dim"))
        if self._widget_class is not None:
            self.query_one("#captcha-picture").image = None
