"""Label your own captchas: one image at a time, large, the model's reading typed in already.

Enter saves the input's text as the label (typing over the selected reading corrects it), Ctrl+S skips,
Ctrl+R marks the image unreadable, Ctrl+Z takes back the last answer and shows its image again. The
input keeps its own editing keys (Ctrl+U clears the line, as in every text field). Every answer, and every
undo, is a row in the folder's labels.csv, synced, before the next image shows (``core.labelling``).
Listing the folder, loading the model and scoring the images run in a thread worker that posts one message
per chunk of images; the UI thread only pops the next image off an in-memory queue and shows it. What
makes that quick (Enter to the next image on screen):

* the next images' half cells are drawn ahead by another worker, a moment after an image shows (not at
  once: that thread would hold the GIL while the frame is being drawn);
* every box has a fixed size (app.tcss), so updates repaint text without a layout pass;
* background work (scoring, drawing ahead) waits a moment after each key (``_wait_for_quiet``), as its
  Python code would hold the GIL while the UI thread draws.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static
from textual.worker import get_current_worker

from ...core.checkpoint import CheckpointError
from ...core.labelling import (
    Candidate,
    FolderScan,
    LabellingError,
    LabellingSession,
    ScoredChunk,
    scan_folder,
    score,
)
from ...core.predictor import Predictor
from ...words import percent
from ..formatting import charset_preview, model_origin
from ..widgets.captcha_image import CaptchaImage, draw_ahead
from ..widgets.code_view import CodeView

DRAW_AHEAD = 2  # images drawn before they are asked for, so that Enter shows the next one at once
DRAW_AHEAD_AFTER_S = 0.1  # how long after an image shows the next ones are drawn
# Background work (scoring, drawing ahead) holds off this long after each key: its Python code would
# hold the GIL the UI thread needs to draw the next frame.
QUIET_AFTER_KEY_S = 0.25
KEYS_HINT = (
    "Enter saves the text as the label · Ctrl+S skips (asked again next time) · Ctrl+R: unreadable"
    " · Ctrl+Z: undo"
)


class FolderScanned(Message, bubble=False):
    def __init__(self, scan: FolderScan) -> None:
        super().__init__()
        self.scan = scan


class ModelChosen(Message, bubble=False):
    """The model that pre-fills the readings, or why there is none (``predictor`` None)."""

    def __init__(self, path: Path, predictor: Predictor | None, problem: str = "") -> None:
        super().__init__()
        self.path = path
        self.predictor = predictor
        self.problem = problem


class ChunkScored(Message, bubble=False):
    def __init__(self, chunk: ScoredChunk) -> None:
        super().__init__()
        self.chunk = chunk


class LabellingFailed(Message, bubble=False):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


# The screen's keys that act on the image on show: run in the order typed (see LabelInput).
ANSWER_ACTIONS = ("answer", "skip", "unreadable", "undo")


class LabelInput(Input):
    """The answer field: its keys and the screen's answer keys run in the order typed, a burst included.

    Textual runs a focused widget's bindings, and the screen's, once the key has bubbled up to the app; by
    then the characters typed after it are in. In a burst (a fast typist, a paste, tmux send-keys), Enter
    then a code would save the code with it, Ctrl+U then a code would clear the code, and Ctrl+Z right
    after Enter would undo the answer before.
    """

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable:
            return  # Input._on_key inserts it
        screen = self.screen
        chain = [
            (screen, b)
            for b in screen._bindings.key_to_bindings.get(event.key, ())
            if b.action in ANSWER_ACTIONS
        ]
        chain += [(self, b) for b in self._bindings.key_to_bindings.get(event.key, ())]
        for node, binding in chain:
            if await self.app.run_action(binding.action, node):
                event.stop()
                event.prevent_default()
                return


class LabelScreen(Screen):
    # Keys the input (Textual 8's Input) does not use for editing: an answer is never one keystroke away
    # from a line edit typed out of habit (Ctrl+U clears the line there, as in every text field).
    BINDINGS = [
        Binding("enter", "answer", "save", show=False),
        Binding("ctrl+s", "skip", "skip"),
        Binding("tab", "skip", "skip", show=False),
        Binding("ctrl+r", "unreadable", "unreadable"),
        Binding("ctrl+z", "undo", "undo"),
        # One of the two shows, by check_action: started on its own (`captcha-tui label`), Escape leaves.
        Binding("escape", "back", "back"),
        Binding("escape", "leave", "quit"),
    ]

    def __init__(
        self,
        folder: Path,
        checkpoint: Path | None,
        device: str = "cpu",
        image_renderer: str = "auto",
        standalone: bool = False,
    ) -> None:
        super().__init__(id="label-screen")
        self.folder = Path(folder)
        self.standalone = standalone  # the app's only screen in use: Escape quits instead of going back
        self.checkpoint = checkpoint
        self.device = device
        self._image_renderer = image_renderer
        self.session: LabellingSession | None = None
        self._model_line: Text = Text("loading the model…", style="dim")
        self._drawn_ahead: list[Path] = []
        self._status_text: Text | None = None
        self._quiet_until = 0.0  # time.monotonic() before which the workers wait (see _wait_for_quiet)

    def compose(self) -> ComposeResult:
        yield Static(Text(f"listing {self.folder}…", style="dim"), id="label-status")
        with Horizontal(id="label-row"):
            yield CaptchaImage(self._image_renderer, id="label-image")
            yield CodeView(id="label-reading")
        yield Static(KEYS_HINT, id="label-keys")
        yield LabelInput(placeholder="the code in the image", id="label-input")
        yield Static("", id="label-message")
        yield Static("", id="label-progress")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#label-reading", CodeView).border_title = "the model's reading"
        self.query_one("#label-image", CaptchaImage).border_title = "captcha"
        self.query_one("#label-input", Input).focus()
        self.prepare_session()

    # ---- the worker: list, load, score; it only posts messages ----------------------------------------

    @work(thread=True, exclusive=True, group="label-scan", exit_on_error=False)
    def prepare_session(self) -> None:
        worker = get_current_worker()
        try:
            scan = scan_folder(self.folder)
        except LabellingError as exc:
            self.post_message(LabellingFailed(str(exc)))
            return
        self.post_message(FolderScanned(scan))
        if not scan.unlabelled or scan.cannot_save:
            return
        predictor = self._load_model()
        for chunk in score(scan.unlabelled, predictor, pause=self._wait_for_quiet):
            if worker.is_cancelled:
                return
            self.post_message(ChunkScored(chunk))

    def _wait_for_quiet(self) -> None:
        """In a worker: wait while the user is answering (a float read is atomic: no lock needed)."""
        while time.monotonic() < self._quiet_until and not get_current_worker().is_cancelled:
            time.sleep(0.01)

    def _hold_background(self) -> None:
        self._quiet_until = time.monotonic() + QUIET_AFTER_KEY_S

    def on_input_changed(self, event: Input.Changed) -> None:
        self._hold_background()  # typing: keep the frames quick

    def _load_model(self) -> Predictor | None:
        path = self.checkpoint
        if path is None or not path.exists():
            where = f"no model at {path}" if path else "no model"
            self.post_message(ModelChosen(path or Path(), None, where))
            return None
        try:
            predictor = Predictor.load(path, self.device)
        except CheckpointError as exc:
            self.post_message(ModelChosen(path, None, str(exc)))
            return None
        self.post_message(ModelChosen(path, predictor))
        return predictor

    # ---- what the worker found ----------------------------------------------------------------------------

    def on_labelling_failed(self, message: LabellingFailed) -> None:
        self._status(Text(message.message, style="bold red"))
        self.query_one("#label-input", Input).disabled = True

    def on_folder_scanned(self, message: FolderScanned) -> None:
        scan = message.scan
        self.session = LabellingSession(scan)
        if scan.cannot_save:
            self._model_line = Text(scan.cannot_save, style="bold red")
            self._say(
                "nothing could be saved, so nothing is asked: label a copy of the folder instead", error=True
            )
        elif not scan.unlabelled:
            self._model_line = Text("")
        self._show_current()

    def on_model_chosen(self, message: ModelChosen) -> None:
        if message.predictor is None:
            self._model_line = Text.assemble(
                (f"{message.problem}", "bold yellow"), " · the input starts empty: type what you read"
            )
        else:
            meta = message.predictor.meta
            if self.session is not None:
                self.session.keep_case = meta.spec.keep_case
            self._model_line = Text.assemble(
                ("model ", "dim"),
                (meta.preset, "bold"),
                f" · {meta.spec.lengths} chars from {charset_preview(meta.spec.charset)}",
                model_origin(message.path),
            )
        self._show_progress()

    def on_chunk_scored(self, message: ChunkScored) -> None:
        if self.session is None:
            return
        if self.session.add(message.chunk):
            self._show_current()
        else:
            self._show_progress()
            self._draw_next()  # a less confident image may have come in

    # ---- drawing the next images ahead, in a worker ------------------------------------------------------

    def _draw_next(self) -> None:
        size = self.query_one("#label-image", CaptchaImage).ahead_size
        if self.session is None or size is None:
            return
        upcoming = [c.path for c in self.session.queue.peek(DRAW_AHEAD)]
        if upcoming and upcoming != self._drawn_ahead:
            self._drawn_ahead = upcoming
            self._draw_ahead(upcoming, size)

    @work(thread=True, exclusive=True, group="label-draw", exit_on_error=False)
    def _draw_ahead(self, paths: list[Path], size: tuple[int, int]) -> None:
        for path in paths:
            draw_ahead(path, size, pause=self._wait_for_quiet)

    # ---- answers ----------------------------------------------------------------------------------------

    def action_answer(self) -> None:
        value = self.query_one("#label-input", Input).value  # read now: the keys after Enter are not in yet
        self._act(lambda session: session.answer(value), "saved")

    def action_skip(self) -> None:
        self._act(lambda session: session.skip(), "skipped")

    def action_unreadable(self) -> None:
        self._act(lambda session: session.mark_unreadable(), "marked unreadable")

    def action_undo(self) -> None:
        session = self.session
        if session is None or session.scan.cannot_save:
            return
        self._hold_background()
        last = session.history[-1].candidate.name + ": " if session.history else ""
        try:
            undone = session.undo()
        except LabellingError as exc:
            self._say(f"{last}{exc}", error=True)
            return
        self._say(f"{undone.name}: undone, answer it again")
        self._show_current()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return not self.standalone
        if action == "leave":
            return self.standalone
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    async def action_leave(self) -> None:
        await self.app.action_quit()

    def _act(self, step, done: str) -> None:
        session = self.session
        if session is None or session.current is None or session.scan.cannot_save:
            return
        answered = session.current
        self._hold_background()
        try:
            step(session)
        except LabellingError as exc:
            hint = " (type the code, or Ctrl+R if it cannot be read)" if "typed" in str(exc) else ""
            self._say(f"{answered.name}: {exc}{hint}", error=True)
            return
        self._say(f"{answered.name}: {done}")
        self._show_current()

    # ---- drawing ------------------------------------------------------------------------------------------

    def _show_current(self) -> None:
        session = self.session
        candidate = session.current if session else None
        box = self.query_one("#label-input", Input)
        if candidate is not None:
            self._show_image(candidate)
            box.value = candidate.reading
            box.select_all()  # typing replaces the whole reading; an arrow key edits it instead
            if box.disabled:
                box.disabled = False
                box.focus()
            # After this image is on screen (drawing ahead holds the GIL, which would slow that frame).
            self.set_timer(DRAW_AHEAD_AFTER_S, self._draw_next)
        else:
            waiting = session is not None and session.scoring and not session.scan.cannot_save
            self.query_one("#label-image", CaptchaImage).clear(
                "waiting for the model to read the next images…" if waiting else "no image to label"
            )
            self.query_one("#label-reading", CodeView).update("", layout=False)
            box.value = ""
            box.disabled = True
        self._show_progress()

    def _show_image(self, candidate: Candidate) -> None:
        # Fixed sizes (app.tcss): everything here is repainted without a layout pass.
        self.query_one("#label-image", CaptchaImage).show(candidate.path, layout=False)
        reading = self.query_one("#label-reading", CodeView)
        if candidate.prediction is None:
            reading.update(Text("no reading: type the code you see", style="dim"), layout=False)
        else:
            reading.show(candidate.prediction, None, layout=False)

    def _show_progress(self) -> None:
        session = self.session
        if session is None:
            return
        scan, tally = session.scan, session.tally
        status = [self._model_line] if self._model_line.plain else []
        if scan.cannot_save:
            pass
        elif session.scoring:
            status.append(
                Text.assemble(
                    (f"ranking… {session.scored:,} / {len(scan.unlabelled):,} read", "yellow"),
                    (" · showing the least confident so far", "dim"),
                )
            )
        elif session.current is None and tally.skipped:
            status.append(
                Text(
                    f"nothing left to ask this time: {tally.skipped} skipped, asked again next time",
                    style="bold yellow",
                )
            )
        elif session.current is None:
            status.append(
                Text(
                    f"every image in {scan.folder} is answered · next: captcha-tui prepare {scan.folder}",
                    style="bold green",
                )
            )
        self._status(Text("\n").join(status))

        # "labelled" means given a label, here and in the session line; "answered" adds the unreadable.
        lines = [
            Text.assemble(
                ("answered ", "dim"),
                (f"{session.done:,} / {session.total:,}", "bold"),
                f": {session.labelled:,} labelled · {session.unreadable:,} unreadable",
                (f" · in {scan.label_file.path}", "dim"),
            )
        ]
        if session.broken:
            broken, reason = session.broken[0]
            count = len(session.broken)
            lines.append(
                Text(
                    f"{count:,} {'image cannot be read and is' if count == 1 else 'images cannot be read and are'}"
                    f" left out (e.g. {broken.name}: {reason})",
                    style="yellow",
                )
            )
        lines.append(
            Text(
                f"this session: {tally.labelled} labelled ({tally.accepted} as read, {tally.corrected} corrected)"
                f" · {tally.unreadable} unreadable · {tally.skipped} skipped"
            )
        )
        accuracy = tally.model_accuracy
        if accuracy is not None:
            judged = tally.accepted + tally.corrected
            lines.append(
                Text.assemble(
                    "the model's reading accepted unchanged ",
                    (f"{tally.accepted}/{judged} = {percent(accuracy)}", "bold"),
                    (" · its accuracy on your captchas so far", "dim"),
                )
            )
        self.query_one("#label-progress", Static).update(Text("\n").join(lines), layout=False)

    def _status(self, text: Text) -> None:
        if text != self._status_text:  # unchanged from one image to the next: no repaint
            self._status_text = text
            self.query_one("#label-status", Static).update(text, layout=False)

    def _say(self, text: str, error: bool = False) -> None:
        message = self.query_one("#label-message", Static)
        message.update(text, layout=False)
        message.set_class(error, "-error")
