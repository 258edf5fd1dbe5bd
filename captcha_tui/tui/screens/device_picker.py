"""Pick the device to train on: arrows or j/k move, a digit picks its row, Enter confirms, Escape cancels.
Space ticks rows: Enter with GPUs ticked trains one run on all of them (a process each), the result a
device list such as ``cuda:0,cuda:2`` (core.devices.DeviceList); with none ticked it takes the
highlighted row, as before. The CPU (or MPS) cannot be ticked together with GPUs: the note says why.

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

from ...core.devices import DeviceInfo, DeviceList
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
    """Dismisses with the chosen device name (or a device list's spelling, ``cuda:0,cuda:2``), or None
    when cancelled.

    Opened with ``devices`` None while the devices are still being listed (a first CUDA query can take
    seconds): it says so in place of the rows, and :meth:`show_devices` fills them in.
    """

    BINDINGS = [
        Binding("escape", "cancel", "cancel"),
        Binding("j", "move(1)", "down", show=False),
        Binding("k", "move(-1)", "up", show=False),
        Binding("space", "tick", "tick", show=False),
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
        # The devices ticked for a run on several of them: those of the current list, to begin with.
        self.ticked: set[str] = set(current.split(",")) if current and "," in current else set()

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
        self.ticked &= {d.name for d in devices}
        option_list.add_options(self._options())
        option_list.display = True
        option_list.focus()
        self._highlight_current()
        self.query_one("#picker-note", Static).update(self._note())

    def _highlight_current(self) -> None:
        names = [d.name for d in self.devices]
        if names:
            # A list is current: the cursor on its first device.
            at = next((n for n in names if n == self.current or n in self.ticked), None)
            self.query_one(OptionList).highlighted = names.index(at) if at else 0

    def _options(self) -> list[Option]:
        return [Option(self._prompt(row, info), id=info.name) for row, info in enumerate(self.devices)]

    def _prompt(self, row: int, info: DeviceInfo) -> Text:
        ticked = info.name in self.ticked
        prompt = Text.assemble(
            (f"{row} " if row < 10 else "  ", "dim"),
            ("[x] " if ticked else "[ ] ", "bold green" if ticked else "dim"),
            (f"{info.name:<8}", "bold"),
            " ",
            describe_device(info),
        )
        if info.name == self.current:
            prompt.append("  ● current", "green")
        return prompt

    def _note(self) -> Text:
        if self.listing:
            return Text("looking for devices… (asking CUDA can take a few seconds)", style="yellow")
        if self.refuse_reason:
            return Text(self.refuse_reason, style="yellow")
        if self.ticked:
            chosen = self.chosen_list
            return Text(
                f"ticked: {chosen} · Enter trains on {'these' if len(self.ticked) > 1 else 'it'} · "
                "Space unticks · Esc cancel",
                style="green",
            )
        return Text(
            "↑↓ or j/k move · 0-9 pick · Space tick GPUs (one run on several) · Enter confirm · Esc cancel",
            style="dim",
        )

    @property
    def chosen_list(self) -> str:
        """The ticked devices as one device list, in the rows' order (``cuda:0,cuda:2``)."""
        return str(DeviceList(tuple(d.name for d in self.devices if d.name in self.ticked)))

    def action_tick(self) -> None:
        """Tick or untick the highlighted row; the CPU (or MPS) and GPUs are never ticked together."""
        name = self.highlighted_device if not self.listing else None
        if name is None:
            return
        note = self.query_one("#picker-note", Static)
        if name in self.ticked:
            self.ticked.discard(name)
        else:
            # Several devices are several GPUs: a CPU process would hold every GPU step back.
            gpus_only = name.startswith("cuda") and all(n.startswith("cuda") for n in self.ticked)
            if self.ticked and not gpus_only:
                note.update(
                    Text(
                        f"cannot tick {name} with {', '.join(sorted(self.ticked))}: one run trains on "
                        f"several GPUs, or on one other device; untick first (Space)",
                        style="bold red",
                    )
                )
                return
            self.ticked.add(name)
        row = [d.name for d in self.devices].index(name)
        self.query_one(OptionList).replace_option_prompt_at_index(row, self._prompt(row, self.devices[row]))
        note.update(self._note())

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
        self._choose(event.option_index, ticked=True)

    def _choose(self, row: int, ticked: bool = False) -> None:
        """Dismiss with ``row``'s device, or (``ticked``: Enter) with the ticked ones where there are any."""
        if self.refuse_reason:
            note = self.query_one("#picker-note", Static)
            note.update(Text(f"refused: {self.refuse_reason}", style="bold red"))
            self.notify(self.refuse_reason, title="device not changed", severity="warning")
            return
        self.dismiss(self.chosen_list if ticked and self.ticked else self.devices[row].name)
