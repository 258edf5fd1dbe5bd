"""The predicted code in large boxed characters, each with the model's confidence under it."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...core.predictor import Prediction
from ...words import percent


def confidence_style(confidence: float) -> str:
    if confidence >= 0.9:
        return "bold green"
    if confidence >= 0.6:
        return "bold yellow"
    return "bold red"


def render_code(prediction: Prediction, label: str | None) -> Text:
    cells = list(zip(prediction.code, prediction.confidences, strict=True))
    top = Text.assemble(*((" ╭───╮", confidence_style(c)) for _, c in cells))
    middle = Text.assemble(
        *(
            piece
            for char, c in cells
            for piece in ((" │ ", confidence_style(c)), (char, "bold reverse"), (" │", confidence_style(c)))
        )
    )
    bottom = Text.assemble(*((" ╰───╯", confidence_style(c)) for _, c in cells))
    confidences = Text.assemble(*((f"{c * 100:5.0f}%", confidence_style(c)) for _, c in cells))
    summary = Text.assemble(
        ("\ncode ", "dim"),
        (prediction.code, "bold"),
        ("  whole-code confidence ", "dim"),
        percent(prediction.confidence),
    )
    if label is not None:
        right = prediction.code == label
        summary.append(f"\nlabel {label} ", "dim")
        summary.append("✓ right" if right else "✗ wrong", "bold green" if right else "bold red")
    return Text("\n").join([top, middle, bottom, confidences]) + summary


class CodeView(Static):
    def __init__(
        self, *, placeholder: str = "type an image path and press Enter", id: str | None = None
    ) -> None:
        super().__init__(Text(placeholder, style="dim"), id=id)
        self.border_title = "prediction"
        self.code: str | None = None

    def clear(self) -> None:
        self.code = None
        self.update(Text("nothing read: see the message above", style="dim"))

    def show(self, prediction: Prediction, label: str | None, *, layout: bool = True) -> None:
        """``layout=False`` where the view has a fixed size: the new code is just repainted."""
        self.code = prediction.code
        self.update(render_code(prediction, label), layout=layout)
