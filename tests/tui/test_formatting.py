"""The widgets' text helpers."""

from __future__ import annotations

from rich.text import Text

from captcha_tui.tui.formatting import repaint, size_pair, text_bar


class RecordingStatic:
    """Stands in for a Static: records what each update asked for."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, bool]] = []

    def update(self, content, *, layout: bool) -> None:
        self.updates.append((str(content), layout))


def test_repaint_asks_for_a_layout_pass_only_when_the_text_changes_shape():
    widget = RecordingStatic()
    repaint(widget, Text("cpu  37%\nmem 0.9/23.5 GiB"))  # first time: sized from scratch
    repaint(widget, Text("cpu  41%\nmem 1.0/23.5 GiB"))  # same lines, same lengths: repaint only
    repaint(widget, "cpu  41%\nmem 10.0/23.5 GiB")  # a longer line may wrap differently
    repaint(widget, "cpu  41%\nmem 10.0/23.5 GiB\nlost")  # a new line
    assert [layout for _, layout in widget.updates] == [True, False, True, True]
    assert widget.updates[1][0] == "cpu  41%\nmem 1.0/23.5 GiB"


def test_bars_and_sizes_read_the_same_whatever_the_value():
    assert text_bar(0.5, width=8) == "████░░░░"
    assert text_bar(None, width=4) == "····"
    assert text_bar(1.7, width=4) == "████"  # clamped, never wider than asked
    assert size_pair(512 * 1024**2, 2 * 1024**3) == "0.5/2.0 GiB"
    assert size_pair(None, 2 * 1024**3) == "n/a"


def test_the_countdown_line_and_the_headless_line_name_the_rule_that_ends_the_run():
    from captcha_tui.core import events as ev
    from captcha_tui.tui.widgets.countdown import countdown_text
    from captcha_tui.words import describe_event

    budget = ev.Countdown(0.912, 3, 4, 5, budget_left=2, time_left_s=None, ends_by="max_epochs")
    patience = ev.Countdown(0.912, 3, 2, 5, budget_left=9, time_left_s=None, ends_by="early_stop")
    clock = ev.Countdown(0.912, 3, 4, 5, budget_left=9, time_left_s=75.0, ends_by="time_limit")
    assert countdown_text(budget) == "best 0.912 at epoch 3 · ends after 2 more epochs (its epoch budget)"
    assert countdown_text(patience) == "best 0.912 at epoch 3 · stops after 2 more epochs without improvement"
    assert countdown_text(clock) == "best 0.912 at epoch 3 · ends in about 75 s (its time limit)"
    assert describe_event(budget) == "  best 91.2% at epoch 3; ends after 2 more epochs (its epoch budget)"
