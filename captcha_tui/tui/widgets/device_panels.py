"""All device panels: one per GPU in the sample, plus the host when the GPUs don't tell the story."""

from __future__ import annotations

import re

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ...core.hardware import Sample
from ..formatting import repaint
from .gpu_panel import GpuPanel
from .host_panel import HostPanel


def gpus_in_use(training_device: str | None) -> set[int]:
    """The CUDA indices a run trains on: one (``cuda:1``) or a list's (``cuda:0,cuda:2``)."""
    found = (re.fullmatch(r"cuda:(\d+)", part.strip()) for part in (training_device or "").split(","))
    return {int(match.group(1)) for match in found if match}


def shows_host(sample: Sample, training_device: str | None) -> bool:
    """CPU and host memory matter when NVML is out, when there is no GPU, or when we train off the GPUs."""
    on_gpu = training_device is not None and training_device.startswith("cuda")
    return sample.nvml_status is not None or not sample.gpus or not on_gpu


class DevicePanels(VerticalScroll):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "devices"
        self.sample: Sample | None = None
        self._gpu_panels: dict[int, GpuPanel] = {}

    def compose(self) -> ComposeResult:
        status = Static("waiting for the first hardware sample…", id="device-status")
        status.border_title = "monitor"  # its state and NVML errors, in a panel like the readings
        yield status
        host = HostPanel(id="host-panel")
        host.display = False  # until a sample says whether it is needed
        yield host

    def show(self, sample: Sample, training_device: str | None) -> None:
        self.sample = sample
        notes: list[Text] = []
        if sample.nvml_status is not None:
            notes.append(Text(f"GPU monitor off: {sample.nvml_status}", style="yellow"))
        notes.extend(Text(error, style="red") for error in sample.errors)
        status = self.query_one("#device-status", Static)
        repaint(status, Text("\n").join(notes))
        status.display = bool(notes)

        host_panel = self.query_one("#host-panel", HostPanel)
        in_use = gpus_in_use(training_device)
        for gpu in sample.gpus:
            panel = self._gpu_panels.get(gpu.nvml_index)
            if panel is None:
                panel = self._gpu_panels[gpu.nvml_index] = GpuPanel()
                self.mount(panel, before=host_panel)
            on_this_card = (
                sample.torch is not None
                and gpu.index is not None
                and sample.torch.device == f"cuda:{gpu.index}"
            )
            # Marked for a run on several cards; one card's run shows its torch memory there already.
            panel.in_use = len(in_use) > 1 and gpu.index in in_use
            panel.show(gpu, sample.torch if on_this_card else None)
        present = {gpu.nvml_index for gpu in sample.gpus}
        for index, panel in self._gpu_panels.items():
            panel.display = index in present  # NVML went away: hide, don't forget the history
        host_panel.show(sample.host)
        host_panel.display = shows_host(sample, training_device)

    def gpu_panel(self, nvml_index: int) -> GpuPanel | None:
        return self._gpu_panels.get(nvml_index)
