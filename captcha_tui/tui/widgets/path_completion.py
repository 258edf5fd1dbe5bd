"""An Input for paths that completes like a shell: a dropdown of the names in the folder being typed.

This replaces textual-autocomplete's PathAutoComplete, which built one dropdown item per folder entry (and
fuzzy-matched each) on every keystroke, on the UI thread: 60,000 captchas in a folder froze the screen for
over a minute, then every key took seconds. Here each folder is listed once, by a thread worker, into a
sorted list; a key finds the names with the typed prefix by bisection and shows at most ``MAX_SHOWN`` of
them, with "+N more" for the rest.

Keys do what the footer says: Enter submits exactly what the Input holds (and closes the list), Tab puts
the highlighted name in, the arrows move through the list, and Escape closes an open list; with no list
open, Tab and Escape go on to the screen (next field; back or cancel). A paste whose line ends with a
newline submits it, as Enter would (a shell runs a pasted line that ends in one).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from rich.segment import Segment
from textual import events, work
from textual.binding import Binding
from textual.geometry import Offset
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Input

MAX_SHOWN = 50  # names in the dropdown; a shell would ask before listing thousands
ROWS = 10  # rows on screen; the arrows scroll through the rest
FOLDERS_KEPT = 32  # listings kept (the least recently used go first)
NAME_WIDTH = (16, 56)  # the list is as wide as the folder's longest name, within these


@dataclass(frozen=True)
class Listing:
    """A folder's entries, sorted; folders end with "/". Dot entries apart: shown only for a "." prefix."""

    names: list[str]
    dot_names: list[str]
    width: int  # columns for a name: the folder's longest, so the list keeps its width as keys go


def list_folder(folder: Path) -> Listing:
    """One pass of os.scandir (no stat per entry where the file system gives entry types). Never raises:
    a folder that can't be read has nothing to complete."""
    names: list[str] = []
    dot_names: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    is_folder = entry.is_dir()
                except OSError:
                    is_folder = False
                name = entry.name + "/" if is_folder else entry.name
                (dot_names if name.startswith(".") else names).append(name)
    except OSError:
        pass
    names.sort()
    dot_names.sort()
    longest = max(map(len, names), default=0)
    return Listing(names, dot_names, max(NAME_WIDTH[0], min(NAME_WIDTH[1], longest)))


def matching(listing: Listing, prefix: str, limit: int = MAX_SHOWN) -> tuple[list[str], int]:
    """The first ``limit`` names that start with ``prefix``, and how many do in all."""
    names = listing.dot_names if prefix.startswith(".") else listing.names
    start = bisect_left(names, prefix)
    end = bisect_left(names, prefix + chr(0x10FFFF), lo=start)  # past every name with this prefix
    return names[start : min(end, start + limit)], end - start


def split_path(text: str) -> tuple[str, str]:
    """("folder part as typed, with its slash", "the name being typed"): "data/cap" -> ("data/", "cap")."""
    folder, slash, name = text.rpartition("/")
    return folder + slash, name


def folder_of(folder_text: str) -> Path:
    return Path(folder_text or ".").expanduser()


