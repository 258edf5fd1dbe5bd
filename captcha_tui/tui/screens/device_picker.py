"""Pick the device to train on: arrows or j/k move, a digit picks its row, Enter confirms, Escape cancels.

While a run is training the picker still opens (to see what is there) but refuses to switch: the data
and the model live on the current device, so the run must be stopped first. The reason is shown inline.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ...core.devices import DeviceInfo
from ..formatting import size


def describe_device(info: DeviceInfo) -> str:
    parts = [info.description]
    if info.threads:
        parts.append(f"{info.threads} threads")
    if info.total_memory is not None:
        free = f", {size(info.free_memory)} free" if info.free_memory is not None else ""
        parts.append(f"{size(info.total_memory)} total{free}")
    if info.capability:
        parts.append(f"compute {info.capability}")
    return " · ".join(parts)


class DevicePicker(ModalScreen[str | None]):
    """Dismisses with the chosen device name, or None when cancelled.

    Opened with ``devices`` None while the devices are still being listed (a first CUDA query can take
    seconds): it says so in place of the rows, and :meth:`show_devices` fills them in.
    """

    BINDINGS = [
        Binding("escape", "cancel", "cancel"),
        Binding("j", "move(1)", "down", show=False),
        Binding("k", "move(-1)", "up", show=False),
        *(Binding(str(n), f"pick({n})", f"pick row {n}", show=False) for n in range(10)),
    ]

    def __init__(
        self, devices: list[DeviceInfo] | None, current: str | None, refuse_reason: str | None = None
    ):
        super().__init__(id="device-picker")
        self.devices = devices or []
        self.listing = devices is None  # still looking for devices
        self.current = current
        self.refuse_reason = refuse_reason  # set while training: picking is refused with this reason

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box") as box:
            box.border_title = "train on which device?"
            rows = OptionList(*self._options(), id="device-list")
            rows.display = not self.listing  # an empty box until the devices come in
            yield rows
            yield Static(self._note(), id="picker-note")

    def on_mount(self) -> None:
        self._highlight_current()

    def show_devices(self, devices: list[DeviceInfo]) -> None:
        """The listing has come in: rows replace the "looking for devices…" line."""
        self.devices, self.listing = devices, False
        found = self.query(OptionList)
        if not found:
            return  # the picker is being taken down (the app is quitting)
        option_list = found.first()
        option_list.clear_options()
        option_list.add_options(self._options())
        option_list.display = True
        option_list.focus()
        self._highlight_current()
        self.query_one("#picker-note", Static).update(self._note())

    def _highlight_current(self) -> None:
        names = [d.name for d in self.devices]
        if names:
            self.query_one(OptionList).highlighted = names.index(self.current) if self.current in names else 0

    def _options(self) -> list[Option]:
        options = []
        for row, info in enumerate(self.devices):
            prompt = Text.assemble(
                (f"{row} " if row < 10 else "  ", "dim"),
                (f"{info.name:<8}", "bold"),
                " ",
                describe_device(info),
            )
            if info.name == self.current:
                prompt.append("  ● current", "green")
            options.append(Option(prompt, id=info.name))
        return options

    def _note(self) -> Text:
        if self.listing:
            return Text("looking for devices… (asking CUDA can take a few seconds)", style="yellow")
        if self.refuse_reason:
            return Text(self.refuse_reason, style="yellow")
        return Text("↑↓ or j/k move · 0-9 pick · Enter confirm · Esc cancel", style="dim")

    @property
    def highlighted_device(self) -> str | None:
        index = self.query_one(OptionList).highlighted
        return self.devices[index].name if index is not None else None

    def action_move(self, step: int) -> None:
        option_list = self.query_one(OptionList)
        if step > 0:
            option_list.action_cursor_down()
        else:
            option_list.action_cursor_up()

    def action_pick(self, row: int) -> None:
        if row < len(self.devices):  # nothing to pick while the devices are being listed
            self.query_one(OptionList).highlighted = row
            self._choose(row)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._choose(event.option_index)

    def _choose(self, row: int) -> None:
        if self.refuse_reason:
            note = self.query_one("#picker-note", Static)
            note.update(Text(f"refused: {self.refuse_reason}", style="bold red"))
            self.notify(self.refuse_reason, title="device not changed", severity="warning")
            return
        self.dismiss(self.devices[row].name)
