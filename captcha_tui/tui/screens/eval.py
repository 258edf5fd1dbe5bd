"""Read captchas with a checkpoint: a path prompt with Tab completion, the image, the code, a history.

Loading the model and predicting run in thread workers; every failure (a missing checkpoint, a wrong path,
an empty folder, a file that isn't an image) becomes an inline message and the screen carries on. A read
of many files goes in chunks: the message line counts them with the accuracy so far, and Escape stops the
read between two chunks, keeping what was read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.geometry import Region, Spacing
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ...core.base_model import named_model
from ...core.checkpoint import CheckpointError
from ...core.decoding import ReadError, ReadOptions
from ...core.predictor import PathResult, Predictor, accuracy, expand_paths
from ...words import percent
from ..formatting import charset_preview, model_origin, reads_little_note
from ..messages import ModelFailed, ModelLoaded, PredictionsReady, ReadProgress
from ..widgets.captcha_image import CaptchaImage
from ..widgets.code_view import CodeView
from ..widgets.path_completion import PathInput

MAX_ROWS_PER_REQUEST = 1000  # a huge folder still reports its accuracy, but the table stays light
# Files per step of a read: progress and Escape act between steps. Small enough that Escape answers within
# a fraction of a second on a CPU, large enough for the model to batch well.
READ_CHUNK = 64
PROGRESS_INTERVAL = 0.1  # seconds between progress messages: at most ~10 a second, whatever the read rate
PROGRESS_BAR_WIDTH = 20
PATH_WIDTH = 48
HISTORY_COLUMNS = (("path", PATH_WIDTH), ("code", 8), ("confidence", 10), ("label", 8), ("", 2))


class EvalScreen(Screen):
    AUTO_FOCUS = "#image-path"  # also where keys typed before the screen is up must land
    BINDINGS = [
        # Escape stops a read in progress; otherwise it goes back. check_action enables one at a time, so
        # the footer names the one Escape does now.
        Binding("escape", "stop_reading", "stop reading"),
        Binding("escape", "back", "training"),
        Binding("escape", "leave", "quit"),  # the screen `captcha-tui eval` opened: there is no dashboard
        # m where it can't be typed into a field; Ctrl+O works in the path fields too. The footer
        # shows whichever of the two works where the focus is.
        Binding("m,ctrl+o", "choose_checkpoint", "checkpoint"),
    ]

    def __init__(
        self,
        checkpoint: Path,
        device: str = "cpu",
        image_renderer: str = "auto",
        standalone: bool = False,
        read_options: ReadOptions | None = None,
    ) -> None:
        super().__init__(id="eval-screen")
        self.standalone = standalone  # the app's only screen in use: Escape quits instead of going back
        self.checkpoint = Path(checkpoint)
        self.device = device
        self._first_options = read_options or ReadOptions()  # eval --charset / --length, typed in already
        self._image_renderer = image_renderer
        self._model_lock = threading.Lock()  # one load at a time; workers share the loaded model
        self._predictor: Predictor | None = None
        self._predictor_key: tuple[Path, int | None] | None = None  # (path, modification time)
        # The checkpoint read with before the one being switched to: kept where that one cannot be loaded.
        self._fallback: Path | None = None
        self.results: list[PathResult] = []  # every good prediction so far, in table order
        self._read_id = 0  # the newest read; answers to older ones (replaced by it) are dropped
        self._reading: Worker | None = None  # the newest read's worker until its answer arrives

    def compose(self) -> ComposeResult:
        yield Static(Text("loading the model…", style="dim"), id="model-info")
        with Horizontal(id="checkpoint-row"):
            yield Label("checkpoint ", id="checkpoint-label")
            yield PathInput(
                str(self.checkpoint),
                placeholder="path to a .pt checkpoint or an exported .onnx model",
                id="checkpoint",
            )
        with Horizontal(id="read-options-row"):
            yield Label("read only ", classes="option-label")
            first = self._first_options
            yield Input(first.charset or "", placeholder="any of the model's characters", id="read-charset")
            yield Label(" length ", classes="option-label")
            yield Input(
                "" if first.length is None else str(first.length),
                placeholder="any",
                id="read-length",
                type="integer",
            )
        yield PathInput(placeholder="image, folder or glob · Tab completes · Enter reads", id="image-path")
        yield Static("", id="eval-message")
        with Horizontal(id="prediction-row"):
            yield CaptchaImage(self._image_renderer, id="captcha-image")
            yield CodeView(id="code-view")
        table = DataTable(id="history", cursor_type="row", zebra_stripes=True)
        table.border_title = "history"
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # Fixed widths: auto-sized columns change width after rows arrive, and DataTable can keep a
        # row it drew in between at the old width.
        for label, width in HISTORY_COLUMNS:
            table.add_column(label, width=width)
        self.load_model(self.checkpoint)

    # ---- actions -----------------------------------------------------------------------------------------

    @property
    def reading(self) -> bool:
        """Whether a read is going on that Escape can still stop."""
        worker = self._reading
        return (
            worker is not None
            and not worker.is_cancelled
            and worker.state in (WorkerState.PENDING, WorkerState.RUNNING)
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop_reading":
            return self.reading
        if action == "back":
            return not self.reading and not self.standalone
        if action == "leave":
            return not self.reading and self.standalone
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    async def action_leave(self) -> None:
        await self.app.action_quit()

    def action_stop_reading(self) -> None:
        if self._reading is not None:
            self._reading.cancel()  # the worker stops after its current chunk and sends what it read
            self._say("stopping…")
        self.refresh_bindings()

    def action_choose_checkpoint(self) -> None:
        checkpoint = self.query_one("#checkpoint", Input)
        checkpoint.focus()
        checkpoint.select_all()

    def use_checkpoint(self, path: Path) -> None:
        """Switch to another checkpoint (e.g. the best one of the run that just finished)."""
        self._switch_to(Path(path))

    def _switch_to(self, path: Path) -> None:
        """Read with ``path`` from now on, or with the model loaded now if ``path`` turns out unusable."""
        key = self._predictor_key
        self._fallback = key[0] if key is not None and key[0] != path else None
        self.query_one("#checkpoint", Input).value = str(path)
        self.checkpoint = path
        self.load_model(path)

    def read(self, request: str) -> None:
        """Predict a file, folder or glob (what pressing Enter in the path prompt does)."""
        request = request.strip()
        if not request:
            self._say("type an image path, a folder or a glob first", error=True)
            return
        options, problem = self._read_options()
        if problem:
            self._say(problem, error=True)
            return
        self._say(f"reading {request}…")
        # The shown result belongs to the previous request: dimmed until this one answers.
        self.query_one("#prediction-row").add_class("-stale")
        self._read_id += 1
        # exclusive: a new request stops the one before it (whose answer is then dropped).
        self._reading = self.predict(request, self.checkpoint, options, self._read_id)
        self.refresh_bindings()

    def _read_options(self) -> tuple[ReadOptions, str]:
        """The read-time constraints typed in (the same as eval --charset / --length); a problem, or ''."""
        charset = self.query_one("#read-charset", Input).value.strip() or None
        length_text = self.query_one("#read-length", Input).value.strip()
        try:
            length = int(length_text) if length_text else None
        except ValueError:
            return ReadOptions(charset), f"length: a number of characters, or empty (got {length_text!r})"
        return ReadOptions(charset, length), ""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "checkpoint":
            typed = event.value.strip()
            self._switch_to((named_model(typed) or Path(typed)).expanduser())  # `base`: the base model
            self.query_one("#image-path", Input).focus()
        elif event.input.id in ("read-charset", "read-length"):
            # New constraints: read the last request again with them, if there is one.
            path = self.query_one("#image-path", Input)
            if path.value.strip():
                self.read(path.value)
            path.focus()
        else:
            self.read(event.value)
            # Kept for another look or an edit (an arrow key), but selected: a new path typed or pasted
            # replaces it instead of being appended to it.
            event.input.select_all()

    # ---- workers (threads): they only post messages ------------------------------------------------------

    @work(thread=True, group="eval-model", exit_on_error=False)
    def load_model(self, path: Path) -> None:
        self._loaded_predictor(path)

    @work(thread=True, exclusive=True, group="eval-predict", exit_on_error=False)
    def predict(
        self, request: str, checkpoint: Path, options: ReadOptions | None = None, read_id: int | None = None
    ) -> None:
        def answer(results: list[PathResult], problems: list[str], total: int | None = None) -> None:
            stopped = total is not None and len(results) < total
            self.post_message(PredictionsReady(request, results, problems, read_id, total, stopped))

        try:
            self._predict(request, checkpoint, options or ReadOptions(), read_id, answer)
        except Exception as exc:  # noqa: BLE001 - report anything, keep the screen alive
            answer([], [f"prediction failed: {exc}"])

    def _predict(
        self,
        request: str,
        checkpoint: Path,
        options: ReadOptions,
        read_id: int | None,
        answer: Callable[..., None],
    ) -> None:
        """The body of :meth:`predict` (in its thread): every way out answers once."""
        worker = get_current_worker()
        predictor, problem = self._loaded_predictor(checkpoint)
        if predictor is None:
            answer([], [f"no model to read with: {problem}"])
            return
        try:
            predictor.plan(options)
        except ReadError as exc:  # e.g. a length a per-position model cannot read
            answer([], [str(exc)])
            return
        paths, problems = expand_paths([request])
        results: list[PathResult] = []
        right = labelled = 0
        posted = None  # when the last progress message went
        for chunk in predictor.read_chunks(paths, READ_CHUNK, options):
            results.extend(chunk)
            if worker.is_cancelled:
                break  # stopped (Escape; the rows read so far are kept) or replaced by a newer read
            chunk_right, chunk_labelled = accuracy(chunk)
            right, labelled = right + chunk_right, labelled + chunk_labelled
            now = time.monotonic()
            if len(results) < len(paths) and (posted is None or now - posted >= PROGRESS_INTERVAL):
                posted = now
                self.post_message(ReadProgress(read_id, request, len(results), len(paths), right, labelled))
        answer(results, problems, len(paths))

    def _loaded_predictor(self, path: Path) -> tuple[Predictor | None, str]:
        """The model for ``path``, loaded once per version of the file (training rewrites best.pt);
        posts ModelLoaded/ModelFailed when it loads."""
        with self._model_lock:
            key = (path, _modified(path))
            if self._predictor is not None and self._predictor_key == key:
                return self._predictor, ""
            try:
                predictor = Predictor.load(path, self.device)
            except Exception as exc:  # noqa: BLE001 - a damaged file, onnxruntime, memory: say it, never die silently
                problem = str(exc) if isinstance(exc, CheckpointError) else f"cannot load {path}: {exc}"
                if self._predictor_key is not None and self._predictor_key[0] == path:
                    self._predictor, self._predictor_key = None, None  # that file itself broke
                self.post_message(ModelFailed(path, problem))
                return None, problem
            self._predictor, self._predictor_key = predictor, key
            self.post_message(ModelLoaded(path, predictor))
            return predictor, ""

    # ---- results -----------------------------------------------------------------------------------------

    def on_model_loaded(self, message: ModelLoaded) -> None:
        if message.path != self.checkpoint:
            return  # a model switched away from meanwhile
        self._fallback = None
        meta = message.predictor.meta
        self.query_one("#model-info", Static).update(
            Text.assemble(
                ("model ", "dim"),
                (meta.preset, "bold"),
                f" · {meta.spec.lengths} chars from {charset_preview(meta.spec.charset)}",
                f" · epoch {meta.epoch}, validation {percent(meta.val_accuracy)}",
                reads_little_note(message.path, meta.val_accuracy),
                model_origin(message.path),
            )
        )

    def on_model_failed(self, message: ModelFailed) -> None:
        if message.path != self.checkpoint:
            return
        fallback, self._fallback = self._fallback, None
        if fallback is not None:  # the model read with until now stays, and says so
            self.checkpoint = fallback
            self.query_one("#checkpoint", Input).value = str(fallback)
            self._say(
                f"cannot use {message.path}: {message.message} · still reading with {fallback}", error=True
            )
            return
        hint = "" if message.path.exists() else " · train one first (s on the training screen) or press m"
        self.query_one("#model-info", Static).update(
            Text(f"no model: {message.message}{hint}", style="bold red")
        )

    def on_read_progress(self, message: ReadProgress) -> None:
        if message.read_id != self._read_id or not self.reading:
            return  # a replaced read's, or one that arrived after Escape: "stopping…" stays
        share = message.done / message.total
        filled = round(share * PROGRESS_BAR_WIDTH)
        text = Text.assemble(
            f"reading {message.request}… ",
            ("━" * filled, "bold"),
            ("─" * (PROGRESS_BAR_WIDTH - filled), "dim"),
            f" {message.done:,} of {message.total:,} images",
        )
        if message.labelled:
            text.append(f" · accuracy so far {_accuracy(message.right, message.labelled)}")
        text.append(" · esc stops", style="dim")
        self._say(text)

    def on_predictions_ready(self, message: PredictionsReady) -> None:
        if message.read_id is not None and message.read_id != self._read_id:
            return  # a newer request replaced this one: its answer would pass for the newer one's
        if message.read_id is not None:
            self._reading = None
            self.refresh_bindings()
        good = [r for r in message.results if r.prediction is not None]
        bad = [r for r in message.results if r.prediction is None]
        table = self.query_one(DataTable)
        first_row = table.row_count
        for result in good[:MAX_ROWS_PER_REQUEST]:
            self.results.append(result)
            table.add_row(*_row(result))
        self.query_one("#prediction-row").remove_class("-stale")
        if good:
            # The cursor on the request's first row (when it moves there, highlighting shows it too).
            table.move_cursor(row=first_row)
            # The cursor alone scrolls its row just into view, at the bottom, with the rest of the request
            # below it, out of sight. Once the new rows are laid out, show as many of them as fit.
            table.call_after_refresh(_show_rows, table, first_row, table.row_count - 1)
            self.query_one(CaptchaImage).show(good[0].path)
            self.query_one(CodeView).show(good[0].prediction, good[0].label)
        else:
            # Nothing read: the previous image and code would pass for this request's answer.
            self.query_one(CaptchaImage).clear()
            self.query_one(CodeView).clear()
        self._say_outcome(message, good, bad)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Moving through the history shows that row's image and prediction again."""
        if 0 <= event.cursor_row < len(self.results):
            result = self.results[event.cursor_row]
            self.query_one(CaptchaImage).show(result.path)
            self.query_one(CodeView).show(result.prediction, result.label)

    def _say_outcome(self, message: PredictionsReady, good: list[PathResult], bad: list[PathResult]) -> None:
        problems = list(message.problems)
        problems.extend(f"{r.path.name}: {r.error}" for r in bad[:3])
        if len(bad) > 3:
            problems.append(f"… and {len(bad) - 3} more files that could not be read")
        if message.stopped:
            text = (
                f"stopped after {len(message.results):,} of {message.total:,} images from {message.request}"
            )
        elif not good:
            self._say("\n".join(problems) or f"{message.request}: nothing to read", error=True)
            return
        elif len(message.results) == 1:
            result = good[0]
            text = f"read {result.prediction.code} from {result.path.name}"
        else:
            text = f"read {len(good):,} image{'s' if len(good) != 1 else ''} from {message.request}"
        if message.stopped or len(message.results) > 1:
            right, labelled = accuracy(message.results)
            if labelled:
                text += f" · accuracy {_accuracy(right, labelled)} (whole code)"
            if len(good) > MAX_ROWS_PER_REQUEST:
                text += f" · table shows the first {MAX_ROWS_PER_REQUEST:,}"
        self._say("\n".join([text, *problems]), error=bool(problems))

    def _say(self, text: str | Text, error: bool = False) -> None:
        message = self.query_one("#eval-message", Static)
        message.update(text)
        message.set_class(error, "-error")


def _accuracy(right: int, labelled: int) -> str:
    return f"{right:,}/{labelled:,} = {right / labelled:.1%}"


def _show_rows(table: DataTable, first: int, last: int) -> None:
    """Scroll ``table`` so rows ``first``..``last`` are in view: all of them if they fit, else from
    ``first`` down (every row here is one line high, add_row's default)."""
    header = table.header_height if table.show_header else 0
    visible = max(1, table.scrollable_content_region.height - header)
    region = Region(0, header + first, 1, max(1, min(last - first + 1, visible)))
    # The header is fixed over the first lines: the spacing keeps the rows from going under it.
    table.scroll_to_region(region, spacing=Spacing(header, 0, 0, 0), animate=False, x_axis=False, force=True)


def _row(result: PathResult) -> tuple:
    prediction = result.prediction
    mark = "" if result.correct is None else ("✓" if result.correct else "✗")
    return (
        _short_path(result.path, PATH_WIDTH),
        Text(prediction.code, style="bold"),
        percent(prediction.confidence),
        result.label or "",
        Text(mark, style="green" if result.correct else "red"),
    )


def _short_path(path: Path, width: int) -> str:
    """The end of a long path (the file name is what matters), marked with an ellipsis."""
    text = str(path)
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _modified(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
