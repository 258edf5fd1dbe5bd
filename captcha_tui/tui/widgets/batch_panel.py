"""Live numbers inside an epoch: loss and accuracy, their recent trend, the epoch's progress bar and the
whole run's ETA.

One widget that draws all of it, line by line (Textual's line API). It repaints ten times a second while
training, and on a 2-core CPU the UI thread's time is taken from training. Measured with a synthetic
10 Hz event stream, the UI thread used about 7% of a core when this panel was a tree of eight widgets
(Textual's Sparkline and ProgressBar, Statics), 5.5% drawn with Rich tables and Textual's sparkline
renderable, 3.9% as one Text, and about 3% as lines (also 3% during real training: ``bench tui``).
Its height never changes, so a repaint needs no layout pass.
"""

from __future__ import annotations

from collections import deque

from rich.color import Color, blend_rgb
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from ...core import events as ev
from ...words import format_duration, percent, run_eta

HISTORY = 400  # batch reports kept for the sparklines: enough to fill the widest panel (~40 s at 10/s)
LABEL_WIDTH = 6


class BatchPanel(Widget):
    COMPONENT_CLASSES = {
        "batch-panel--label",
        "batch-panel--loss-high",
        "batch-panel--loss-low",
        "batch-panel--accuracy-high",
        "batch-panel--accuracy-low",
        "batch-panel--bar",
        "batch-panel--bar-done",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "this epoch"
        self.losses: deque[float] = deque(maxlen=HISTORY)
        self.accuracies: deque[float] = deque(maxlen=HISTORY)
        self.last: ev.BatchProgress | None = None
        self.title = "waiting for the first batch"
        self.batches_done, self.batches_total = 0, 1
        self._max_epochs: int | None = None
        self._run: ev.RunStarted | None = None
        self._last_epoch: ev.EpochEnd | None = None  # this run's newest, for its length and number
        self._countdown: ev.Countdown | None = None  # after _last_epoch: how much patience is left
        self._strips: list[Strip] | None = None  # the rendered lines, until the next update
        self._strips_width = 0
        self._component_styles: dict[str, Style] = {}

    def show_run(self, e: ev.RunStarted) -> None:
        self._max_epochs = e.max_epochs
        self._run, self._last_epoch, self._countdown = e, None, None
        self.losses.clear()
        self.accuracies.clear()
        self.last = None
        self.batches_done, self.batches_total = 0, max(1, e.batches_per_epoch)
        self.title = f"starting at epoch {e.start_epoch}…"
        self._strips = None
        self.refresh()

    def show_batch(self, e: ev.BatchProgress) -> None:
        self.last = e
        self.losses.append(e.loss)
        self.accuracies.append(e.accuracy)
        self.batches_done, self.batches_total = e.batch, max(1, e.batches)
        self._strips = None
        self.refresh()  # a repaint of this widget only: its height is fixed (app.tcss)

    def show_epoch(self, e: ev.EpochEnd) -> None:
        """An epoch ended: its length paces the run's ETA (drawn with the next batch report)."""
        self._last_epoch, self._countdown = e, None

    def show_countdown(self, e: ev.Countdown) -> None:
        self._countdown = e

    def show_end(self) -> None:
        """The run ended: no ETA of it any more (the last batch's numbers stay)."""
        self._run = None
        self._strips = None
        self.refresh()

    def run_eta(self, e: ev.BatchProgress) -> str:
        """The whole run's ETA at batch report ``e`` (see :func:`captcha_tui.words.run_eta`)."""
        run, last = self._run, self._last_epoch
        if run is None:
            return ""
        # One epoch's length: the last one of this run (validation included), else this epoch's pace.
        epoch_s = last.seconds if last is not None else run.train_count / max(e.images_per_s, 1e-9)
        if run.patience is None:
            early_stop_after = None  # no early stop (under a time limit or an image budget)
        elif self._countdown is not None and last is not None and self._countdown.patience_left is not None:
            early_stop_after = last.epoch + self._countdown.patience_left - e.epoch
        elif run.start_epoch == 1:
            early_stop_after = run.patience  # epoch 1 is always a new best: patience counts from it
        else:
            early_stop_after = 0  # resumed, no countdown yet: it could stop after this very epoch
        image_budget_s = None if e.images_left is None else e.images_left / max(e.images_per_s, 1e-9)
        return run_eta(
            e.eta_s, epoch_s, run.max_epochs - e.epoch, e.time_left_s, early_stop_after, image_budget_s
        )

    def render_line(self, y: int) -> Strip:
        """Textual's line API: the panel's lines are built once per update and handed out as strips,
        skipping the general content pipeline (a third of the repaint cost when drawn via ``render``)."""
        width = self.size.width
        if self._strips is None or self._strips_width != width:
            style = self.rich_style  # the panel's colours, under every span
            console = self.app.console
            lines = self.lines(width)
            for line in lines:
                line.style = style
            self._strips = [
                Strip(line.render(console), line.cell_len).crop_extend(0, width, style) for line in lines
            ]
            self._strips_width = width
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(width, self.rich_style)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._component_styles.clear()  # a new theme or stylesheet: look the colours up again
        self._strips = None

    def _style(self, name: str) -> Style:
        style = self._component_styles.get(name)
        if style is None:
            style = self._component_styles[name] = self.get_component_rich_style(f"batch-panel--{name}")
        return style

    def _band_styles(self, kind: str) -> tuple[Style, Style, Style]:
        """Low, middle and high colours of a sparkline (the middle one blended once, then cached)."""
        low, high = self._style(f"{kind}-low"), self._style(f"{kind}-high")
        mid = self._component_styles.get(f"{kind}-mid")
        if mid is None:
            mid = self._component_styles[f"{kind}-mid"] = _blend(low, high, 0.5)
        return low, mid, high

    def lines(self, width: int) -> list[Text]:
        """The panel's text, one Text per line."""
        width = max(10, width)
        label = self._style("label")
        e = self.last
        if e is None:
            lines = [Text(self.title), Text("")]
            speed = eta = ""
        else:
            of_epochs = f"/{self._max_epochs}" if self._max_epochs else ""
            lines = [
                Text.assemble(
                    ("epoch ", label),
                    (f"{e.epoch}{of_epochs}", "bold"),
                    ("  batch ", label),
                    (f"{e.batch}/{e.batches}", "bold"),
                    ("  mini-batch ", label),
                    str(e.batch_size),
                ),
                Text.assemble(
                    ("loss ", label),
                    (f"{e.loss:.4f}", "bold"),
                    ("   accuracy ", label),
                    (percent(e.accuracy), "bold"),
                    # CTC codes vary in length: their characters are scored by error rate.
                    ("   characters ", label) if e.char_error_rate is None else ("   CER ", label),
                    (percent(e.char_accuracy if e.char_error_rate is None else e.char_error_rate), "bold"),
                ),
            ]
            speed = f"{e.images_per_s:,.0f} img/s · epoch ETA {format_duration(e.eta_s)}"
            eta = self.run_eta(e)
        spark_width = width - LABEL_WIDTH
        # Loss has no ceiling: its line spans what it shows. Accuracy is drawn on 0-100%, so a run near
        # 0% stays flat instead of a 0.4% batch drawing a full-height spike.
        for name, values, kind, scale in (
            ("loss", self.losses, "loss", None),
            ("acc", self.accuracies, "accuracy", (0.0, 1.0)),
        ):
            low, mid, high = self._band_styles(kind)
            line = Text()
            line.append(name.ljust(LABEL_WIDTH), label)
            line.append_text(sparkline(values, spark_width, (low, mid, high), self._style("bar"), scale))
            lines.append(line)
        fraction = min(1.0, self.batches_done / self.batches_total)
        suffix = f" {fraction * 100:3.0f}%  {speed}"
        bar_width = max(4, width - len(suffix))
        done = round(fraction * bar_width)
        bar = Text()
        bar.append("━" * done, self._style("bar-done"))
        bar.append("━" * (bar_width - done), self._style("bar"))
        bar.append(suffix)
        lines += [Text(eta, label), bar]
        return lines


SPARK_BARS = "▁▂▃▄▅▆▇█"


def sparkline(
    values,
    width: int,
    bands: tuple[Style, Style, Style],
    empty: Style | None = None,
    scale: tuple[float, float] | None = None,
) -> Text:
    """The newest ``width`` values as bar characters, coloured by height: low, middle, high ``bands``;
    always ``width`` cells: fewer values leave a baseline in the ``empty`` style after them.
    ``scale``: the (bottom, top) values of the bars, fixed (values outside are clamped); None spans the
    values shown, smallest to largest.

    Three colour bands, and one span per run of a band: each span costs the renderer, per repaint.
    """
    recent = list(values)[-width:] if width > 0 else []
    if not recent:
        return Text("▁" * max(0, width), empty or bands[0])
    smallest, largest = scale if scale is not None else (min(recent), max(recent))
    extent = (largest - smallest) or 1.0
    top = len(SPARK_BARS) - 1
    text = Text()
    run, run_band = [], 0
    for value in recent:
        level = round(min(max((value - smallest) / extent, 0.0), 1.0) * top)
        band = min(2, level * 3 // len(SPARK_BARS))
        if band != run_band and run:
            text.append("".join(run), bands[run_band])
            run = []
        run.append(SPARK_BARS[level])
        run_band = band
    text.append("".join(run), bands[run_band])
    if len(recent) < width:
        text.append("▁" * (width - len(recent)), empty or bands[0])
    return text


def _blend(low: Style, high: Style, ratio: float) -> Style:
    if low.color is None or high.color is None:
        return high
    a, b = low.color.get_truecolor(), high.color.get_truecolor()
    return Style(color=Color.from_triplet(blend_rgb(a, b, ratio)))
