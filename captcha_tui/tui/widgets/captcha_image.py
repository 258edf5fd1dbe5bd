"""The captcha itself, drawn with textual-image; a line of text where the terminal or the file can't.

textual-image asks the terminal what it can draw when it is imported, which only works before Textual
takes over the terminal, so it is imported here, at module import, not when the first image is shown.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

try:
    from textual_image import widget as image_widgets
except Exception:  # noqa: BLE001 - no terminal to ask, an odd platform: fall back to text
    image_widgets = None


def image_widget_class(renderer: str) -> type[Widget] | None:
    """ "auto" (best the terminal supports), "halfcell", "unicode", or "none" (text only)."""
    if image_widgets is None or renderer == "none":
        return None
    return {
        "auto": image_widgets.Image,
        "halfcell": image_widgets.HalfcellImage,
        "unicode": image_widgets.UnicodeImage,
    }.get(renderer)


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

    def clear(self) -> None:
        """Nothing to show: the last request read no image."""
        self.path = None
        if self._widget_class is not None:
            self.query_one("#captcha-picture").image = None
        self.query_one("#captcha-caption", Static).update(Text("no image", style="dim"))

    def show(self, path: Path) -> None:
        self.path = path
        caption = self.query_one("#captcha-caption", Static)
        caption.update(Text(path.name, style="dim"))
        if self._widget_class is None:
            caption.update(Text(f"{path.name} (no image preview in this terminal)", style="dim"))
            return
        picture = self.query_one("#captcha-picture")
        try:
            picture.image = str(path)
        except Exception as exc:  # noqa: BLE001 - a preview must never break the screen
            picture.image = None
            caption.update(Text(f"{path.name}: no preview ({exc})", style="dim"))
