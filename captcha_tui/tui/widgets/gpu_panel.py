"""One GPU: memory, utilisation with its recent history, temperature, power, and our share of it."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from ...core.hardware import GpuProcess, GpuSample, TorchMemorySample
from ..formatting import repaint, size, size_pair, text_bar

UTIL_HISTORY = 60  # samples, about a minute

# GpuSample field -> the words a person reads.
FIELD_NAMES = {
    "name": "name",
    "memory_used": "memory",
    "memory_total": "memory",
    "utilization": "utilization",
    "temperature": "temperature",
    "power_draw_w": "power draw",
    "power_limit_w": "power limit",
    "process_memory": "this process",
    "processes": "processes",
}
MAX_PROCESSES = 4  # rows of the process list; the rest are counted
PROCESS_LINE_WIDTH = 48  # inside a GPU panel at the 120-column layout


def process_line(process: GpuProcess) -> Text:
    """``4242 alice 1.2 GiB python train.py``; n/a where NVML or the OS would not say; ours marked."""
    na = ("n/a", "dim")
    line = Text.assemble(
        (f"{process.pid:>7} ", "dim"),
        (process.user, "") if process.user else na,
        " ",
        size(process.memory) if process.memory is not None else na,
        " ",
    )
    if process.ours:
        line.append("◀ this run ", "bold green")
    line.append_text(Text(process.command) if process.command else Text(*na))
    # One line a process whatever its command: the panel's lines are joined into one text, where a
    # long command line would wrap.
    line.truncate(PROCESS_LINE_WIDTH, overflow="ellipsis")
    return line


def process_lines(gpu: GpuSample) -> list[Text]:
    """Who holds the card: one line a process, most memory first, at most :data:`MAX_PROCESSES`."""
    if "processes" in gpu.unavailable:
        return []  # said with the other fields NVML could not read
    if not gpu.processes:
        return [Text("no processes on this card", style="dim")]
    lines = [Text("processes", style="dim")] + [process_line(p) for p in gpu.processes[:MAX_PROCESSES]]
    if len(gpu.processes) > MAX_PROCESSES:
        lines.append(Text(f"… and {len(gpu.processes) - MAX_PROCESSES} more", style="dim"))
    return lines


def unavailable_lines(gpu: GpuSample) -> list[str]:
    """``temperature: not supported`` for each field NVML could not read, one line per field."""
    seen: dict[str, str] = {}
    for field, reason in gpu.unavailable.items():
        seen.setdefault(FIELD_NAMES.get(field, field), reason)
    return [f"{name}: {reason}" for name, reason in seen.items()]


class GpuPanel(Vertical):
    def __init__(self) -> None:
        super().__init__(classes="device-panel")
        self.utilization: deque[float] = deque(maxlen=UTIL_HISTORY)
        self.gpu: GpuSample | None = None
        self.torch: TorchMemorySample | None = None
        self.in_use = False  # the run trains on this card (one of several, for a device list)

    def compose(self) -> ComposeResult:
        yield Static("", classes="gpu-memory")
        with Horizontal(classes="spark-row"):
            yield Static("", classes="gpu-util")
            yield Sparkline([], classes="gpu-util-spark")
        yield Static("", classes="gpu-details")

    def on_mount(self) -> None:
        self._redraw()

    def show(self, gpu: GpuSample, torch: TorchMemorySample | None) -> None:
        """``torch`` is the allocator of the training device when that device is this card, else None."""
        self.gpu, self.torch = gpu, torch
        if gpu.utilization is not None:
            self.utilization.append(gpu.utilization)
        if self.is_mounted:
            self._redraw()

    def _redraw(self) -> None:
        gpu = self.gpu
        if gpu is None:
            return
        name = gpu.name or "unknown GPU"
        # The name first when the card has no CUDA index: a long title is cut at the panel's edge.
        if gpu.index is not None:
            self.border_title = f"cuda:{gpu.index}{' ◀ training' if self.in_use else ''} · {name}"
        else:
            self.border_title = f"{name} · NVML {gpu.nvml_index}, not visible to CUDA"
        self.set_class(gpu.error is not None, "-lost")
        memory = self.query_one(".gpu-memory", Static)
        util = self.query_one(".gpu-util", Static)
        spark = self.query_one(".gpu-util-spark", Sparkline)
        details = self.query_one(".gpu-details", Static)
        if gpu.error is not None:
            repaint(memory, Text(f"⚠ {gpu.error}", style="bold red"))
            repaint(util, "")
            spark.data = []
            repaint(details, Text("no readings from this card; training elsewhere goes on", style="dim"))
            return

        fraction = (
            gpu.memory_used / gpu.memory_total if gpu.memory_used is not None and gpu.memory_total else None
        )
        repaint(
            memory,
            Text.assemble(
                ("mem  ", "dim"),
                (text_bar(fraction), "cyan"),
                f" {size_pair(gpu.memory_used, gpu.memory_total)}",
            ),
        )
        repaint(
            util,
            Text.assemble(
                ("util ", "dim"),
                (f"{gpu.utilization:3d}%" if gpu.utilization is not None else " n/a", "bold"),
            ),
        )
        spark.data = list(self.utilization)

        lines: list[Text] = []
        readings = []
        if gpu.temperature is not None:
            readings.append(f"{gpu.temperature} °C")
        if gpu.power_draw_w is not None:
            limit = f"/{gpu.power_limit_w:.0f}" if gpu.power_limit_w is not None else ""
            readings.append(f"{gpu.power_draw_w:.0f}{limit} W")
        if readings:
            lines.append(Text(" · ".join(readings)))
        # The process list marks this run; without one (NVML cannot list them), this line says our share.
        if "process_memory" not in gpu.unavailable and "processes" in gpu.unavailable:
            mine = size(gpu.process_memory) if gpu.process_memory is not None else "not on this card"
            lines.append(Text.assemble(("this process ", "dim"), mine))
        if self.torch is not None:
            t = self.torch
            lines.append(
                Text.assemble(
                    ("torch alloc/reserved/peak ", "dim"),
                    f"{size(t.allocated)} / {size(t.reserved)} / {size(t.peak)}",
                )
            )
        lines.extend(process_lines(gpu))
        lines.extend(Text(line, style="yellow") for line in unavailable_lines(gpu))
        repaint(details, Text("\n").join(lines))
