"""Label your own captchas: one image at a time, large, the model's reading typed in already.

Enter saves the input's text as the label (typing over the selected reading corrects it), Ctrl+S skips,
Ctrl+R marks the image unreadable, Ctrl+Z takes back the last answer and shows its image again, Ctrl+T
fine-tunes the model on the answers so far (as every ``--learn-every`` answers do on their own). The
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

The model learns while the user labels (``core.learning``): every ``LearnSettings.every`` labelled answers,
or on Ctrl+T, a worker fine-tunes the model read with on the answers so far, for a short time on one
PyTorch thread (the UI keeps the other core). Its events come back as messages, at most ~10 a second. When
it ends, the new best.pt reads the images still waiting, in the scoring worker's group, and the queue is
ranked anew by its confidence, if it reads more of the answers the round held out than the model before
(else that one stays, as the screen says). A failed round says why and the screen reads on with the model
it had; leaving the screen stops the round (``Learner.stop``).
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
from textual.worker import Worker, get_current_worker

from ...core import events as ev
from ...core.base_model import base_model_path, is_base_model
from ...core.checkpoint import CheckpointError
from ...core.labelling import (
    ACCEPTED,
    CORRECTED,
    Candidate,
    FolderScan,
    LabellingError,
    LabellingSession,
    ScoredChunk,
    scan_folder,
    score,
)
from ...core.learning import Learner, LearnError, LearnSettings, RoundResult
from ...core.predictor import Predictor
from ...words import percent
from ..formatting import charset_preview, model_origin, reads_little_note
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
AGREEMENT_WINDOW = 50  # the reading model's agreement is over this many of the user's last answers
LEARN_REPORT_S = 0.1  # the fine-tune's progress is shown at most this often


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
    def __init__(self, chunk: ScoredChunk, reader: int = 0) -> None:
        super().__init__()
        self.chunk = chunk
        self.reader = reader  # which of the screen's models read it (0: the first; one more per fine-tune)


class Reranked(Message, bubble=False):
    """A new model read again the images that were waiting: their new readings and confidences."""

    def __init__(self, candidates: list[Candidate], reader: int) -> None:
        super().__init__()
        self.candidates = candidates
        self.reader = reader


class RerankProgress(Message, bubble=False):
    def __init__(self, done: int, total: int, reader: int) -> None:
        super().__init__()
        self.done, self.total, self.reader = done, total, reader


class LearnEvent(Message, bubble=False):
    """An event of the fine-tune under way (from its worker thread)."""

    def __init__(self, event: ev.TrainerEvent) -> None:
        super().__init__()
        self.event = event


class LearnEnded(Message, bubble=False):
    """The fine-tune ended: its result and the new model loaded (None: keep reading with the old one),
    or why it could not run or be used (``problem``)."""

    def __init__(self, result: RoundResult | None, predictor: Predictor | None, problem: str = "") -> None:
        super().__init__()
        self.result = result
        self.predictor = predictor
        self.problem = problem


class LabellingFailed(Message, bubble=False):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class RankingFailed(Message, bubble=False):
    """Reading the images to rank them broke off (the model, onnxruntime, memory): labelling goes on."""

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
        Binding("ctrl+t", "learn", "learn now"),
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
        learn: LearnSettings | None = None,
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
        # Learning while labelling (core.learning).
        self.learn = learn if learn is not None else LearnSettings()
        self.learner = Learner(self.folder, self.learn)
        self.predictor: Predictor | None = None  # the model reading now
        self.reader = 0  # which model: 0 the first, one more per fine-tune switched to
        self._reader_name = "no model"  # in words, for the learn line
        self._read_by: dict[str, int] = {}  # image name -> the reader whose reading it has
        self._agreed: list[bool] = []  # the current reader's reading vs each answer given to it
        self.learning = False  # a fine-tune's worker is running
        self._labelled_at_round = 0  # this session's labelled answers when the last round started
        self._learn_state = Text("")  # the learn box's second line while a fine-tune runs
        self.learn_outcome = Text("")  # how the last one ended
        self._learn_run: tuple[int, float | None, float | None] = (0, None, None)  # answers, val, best
        self._rerank_progress: tuple[int, int] | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f"listing {self.folder}…", style="dim"), id="label-status")
        with Horizontal(id="label-row"):
            yield CaptchaImage(self._image_renderer, id="label-image")
            yield CodeView(placeholder="the model's reading of the image shows here", id="label-reading")
        yield Static(KEYS_HINT, id="label-keys")
        yield LabelInput(placeholder="the code in the image", id="label-input")
        yield Static("", id="label-message")
        yield Static("", id="label-progress")
        yield Static("", id="label-learn")
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
        self._queue_scored(scan.unlabelled, self._load_model(), 0, worker)

    @work(thread=True, exclusive=True, group="label-scan", exit_on_error=False)
    def _rerank(
        self, predictor: Predictor, waiting: list[Candidate], unscored: list[Candidate], reader: int
    ) -> None:
        """A new model reads the images waiting (then ranks them anew, at once) and the ones not scored yet."""
        worker = get_current_worker()
        read: list[Candidate] = []
        try:
            for chunk in score(waiting, predictor, pause=self._wait_for_quiet):
                if worker.is_cancelled:
                    return
                # An image that breaks now was readable before: it keeps its place.
                read.extend(chunk.candidates)
                self.post_message(RerankProgress(len(read), len(waiting), reader))
        except Exception as exc:  # noqa: BLE001 - the waiting images keep their readings: say why
            self.post_message(RankingFailed(f"the new model could not read the images waiting: {exc}"))
        self.post_message(Reranked(read, reader))
        self._queue_scored(unscored, predictor, reader, worker)

    def _queue_scored(
        self, candidates: list[Candidate], predictor: Predictor | None, reader: int, worker: Worker
    ) -> None:
        """Read ``candidates`` and post them chunk by chunk. Should reading break off (onnxruntime, memory),
        the rest are still queued, unread (typed in, in folder order), and the screen says why: no image
        is left unasked."""
        posted = 0
        try:
            for chunk in score(candidates, predictor, pause=self._wait_for_quiet):
                if worker.is_cancelled:
                    return
                posted += len(chunk.candidates) + len(chunk.broken)
                self.post_message(ChunkScored(chunk, reader))
            return
        except Exception as exc:  # noqa: BLE001 - reported below; the answers so far are saved already
            self.post_message(RankingFailed(f"reading stopped ({exc}): the rest are asked unread"))
        for chunk in score(candidates[posted:], None, pause=self._wait_for_quiet):
            if worker.is_cancelled:
                return
            self.post_message(ChunkScored(chunk, reader))

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
        except Exception as exc:  # noqa: BLE001 - a damaged file, onnxruntime, memory: say it, never die silently
            problem = str(exc) if isinstance(exc, CheckpointError) else f"cannot load {path}: {exc}"
            self.post_message(ModelChosen(path, None, problem))
            return None
        self.post_message(ModelChosen(path, predictor))
        return predictor

    # ---- what the worker found ----------------------------------------------------------------------------

    def on_ranking_failed(self, message: RankingFailed) -> None:
        self._model_line = Text(message.message, style="bold yellow")
        self._show_progress()

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
        self.predictor = message.predictor
        self._reader_name = (
            "no model"
            if message.predictor is None
            else "the base model"
            if is_base_model(message.path)
            else f"{message.path.parent.name}/{message.path.name}"
        )
        self._show_learn()
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
                f" · validation {percent(meta.val_accuracy)}",
                reads_little_note(message.path, meta.val_accuracy),
                model_origin(message.path),
            )
        self._show_progress()

    def on_chunk_scored(self, message: ChunkScored) -> None:
        if self.session is None or message.reader != self.reader:
            return  # read by a model replaced since: the new one reads it again
        for candidate in message.chunk.candidates:
            self._read_by[candidate.name] = message.reader
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

    def action_learn(self) -> None:
        """Ctrl+T: fine-tune on the answers so far, now."""
        self._learn(asked=True)

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
        taken_back = session.history[-1] if session.history else None
        try:
            undone = session.undo()
        except LabellingError as exc:
            self._say(f"{last}{exc}", error=True)
            return
        if taken_back is not None and self._judged(taken_back) and self._agreed:
            self._agreed.pop()
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
        self.learner.stop()
        await self.app.action_quit()

    def on_unmount(self) -> None:
        # Quitting, or back to the dashboard: a fine-tune under way ends at its next batch (the app's exit
        # waits for its thread), and no other starts.
        self.learner.stop()

    def _act(self, step, done: str) -> None:
        session = self.session
        if session is None or session.current is None or session.scan.cannot_save:
            return
        answered = session.current
        self._hold_background()
        given = len(session.history)
        try:
            step(session)
        except LabellingError as exc:
            hint = " (type the code, or Ctrl+R if it cannot be read)" if "typed" in str(exc) else ""
            self._say(f"{answered.name}: {exc}{hint}", error=True)
            return
        if len(session.history) > given and self._judged(session.history[-1]):
            self._agreed.append(session.history[-1].kind == ACCEPTED)
        self._say(f"{answered.name}: {done}")
        self._show_current()
        self._learn_when_due()

    # ---- learning while labelling ---------------------------------------------------------------------

    def _judged(self, answer) -> bool:
        """Whether an answer tells how the model read with now does: a label given to its own reading."""
        return (
            answer.kind in (ACCEPTED, CORRECTED) and self._read_by.get(answer.candidate.name) == self.reader
        )

    def _learn_when_due(self) -> None:
        session = self.session
        every = self.learn.every
        if every and session is not None and session.tally.labelled - self._labelled_at_round >= every:
            self._learn(asked=False)

    def _learn(self, asked: bool) -> None:
        session = self.session
        if session is None or session.scan.cannot_save or self.learner.stopped:
            return
        if self.learning:
            if asked:
                self._say("the model is learning already: the next round starts after this one")
            return
        if session.labelled < self.learn.min_answers:
            if asked:
                self._say(
                    f"{session.labelled} labelled answers so far: the model learns from "
                    f"{self.learn.min_answers} on",
                    error=True,
                )
            return
        init = self._model_to_tune()
        if init is None:
            if asked:
                self._say(
                    "no model to fine-tune (this install has no base model): name one with --model",
                    error=True,
                )
            return
        self.learning = True
        self._labelled_at_round = session.tally.labelled
        self._learn_state = Text(f"learning: packing your {session.labelled:,} answers…", style="yellow")
        self._show_learn()
        self._fine_tune(init)

    def _model_to_tune(self) -> Path | None:
        """The model read with (a checkpoint), else the base model."""
        path = self.checkpoint
        if self.predictor is not None and path is not None and path.suffix != ".onnx":
            return path
        return base_model_path()

    @work(thread=True, exclusive=True, group="label-learn", exit_on_error=False)
    def _fine_tune(self, init: Path) -> None:
        last = 0.0

        def on_event(event: ev.TrainerEvent) -> None:
            nonlocal last
            if isinstance(event, ev.BatchProgress):
                now = time.monotonic()
                if now - last < LEARN_REPORT_S:
                    return
                last = now
            elif not isinstance(event, (ev.RunStarted, ev.EpochEnd, ev.NewBest)):
                return
            self.post_message(LearnEvent(event))

        try:
            result = self.learner.run_round(init, on_event)
        except LearnError as exc:
            self.post_message(LearnEnded(None, None, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - whatever it is, the screen says it and reads on
            self.post_message(LearnEnded(None, None, f"{type(exc).__name__}: {exc}"))
            return
        if isinstance(result.outcome, ev.Failed):
            self.post_message(LearnEnded(result, None, result.outcome.message))
            return
        if result.best is None or self.learner.stopped:
            self.post_message(LearnEnded(result, None, "stopped before it had a model to read with"))
            return
        if not result.kept:  # it reads fewer of the held-out answers: the model before stays
            self.learner.prune(keep=init)
            self.post_message(LearnEnded(result, None))
            return
        try:
            predictor = Predictor.load(result.best, self.device)
        except Exception as exc:  # noqa: BLE001 - CheckpointError, or a file cut short
            self.post_message(LearnEnded(result, None, f"cannot read its model {result.best}: {exc}"))
            return
        self.learner.prune(keep=result.best)  # the rounds before: here, not on the UI thread
        self.post_message(LearnEnded(result, predictor))

    def on_learn_event(self, message: LearnEvent) -> None:
        event = message.event
        if isinstance(event, ev.RunStarted):
            answers = event.train_count + event.val_count + event.test_count
            self._learn_run = (answers, None, None)
            self._learn_state = Text(
                f"learning from {answers:,} answers: {event.preset} on {event.device}, up to "
                f"{event.time_limit_s or 0:.0f} s…",
                style="yellow",
            )
        elif isinstance(event, ev.EpochEnd):
            answers, _, best = self._learn_run
            self._learn_run = (answers, event.val_accuracy, best)
        elif isinstance(event, ev.NewBest):
            answers, val, _ = self._learn_run
            self._learn_run = (answers, val, event.val_accuracy)
        elif isinstance(event, ev.BatchProgress):
            answers, val, best = self._learn_run
            parts = [
                f"learning from {answers:,} answers: epoch {event.epoch} ({event.batch}/{event.batches})"
            ]
            if val is not None:
                parts.append(
                    f"validation {percent(val)}" + (f" (best {percent(best)})" if best is not None else "")
                )
            if event.time_left_s is not None:
                parts.append(f"{event.time_left_s:.0f} s left")
            self._learn_state = Text(" · ".join(parts), style="yellow")
        self._show_learn()

    def on_learn_ended(self, message: LearnEnded) -> None:
        self.learning = False
        self._learn_state = Text("")
        session = self.session
        result = message.result
        if result is not None and result.best is not None and not result.kept:
            # Not better on the answers it held out: no failure, the screen reads on as it did.
            every = self.learner.settings.every
            again = f"; it learns again after {every} more answers" if every else ""
            self.learn_outcome = Text(
                f"the fine-tuned model was not kept: {result.comparison.describe()} · still reading with "
                f"{self._reader_name}{again}",
                style="yellow",
            )
            self._show_learn()
            return
        if message.predictor is None or session is None:
            self.learn_outcome = Text.assemble(
                ("learning failed: ", "bold red"),
                (message.problem, "red"),
                f" · still reading with {self._reader_name}; every answer is saved",
            )
            self._say(
                f"the model could not learn: {message.problem} (your answers are all saved)", error=True
            )
            self._show_learn()
            return
        predictor = message.predictor
        self.predictor, self.checkpoint = predictor, result.best
        self.reader += 1
        self._agreed = []
        at = time.strftime("%H:%M", time.localtime(result.finished_at))
        self._reader_name = f"the model fine-tuned on {result.answers:,} answers at {at}"
        session.keep_case = predictor.meta.spec.keep_case
        meta = predictor.meta
        self._model_line = Text.assemble(
            ("model ", "dim"),
            (meta.preset, "bold"),
            f" · {meta.spec.lengths} chars from {charset_preview(meta.spec.charset)}",
            model_origin(result.best),
        )
        outcome = result.outcome
        test = f", test {percent(outcome.test_accuracy)}" if outcome.test_accuracy is not None else ""
        waiting = session.queue.items()
        unscored = session.scan.unlabelled[session.scored :] if session.scoring else []
        self._rerank_progress = (0, len(waiting))
        held_out = f"; {result.comparison.describe()}" if result.comparison else ""
        self.learn_outcome = Text(
            f"learnt from {result.answers:,} answers in {outcome.elapsed_s:.0f} s (validation "
            f"{percent(outcome.best_val_accuracy)}{test}{held_out})",
            style="green",
        )
        self._rerank(predictor, waiting, unscored, self.reader)
        self._show_progress()
        self._show_learn()
        self._learn_when_due()

    def on_rerank_progress(self, message: RerankProgress) -> None:
        if message.reader == self.reader and self._rerank_progress is not None:
            self._rerank_progress = (message.done, message.total)
            self._show_learn()

    def on_reranked(self, message: Reranked) -> None:
        session = self.session
        if session is None or message.reader != self.reader:
            return
        for candidate in message.candidates:
            self._read_by[candidate.name] = message.reader
        shown = session.reread(message.candidates)
        self._rerank_progress = None
        self._drawn_ahead = []
        if shown:
            self._show_current()
        else:
            self._show_progress()
            self._draw_next()
        self._show_learn()

    def _show_learn(self) -> None:
        window = self._agreed[-AGREEMENT_WINDOW:]
        if self.predictor is None:
            judged = Text("")
        elif window:
            agreed = sum(window)
            judged = Text.assemble(
                " · it agreed with ",
                (f"{agreed} of your last {len(window)} answers", "bold"),
                f" ({percent(agreed / len(window))})",
            )
        else:
            judged = Text(" · not yet checked against your answers", style="dim")
        first = Text.assemble(("reading with ", "dim"), (self._reader_name, "bold"), judged)
        if self.learning:
            second = self._learn_state
        elif self._rerank_progress is not None:
            done, total = self._rerank_progress
            second = Text(
                f"re-ranking by the new model… {done:,} / {total:,} images read again", style="yellow"
            )
        elif self.learn_outcome.plain:
            second = Text.assemble(self.learn_outcome, " · ", self._learn_plan())
        else:
            second = self._learn_plan()
        self.query_one("#label-learn", Static).update(Text("\n").join([first, second]), layout=False)

    def _learn_plan(self) -> Text:
        session, every = self.session, self.learn.every
        if not every or session is None:
            return Text("Ctrl+T fine-tunes the model on your answers", style="dim")
        left = max(0, every - (session.tally.labelled - self._labelled_at_round))
        return Text(f"learns every {every} answers (next after {left} more) · Ctrl+T: now", style="dim")

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
        self._show_learn()

    def _status(self, text: Text) -> None:
        if text != self._status_text:  # unchanged from one image to the next: no repaint
            self._status_text = text
            self.query_one("#label-status", Static).update(text, layout=False)

    def _say(self, text: str, error: bool = False) -> None:
        message = self.query_one("#label-message", Static)
        message.update(text, layout=False)
        message.set_class(error, "-error")
