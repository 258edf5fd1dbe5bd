"""What a model reads and writes: one :class:`CodeSpec`, agreed on by every part.

The dataset manifest holds one, every checkpoint (and exported model) holds the one it was trained with,
and the trainer, the predictor, resume and the screens read it back from there. It is validated here and
nowhere else, and a mismatch names the field that differs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# Label arrays are (N, max_length) uint8: codes shorter than max_length are padded with PAD, so a
# charset may hold at most 255 characters (indices 0..254).
PAD = 255
MAX_CHARSET = 255
# How the model's outputs become a code: one softmax per character position (fixed length); a sequence
# over the image's width collapsed by CTC (any length up to what the width allows); or one softmax per
# slot over the charset plus an "end" class (codes of up to max_length characters, the end filling the
# slots after the last character).
DECODERS = ("positional", "ctc", "slots")


class SpecError(ValueError):
    """A spec that cannot be right; ``str()`` names the field and what is wrong with it."""


class LabelError(ValueError):
    """A label that a spec cannot encode; ``str()`` is the reason (used as a skip reason by ``prepare``)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class CodeSpec:
    charset: str
    min_length: int
    max_length: int
    image_size: tuple[int, int]  # (width, height) of the images the model is given
    keep_case: bool = False  # False: labels are lower-cased before encoding
    decoder: str = "positional"

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise SpecError(problem)

    # ---- reading and writing -----------------------------------------------------------------------
    @classmethod
    def fixed(cls, charset: str, length: int, image_size: tuple[int, int], **rest: Any) -> CodeSpec:
        return cls(charset, length, length, tuple(image_size), **rest)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["image_size"] = list(self.image_size)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> CodeSpec:
        """From :meth:`to_dict`'s form. Raises :class:`SpecError` naming the field that is wrong."""
        if not isinstance(data, dict):
            raise SpecError("no spec (charset, code length, image size)")
        names = {f.name for f in fields(cls)}
        missing = [n for n in ("charset", "min_length", "max_length", "image_size") if n not in data]
        if missing:
            raise SpecError(f"no {missing[0].replace('_', ' ')}")
        for name, test, what in (
            ("charset", lambda v: isinstance(v, str), "a string"),
            ("min_length", _is_int, "a whole number"),
            ("max_length", _is_int, "a whole number"),
            ("keep_case", lambda v: isinstance(v, bool), "true or false"),
            ("decoder", lambda v: isinstance(v, str), "a name"),
        ):
            if name in data and not test(data[name]):
                raise SpecError(f"its {name.replace('_', ' ')} {data[name]!r} is not {what}")
        size = data["image_size"]
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_int(v) for v in size)):
            raise SpecError(f"its image size {size!r} is not [width, height]")
        values = {k: v for k, v in data.items() if k in names}
        values["image_size"] = (int(size[0]), int(size[1]))
        return cls(**values)

    @classmethod
    def read(cls, container: dict) -> CodeSpec:
        """The spec inside a manifest or checkpoint metadata: its ``spec`` entry, or the flat fields that
        files written before 0.3 carry (``charset``, ``length``, ``image_size``, ``keep_case``)."""
        if "spec" in container:
            return cls.from_dict(container["spec"])
        length = container.get("length")
        if not _is_int(length):
            raise SpecError(f"its code length {length!r} is not a positive whole number")
        legacy = {k: container[k] for k in ("charset", "image_size", "keep_case") if k in container}
        return cls.from_dict({**legacy, "min_length": length, "max_length": length})

    # ---- what it says ----------------------------------------------------------------------------------
    @property
    def fixed_length(self) -> bool:
        return self.min_length == self.max_length

    @property
    def lengths(self) -> str:
        """``4`` or ``4–6``: for messages."""
        return str(self.max_length) if self.fixed_length else f"{self.min_length}–{self.max_length}"

    @property
    def classes(self) -> int:
        return len(self.charset)

    def differences(self, other: CodeSpec) -> list[str]:
        """``field mine ≠ theirs`` for each field that differs (empty when the two agree)."""
        out = []
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine != theirs:
                out.append(f"{f.name.replace('_', ' ')} {_show(mine)} ≠ {_show(theirs)}")
        return out

    def replace(self, **changes: Any) -> CodeSpec:
        return replace(self, **changes)

    # ---- labels ----------------------------------------------------------------------------------------
    def normalise(self, code: str) -> str:
        return code if self.keep_case else code.lower()

    def check(self, code: str) -> None:
        """Raise :class:`LabelError` with a short reason when ``code`` (already normalised) cannot be used."""
        if not code:
            raise LabelError("empty label")
        if not self.min_length <= len(code) <= self.max_length:
            raise LabelError(f"wrong code length (expected {self.lengths})")
        for char in code:
            if char not in self.charset:
                raise LabelError("character outside the charset")

    def encode(self, code: str) -> list[int]:
        """Character indices, padded with :data:`PAD` to ``max_length``."""
        indices = [self.charset.index(char) for char in code]
        return indices + [PAD] * (self.max_length - len(indices))

    def decode(self, indices) -> str:
        return "".join(self.charset[int(i)] for i in indices if int(i) != PAD)


def _show(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}×{value[1]}"
    return repr(value)


def _problem(spec: CodeSpec) -> str:
    charset = spec.charset
    if not isinstance(charset, str) or not charset:
        return "no charset"
    if len(set(charset)) != len(charset):
        repeated = sorted({c for c in charset if charset.count(c) > 1})
        return f"its charset repeats characters ({''.join(repeated)!r})"
    if len(charset) > MAX_CHARSET:
        return f"its charset has {len(charset)} characters; at most {MAX_CHARSET} are supported"
    if any(c.isspace() or not c.isprintable() for c in charset):
        return "its charset holds white space or unprintable characters"
    if not (_is_int(spec.min_length) and _is_int(spec.max_length)) or spec.min_length < 1:
        return f"its code length {spec.min_length!r} is not a positive whole number"
    if spec.max_length < spec.min_length:
        return f"its code length range {spec.min_length}–{spec.max_length} is empty"
    width, height = spec.image_size
    if not (_is_int(width) and _is_int(height)) or width < 1 or height < 1:
        return f"its image size {spec.image_size!r} is not [width, height]"
    if spec.decoder not in DECODERS:
        return f"its decoder {spec.decoder!r} is unknown (known: {', '.join(DECODERS)})"
    if spec.decoder == "positional" and not spec.fixed_length:
        return (
            f"codes of {spec.lengths} characters need a CTC or slots model: a per-position model reads one "
            "fixed length"
        )
    return ""


def parse_length_range(text: str) -> tuple[int, int]:
    """``"5"`` → (5, 5); ``"4-6"`` (or ``4..6``, ``4–6``) → (4, 6). Raises ValueError with what to write."""
    cleaned = text.strip().replace("–", "-").replace("..", "-")
    parts = cleaned.split("-")
    try:
        low, high = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (0, -1)
    except ValueError:
        low, high = 0, -1
    if low < 1 or high < low:
        raise ValueError(f"expected a length such as 4 or a range such as 4-6, got {text!r}")
    return low, high