class PathDropdown(Widget):
    """The list under a :class:`PathInput`, mounted on the input's screen and drawn above everything.

    Drawn line by line (Textual's line API) at a size that changes only with the folder or the number of
    rows, so a key repaints these few cells and needs no layout pass; an OptionList rebuilt on every key
    cost about 40 ms a key here (relayout, every option measured and rendered).
    """

    COMPONENT_CLASSES = {"path-dropdown--prefix", "path-dropdown--highlight"}
    DEFAULT_CSS = """
    PathDropdown {
        overlay: screen;
        display: none;
        border: round $accent;
        border-subtitle-color: $text-muted;
        padding: 0 1;
        background: $surface;
        & > .path-dropdown--prefix { text-style: bold; }
        & > .path-dropdown--highlight { background: $accent 40%; }
    }
    """

    def __init__(self, owner: PathInput) -> None:
        super().__init__()
        self.owner = owner
        self.names: list[str] = []
        self.prefix_length = 0
        self.highlighted = 0
        self.top = 0  # the first row shown

    def show_names(self, names: list[str], total: int, prefix: str, width: int) -> None:
        """``width``: the columns inside the frame, padding included."""
        self.names = names
        self.prefix_length = len(prefix)
        self.highlighted = self.top = 0
        # On the frame, where it shows without scrolling to the end of the list.
        self.border_subtitle = f"+{total - len(names):,} more" if total > len(names) else None
        # Set only when they change: a new size means a layout pass, a repaint doesn't.
        width = width + 2  # the frame
        height = min(ROWS, len(names)) + 2
        if self.styles.width is None or self.styles.width.value != width:
            self.styles.width = width
        if self.styles.height is None or self.styles.height.value != height:
            self.styles.height = height
        self.refresh()

    def move(self, step: int) -> None:
        if not self.names:
            return
        self.highlighted = (self.highlighted + step) % len(self.names)
        rows = min(ROWS, len(self.names))
        if self.highlighted < self.top:
            self.top = self.highlighted
        elif self.highlighted >= self.top + rows:
            self.top = self.highlighted - rows + 1
        self.refresh()

    @property
    def highlighted_name(self) -> str | None:
        return self.names[self.highlighted] if self.highlighted < len(self.names) else None

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        index = self.top + y
        if index >= len(self.names):
            return Strip.blank(width, base)
        name = self.names[index]
        style = (
            base + self.get_component_rich_style("path-dropdown--highlight")
            if index == self.highlighted
            else base
        )
        prefix_style = style + self.get_component_rich_style("path-dropdown--prefix", partial=True)
        if len(name) > width:
            name = "…" + name[-(width - 1) :]  # the end of a long name is what tells names apart
            cut = 0
        else:
            cut = self.prefix_length
        return Strip(
            [Segment(name[:cut], prefix_style), Segment(name[cut:].ljust(width - cut), style)], width
        )

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None and self.top + offset.y < len(self.names):
            self.highlighted = self.top + offset.y
            self.owner.action_complete()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.move(1)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.move(-1)


