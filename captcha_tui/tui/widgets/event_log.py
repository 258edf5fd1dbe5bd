"""A timestamped log of the events worth remembering (new best, checkpoints, warnings, the end)."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widgets import RichLog

from ...core import events as ev
from ...words import describe_event


def _style(event: ev.TrainerEvent) -> str:
    match event:
        case ev.NewBest() | ev.Finished():
            return "green"
        case ev.Failed():
            return "bold red"
        case ev.Notice(level="warning"):
            return "yellow"
        case ev.Notice(level="error"):
            return "red"
        case ev.StateChanged():
            return "dim"
    return ""


class EventLog(RichLog):
    """``clock`` gives the time shown on each line (injectable so snapshots don't depend on the time)."""

    def __init__(self, clock: Callable[[], str], *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=True, markup=False, highlight=False, max_lines=2000, min_width=20)
        self.border_title = "events"
        self._clock = clock

    def on_resize(self) -> None:
        # Panels above appear after the first lines were written and shrink the log: stay on the newest.
        if self.auto_scroll:
            self.scroll_end(animate=False, immediate=False, x_axis=False)

    def add_event(self, event: ev.TrainerEvent) -> None:
        """Lines for the events worth keeping; per-epoch numbers live in the chart, not here."""
        match event:
            case ev.BatchProgress() | ev.EpochEnd() | ev.Countdown() | ev.BatchSizeReduced():
                return  # the chart, the countdown line and the trainer's own OOM notice cover these
            case ev.CheckpointSaved(kind="last"):
                return  # saved every epoch: noise
            case ev.CheckpointSaved():
                self.add_line(f"saved {event.path} (epoch {event.epoch})", "green")
                return
            case ev.NewBest():
                if event.previous is None:
                    was = ""
                elif f"{event.previous:.3f}" == f"{event.val_accuracy:.3f}":
                    was = " (same code accuracy, more characters right)"  # the trainer's tie-break
                else:
                    was = f" (was {event.previous:.3f})"
                self.add_line(f"new best {event.val_accuracy:.3f} at epoch {event.epoch}{was}", "bold green")
                return
            case ev.RunStarted():
                resumed = f", resuming at epoch {event.start_epoch}" if event.start_epoch > 1 else ""
                self.add_line(
                    f"training {event.preset} on {event.device}{resumed}; run folder {event.run_dir}"
                )
                return
            case ev.Failed():
                # Traceback first, error last (as Python prints them): a long traceback must not scroll
                # the one line that says what went wrong out of view.
                if event.traceback:
                    self.write(Text(event.traceback.rstrip(), style="dim red"))
                self.add_line(describe_event(event) or event.message, "bold red")
                return
        text = describe_event(event)
        if text:
            self.add_line(text.strip(), _style(event))

    def add_line(self, message: str, style: str = "") -> None:
        line = Text(f"{self._clock()} ", style="dim")
        line.append(message, style)
        self.write(line)
