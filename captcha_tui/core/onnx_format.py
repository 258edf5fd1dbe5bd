"""The ONNX files captcha-tui writes: their metadata format, read without running anything.

An exported graph takes a (N, H, W, 3) uint8 batch under :data:`INPUT_NAME` and returns raw logits under
:data:`OUTPUT_NAME`; everything needed to decode them is JSON under :data:`METADATA_KEY`: the checkpoint's
:class:`CheckpointMeta` plus the input name, layout and blank position. ``export.py`` writes it,
``onnx_predictor.py`` reads it; neither needs the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CheckpointError, CheckpointMeta
from .spec import SpecError

FORMAT = "captcha-tui-onnx/1"
METADATA_KEY = "captcha_tui"
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
LAYOUT = "NHWC uint8"
# Both forms: the README installs from a source checkout, where "captcha-tui[onnx]" would fetch the package
# from the index instead of adding the extra to the checkout.
INSTALL_ONNX = "pip install 'captcha-tui[onnx]' (from a source checkout: pip install '.[onnx]')"
NEEDS_ONNX = f"exporting to ONNX needs onnx: {INSTALL_ONNX}"


@dataclass(frozen=True)
class OnnxMetadata:
    """What an exported file says about its graph: the checkpoint's metadata and how to call it."""

    meta: CheckpointMeta
    steps: int | None = None  # CTC: time steps per image
    input: str = INPUT_NAME
    output: str = OUTPUT_NAME
    exported_with: str = ""
    checked: float | None = None  # max |logit difference| from PyTorch at export; None: not checked

    def to_json(self) -> str:
        data = {
            **self.meta.to_dict(),
            "format": FORMAT,
            "input": self.input,
            "output": self.output,
            "layout": LAYOUT,
            "blank": "last",
            "steps": self.steps,
            "exported_with": self.exported_with,
            "max_logit_difference": self.checked,
        }
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, name: str) -> OnnxMetadata:
        """Parse and check :data:`METADATA_KEY`'s value; raises :class:`CheckpointError` saying what is wrong."""
        try:
            data = json.loads(text)
        except ValueError:
            raise CheckpointError(f"{name}: its {METADATA_KEY!r} metadata is not JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise CheckpointError(
                f"{name}: its metadata is in format {found!r}, not {FORMAT!r} (exported by another version?)"
            )
        try:
            meta = CheckpointMeta.from_dict(data)
        except (SpecError, ValueError) as exc:
            raise CheckpointError(f"{name}: {exc}") from None
        if data.get("layout") != LAYOUT or data.get("blank", "last") != "last":
            raise CheckpointError(
                f"{name}: its input layout {data.get('layout')!r} or blank {data.get('blank')!r} is not "
                f"{LAYOUT!r} with the blank last"
            )
        steps = data.get("steps")
        if meta.spec.decoder == "ctc" and not (isinstance(steps, int) and steps >= 1):
            raise CheckpointError(f"{name}: a CTC model, but its steps {steps!r} are not a positive number")
        names = data.get("input"), data.get("output")
        if not all(isinstance(n, str) and n for n in names):
            raise CheckpointError(f"{name}: its input or output name is missing")
        checked = data.get("max_logit_difference")
        return cls(
            meta=meta,
            steps=steps if meta.spec.decoder == "ctc" else None,
            input=names[0],
            output=names[1],
            exported_with=str(data.get("exported_with", "")),
            checked=float(checked) if isinstance(checked, (int, float)) else None,
        )


def read_onnx_metadata(path: str | Path) -> OnnxMetadata:
    """The metadata of an exported file, read with ``onnx`` (no session is made); raises CheckpointError."""
    try:
        import onnx
    except ImportError:
        raise CheckpointError(NEEDS_ONNX) from None
    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - untrusted bytes: any failure is a bad file
        raise CheckpointError(f"{path.name} is truncated or corrupt: not a readable ONNX model") from None
    return metadata_from_props({p.key: p.value for p in model.metadata_props}, path.name)


def metadata_from_props(props: dict[str, str], name: str) -> OnnxMetadata:
    if METADATA_KEY not in props:
        raise CheckpointError(
            f"{name} is an ONNX model, but not one exported by captcha-tui (no {METADATA_KEY!r} metadata)"
        )
    return OnnxMetadata.from_json(props[METADATA_KEY], name)
