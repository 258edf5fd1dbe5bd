"""What a finished (or failed) run left behind, and what to do next."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...core import events as ev
from ...core.train.stopping import StopRequest
from ...words import FINISH_REASONS, characters, epochs_run_words, percent


class FinishBanner(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.display = False

    def clear(self) -> None:
        self.display = False
        self.set_classes("")

    def show_finished(self, e: ev.Finished) -> None:
        text = Text.assemble(
            ("finished: ", "bold"),
            f"{FINISH_REASONS.get(e.reason, e.reason)} after {epochs_run_words(e)}",
        )
        if e.test_accuracy is not None:
            text.append("\ntest accuracy ")
            text.append(percent(e.test_accuracy), "bold green")
            text.append(f" ({characters(e.test_char_accuracy, e.test_char_error_rate)})")
        if e.best_epoch:
            text.append(f" · best validation {percent(e.best_val_accuracy)} at epoch {e.best_epoch}")
        else:
            text.append(" · no epoch ended: nothing validated yet")
        if e.best_checkpoint:
            text.append("\nbest checkpoint ")
            text.append(e.best_checkpoint, "bold")
            text.append(" · press ")
            text.append("e", "bold reverse")
            text.append(" to read captchas with it")
        if e.reason == StopRequest.reason and e.last_checkpoint:
            text.append("\npress ")
            text.append("s", "bold reverse")
            text.append(f" to continue from {e.last_checkpoint}")
        self.update(text)
        self.set_classes("-finished")
        self.display = True

    def show_failed(self, e: ev.Failed) -> None:
        text = Text.assemble(("training failed: ", "bold"), e.message)
        if e.hint:
            text.append(f"\n{e.hint}")
        if e.log_path:
            text.append(f"\ndetails in {e.log_path}")
        self.update(text)
        self.set_classes("-failed")
        self.display = True