class PathInput(Input):
    """An Input whose value is a path, with a completion dropdown (see the module's docstring)."""

    BINDINGS = [
        Binding("tab", "complete", "complete", show=False),
        Binding("down", "move(1)", "next", show=False),
        Binding("up", "move(-1)", "previous", show=False),
        Binding("escape", "close_list", "close list"),
    ]

    class Listed(Message, bubble=False):
        """A folder's listing, from the worker."""

        def __init__(self, folder: Path, listing: Listing) -> None:
            super().__init__()
            self.folder = folder
            self.listing = listing

    def __init__(self, value: str = "", *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(value, placeholder=placeholder, id=id)
        self.dropdown = PathDropdown(self)
        self._listings: OrderedDict[Path, Listing] = OrderedDict()
        self._listing_now: Path | None = None  # the folder the worker is listing
        self._closed_for: str | None = None  # the value the list was closed at (Enter, Escape)

    def on_mount(self) -> None:
        self.screen.mount(self.dropdown)  # an Input has no children; the screen holds the overlay

    def focus_now(self) -> None:
        """Take the focus at once (``focus()`` waits for the next refresh): keys already on their way,
        typed ahead or pasted, then land here."""
        self.screen.set_focus(self)

    @property
    def list_shown(self) -> bool:
        return self.dropdown.display

    # ---- keeping the list up to date ------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        # Changed messages of a burst arrive after its keys: always work from the value as it is now.
        if event.input is self:
            if self.value != self._closed_for:
                self._closed_for = None
            self._update_list()

    def on_focus(self) -> None:
        self._listings.clear()  # a fresh look at the folders each time the field is entered
        self._update_list()

    def on_blur(self) -> None:
        self._set_shown(False)

    def on_path_input_listed(self, message: Listed) -> None:
        self._listings[message.folder] = message.listing
        self._listings.move_to_end(message.folder)
        while len(self._listings) > FOLDERS_KEPT:
            self._listings.popitem(last=False)
        if self._listing_now == message.folder:
            self._listing_now = None
        self._update_list()

    def _update_list(self) -> None:
        text = self.value
        if not text or not self.has_focus or text == self._closed_for:
            self._set_shown(False)
            return
        folder_text, prefix = split_path(text)
        folder = folder_of(folder_text)
        listing = self._listings.get(folder)
        if listing is None:
            self._set_shown(False)
            if self._listing_now != folder:  # a burst of keys in a new folder lists it once
                self._listing_now = folder
                self._list_folder(folder)
            return
        names, total = matching(listing, prefix)
        if total == 0 or (total == 1 and names[0] == prefix):
            self._set_shown(False)
            return
        self.dropdown.show_names(names, total, prefix, listing.width + 2)  # + the padding
        self._align(prefix)
        self._set_shown(True)

    @work(thread=True, exclusive=True, group="path-listing", exit_on_error=False)
    def _list_folder(self, folder: Path) -> None:
        self.post_message(self.Listed(folder, list_folder(folder)))

    def _align(self, prefix: str) -> None:
        """Under the Input, the names lined up with the one being typed."""
        cursor_x, _ = self.cursor_screen_offset
        region = self.region
        x = max(region.x, cursor_x - len(prefix) - 2)  # the frame and the padding before the names
        x = max(0, min(x, self.screen.size.width - self.dropdown.outer_size.width))
        self.dropdown.absolute_offset = Offset(x, region.bottom)

    def _set_shown(self, shown: bool) -> None:
        if self.dropdown.display != shown:
            self.dropdown.display = shown
            self.refresh_bindings()  # the footer's Escape changes between "close list" and the screen's

    # ---- keys -------------------------------------------------------------------------------------------

    async def _on_key(self, event: events.Key) -> None:
        """This field's own key bindings (Enter, Backspace, Ctrl+U, Tab…), run in the order typed.

        Textual runs a focused widget's bindings once the key has bubbled up to the app, and by then the
        characters typed after it have been inserted: in a burst (a paste, tmux send-keys), Ctrl+U then
        a path would clear the path, and a Backspace would delete the next character, not the last one.
        """
        if event.is_printable:
            return  # Input._on_key inserts it
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            # run_action asks check_action first: a key not for this field now (Tab or Escape with no
            # list open) goes on to the screen as usual.
            if await self.app.run_action(binding.action, self):
                event.stop()
                event.prevent_default()
                return

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("complete", "move", "close_list"):
            # With no list open these keys belong to the screen (Tab: next field; Escape: back/cancel).
            return self.list_shown
        return super().check_action(action, parameters)

    def action_complete(self) -> None:
        name = self.dropdown.highlighted_name
        if name is None:
            return
        folder_text, _ = split_path(self.value)
        self.value = folder_text + name
        self.cursor_position = len(self.value)  # a folder name lists that folder next

    def action_move(self, step: int) -> None:
        self.dropdown.move(step)

    def action_close_list(self) -> None:
        self._closed_for = self.value
        self._set_shown(False)

    async def action_submit(self) -> None:
        self.action_close_list()
        await super().action_submit()

    async def _on_paste(self, event: events.Paste) -> None:
        """Insert the first line, as Input does; a line break after it then acts as Enter.

        A path copied with its line end (from ``ls``, a file manager, a terminal's triple-click) arrives as
        ``path\n`` in a bracketed paste, and Input alone would drop the newline and wait for Enter."""
        # Textual would call Input's handler after this one as well: insert once, here, before submitting.
        event.prevent_default()
        super()._on_paste(event)  # inserts the first line, stops the event
        first = event.text.splitlines(keepends=True)[0] if event.text else ""
        if first != first.rstrip("\r\n"):
            await self.action_submit()
