"""The CPU and host memory (shown when training on the CPU or when NVML can't report GPUs)."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from ...core.hardware import HostSample
from ..formatting import repaint, size, size_pair, text_bar

CPU_HISTORY = 60


class HostPanel(Vertical):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="device-panel")
        self.border_title = "CPU · host"
        self.cpu: deque[float] = deque(maxlen=CPU_HISTORY)
        self.host: HostSample | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="spark-row"):
            yield Static("", classes="host-cpu")
            yield Sparkline([], classes="host-cpu-spark")
        yield Static("", classes="host-memory")

    def on_mount(self) -> None:
        self._redraw()

    def show(self, host: HostSample) -> None:
        self.host = host
        if host.cpu_percent is not None:
            self.cpu.append(host.cpu_percent)
        if self.is_mounted:
            self._redraw()

    def _redraw(self) -> None:
        host = self.host
        if host is None:
            return
        cores = f" · {host.cpu_count} cores" if host.cpu_count else ""
        cpu = f"{host.cpu_percent:3.0f}%" if host.cpu_percent is not None else " n/a"
        repaint(self.query_one(".host-cpu", Static), Text.assemble(("cpu  ", "dim"), (cpu, "bold"), cores))
        self.query_one(".host-cpu-spark", Sparkline).data = list(self.cpu)
        fraction = (
            host.memory_used / host.memory_total
            if host.memory_used is not None and host.memory_total
            else None
        )
        process_cpu = (
            f"{host.process_cpu_percent:.0f}% cpu" if host.process_cpu_percent is not None else "cpu n/a"
        )
        repaint(
            self.query_one(".host-memory", Static),
            Text.assemble(
                ("mem  ", "dim"),
                (text_bar(fraction), "cyan"),
                f" {size_pair(host.memory_used, host.memory_total)}\n",
                ("this process ", "dim"),
                f"{size(host.process_rss)} · {process_cpu}",
            ),
        )
