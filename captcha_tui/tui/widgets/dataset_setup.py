"""First run: say there is no dataset, offer to make one, and show generation and preparation progress."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, Static

from ..dataset_info import DatasetSummary

STAGES = ("generate", "prepare")


class DatasetSetup(Vertical):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "dataset"

    def compose(self) -> ComposeResult:
        yield Static("", id="setup-message")
        with Horizontal(classes="setup-row", id="generate-row"):
            yield Label("generating", classes="setup-label")
            yield ProgressBar(total=1, show_eta=False, id="generate-progress")
        with Horizontal(classes="setup-row", id="prepare-row"):
            yield Label("preparing ", classes="setup-label")
            yield ProgressBar(total=1, show_eta=False, id="prepare-progress")
        yield Static("", id="setup-status")

    def show_missing(self, data_dir: Path, image_dir: Path, count: int, problem: str | None) -> None:
        """``problem``: why the folder isn't usable, when it isn't simply empty."""
        self.display = True
        self._show_bars(False)
        self.query_one("#setup-message", Static).update(
            Text.assemble(
                ("No dataset yet", "bold yellow"),
                f" in {data_dir}.\n" + (f"{problem}\n" if problem else "") + "\n",
                ("g", "bold reverse"),
                f"  generate {count:,} captchas into {image_dir} and prepare them into {data_dir}\n",
                ("o", "bold reverse"),
                "  prepare a folder of your own labelled images (names like 00042-k3x9.png)",
            )
        )
        self.query_one("#setup-status", Static).update("")

    def start(self, generating: bool, source: Path) -> None:
        self.display = True
        self._show_bars(True)
        self.query_one("#generate-row").display = generating
        for stage in STAGES:
            self.query_one(f"#{stage}-progress", ProgressBar).update(total=1, progress=0)
        what = f"generating into {source}, then preparing" if generating else f"preparing {source}"
        self.query_one("#setup-message", Static).update(Text(what + "…"))
        self.query_one("#setup-status", Static).update("")

    def show_progress(self, stage: str, done: int, total: int) -> None:
        self.query_one(f"#{stage}-progress", ProgressBar).update(total=max(total, 1), progress=done)

    def show_ready(self, summary: DatasetSummary, skipped: int) -> None:
        note = f" ({skipped:,} files skipped)" if skipped else ""
        self.query_one("#setup-message", Static).update(
            Text.assemble(
                ("Dataset ready: ", "bold green"),
                f"{summary.total:,} images in {summary.path}{note}. Press ",
                ("s", "bold reverse"),
                " to start training.",
            )
        )

    def _show_bars(self, visible: bool) -> None:
        for stage in STAGES:
            self.query_one(f"#{stage}-row").display = visible
