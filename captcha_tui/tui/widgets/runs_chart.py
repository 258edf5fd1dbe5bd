"""Validation accuracy per epoch of several runs, overlaid (a plotext chart): the runs screen's comparison."""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from ...core.runs import RunRecord

# A marker and a colour each, so the lines tell apart with colour and without.
MARKERS = ("hd", "braille", "dot", "+", "x", "*")
COLORS = ("orange", "cyan", "green", "magenta", "yellow", "red")


class RunsChart(PlotextPlot):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "validation accuracy per epoch"
        self.series: list[tuple[str, list[int], list[float]]] = []  # (run name, epochs, accuracies)

    def on_mount(self) -> None:
        self._replot()

    def show_runs(self, records: Sequence[RunRecord]) -> None:
        """Overlay these runs' curves, in this order; a run with no readable epoch has none to draw."""
        self.series = [
            (r.name, [epoch for epoch, _ in r.val_curve], [acc for _, acc in r.val_curve])
            for r in records
            if r.epochs
        ]
        self._replot()

    def _replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.ylim(0, 1)
        plt.xlabel("epoch")
        for i, (name, epochs, accuracy) in enumerate(self.series):
            plt.plot(
                epochs, accuracy, label=name, marker=MARKERS[i % len(MARKERS)], color=COLORS[i % len(COLORS)]
            )
        if self.series:
            # Whole epochs only, as in the history chart.
            epochs = sorted({epoch for _, xs, _ in self.series for epoch in xs})
            plt.xticks(epochs[:: max(1, len(epochs) // 10)])
            plt.title(f"{len(self.series)} run{'s' if len(self.series) != 1 else ''}")
        else:
            plt.title("space selects the runs to compare")
        self.refresh()
