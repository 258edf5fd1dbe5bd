"""Accuracy per epoch, train and validation, with the best epoch marked (a plotext chart)."""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from ...core import events as ev

TRAIN_MARKER, VAL_MARKER = "braille", "hd"


class HistoryChart(PlotextPlot):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "accuracy per epoch"
        self.epochs: list[int] = []
        self.train_accuracy: list[float] = []
        self.val_accuracy: list[float] = []
        self.best: tuple[int, float] | None = None  # (epoch, validation accuracy)

    def on_mount(self) -> None:
        # PlotextPlot's own on_mount runs too (Textual calls each class's handler).
        self._replot()

    def start_run(self, start_epoch: int) -> None:
        """A run starts at ``start_epoch``: a resumed run keeps the epochs before it, a new one none."""
        keep = sum(1 for epoch in self.epochs if epoch < start_epoch)
        del self.epochs[keep:], self.train_accuracy[keep:], self.val_accuracy[keep:]
        if self.best is not None and self.best[0] >= start_epoch:
            self.best = None
        self._replot()

    def show_history(self, epochs: Sequence[ev.EpochEnd], best: ev.EpochEnd | None) -> None:
        """A finished or stopped run's epochs (read back from its history.jsonl)."""
        self.epochs[:] = [e.epoch for e in epochs]
        self.train_accuracy[:] = [e.train_accuracy for e in epochs]
        self.val_accuracy[:] = [e.val_accuracy for e in epochs]
        self.best = (best.epoch, best.val_accuracy) if best is not None else None
        self._replot()

    def add_epoch(self, e: ev.EpochEnd) -> None:
        self.epochs.append(e.epoch)
        self.train_accuracy.append(e.train_accuracy)
        self.val_accuracy.append(e.val_accuracy)
        self._replot()

    def mark_best(self, epoch: int, accuracy: float) -> None:
        self.best = (epoch, accuracy)
        self._replot()

    def _replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.ylim(0, 1)
        plt.xlabel("epoch")
        if self.epochs:
            # Two line styles, so the legend (and the lines) tell them apart without colour:
            # train thin (braille dots ⢕), validation in half blocks (▞).
            plt.plot(self.epochs, self.train_accuracy, label="train", marker=TRAIN_MARKER, color="cyan")
            plt.plot(self.epochs, self.val_accuracy, label="val", marker=VAL_MARKER, color="orange")
            # Whole epochs only: plotext would otherwise label 1.5, 2.5… on a short run.
            step = max(1, len(self.epochs) // 10)
            plt.xticks(self.epochs[::step])
        if self.best is not None:
            epoch, accuracy = self.best
            plt.scatter([epoch], [accuracy], marker="◆", color="green", label=f"best {accuracy:.3f}")
            plt.title(f"best {accuracy:.3f} at epoch {epoch}")
        else:
            plt.title("train and validation accuracy")
        self.refresh()
