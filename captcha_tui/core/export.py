"""Export a checkpoint to one self-describing ONNX file (the format and its metadata: ``onnx_format.py``).

The graph takes what :class:`~captcha_tui.core.predictor.Predictor` feeds a model: a (N, H, W, 3) uint8
batch at the spec's image size (N free), with the permute, the normalisation and any resize inside, and
returns the raw logits: (N, length, classes) for a per-position model, (N, steps, classes + 1) for a CTC
one, the blank last, (N, length, classes + 1) for a slots one, the end last. Where ONNX Runtime is installed the graph is checked against PyTorch before anything
is written.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointError, file_exists_error, write_atomically
from .model import to_model_input
from .onnx_format import INPUT_NAME, METADATA_KEY, NEEDS_ONNX, OUTPUT_NAME, OnnxMetadata
from .predictor import Predictor, is_onnx_file

# 18: the first opset whose Resize can antialias, as the presets' input resize does.
OPSET = 18
# Random images the export is checked on with ONNX Runtime, and how close its logits must come to PyTorch's,
# relative to their scale: fp32 on both sides differs by rounding only (~1e-7 of the logits on a converged
# model, ~1e-5 on a freshly trained one, whose logits are small), while a wrong graph is off by whole units.
CHECK_IMAGES = 3
CHECK_TOLERANCE = 1e-3


class _NhwcReader(nn.Module):
    """The exported graph: uint8 NHWC pixels in, as Predictor feeds them; the model's raw logits out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(to_model_input(images))


def default_out_path(checkpoint_path: str | Path) -> Path:
    """``runs/x/best.pt`` → ``runs/x/best.onnx``."""
    return Path(checkpoint_path).with_suffix(".onnx")


def export_onnx(checkpoint_path: str | Path, out_path: str | Path | None = None, force: bool = False) -> Path:
    """Write the checkpoint's model as ONNX to ``out_path`` (default: :func:`default_out_path`).

    Written atomically, and never over an existing file unless ``force``. Where ONNX Runtime is installed
    the graph is first run on a few images and refused unless it agrees with PyTorch. Raises
    :class:`CheckpointError` with a one-line reason.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        exported_with = f"captcha-tui {version('captcha-tui')}"
    except PackageNotFoundError:  # run from a checkout that was never installed
        exported_with = "captcha-tui (not installed)"

    checkpoint_path = Path(checkpoint_path)
    out = Path(out_path) if out_path is not None else default_out_path(checkpoint_path)
    if out.is_dir():
        raise CheckpointError(f"{out} is a folder; give the file to write, e.g. {out / 'best.onnx'}")
    if out.exists() and not force:
        raise file_exists_error(out)
    if checkpoint_path.is_file() and is_onnx_file(checkpoint_path):
        raise CheckpointError(f"{checkpoint_path.name} is already an ONNX model; give a checkpoint (.pt)")
    try:
        import onnx
    except ImportError:
        raise CheckpointError(NEEDS_ONNX) from None
    predictor = Predictor.load(checkpoint_path, "cpu")
    width, height = predictor.spec.image_size
    reader = _NhwcReader(predictor.model).eval()
    # Three images: a batch of 1 could be folded into the graph as a constant size.
    example = torch.zeros(CHECK_IMAGES, height, width, 3, dtype=torch.uint8)
    try:
        model = onnx.load_from_string(_trace(reader, example))
    except Exception as exc:  # noqa: BLE001 - an exporter failure is reported, not a crash
        raise CheckpointError(
            f"could not export {checkpoint_path.name} to ONNX: {_first_line(exc)}; nothing was written"
        ) from None
    info = OnnxMetadata(
        meta=predictor.meta,
        steps=predictor.steps,
        exported_with=f"{exported_with}, torch {torch.__version__}",
    )
    model.doc_string = (
        f"captcha-tui model ({predictor.meta.preset}): metadata {METADATA_KEY!r} says how to read it"
    )
    checked = _check_with_onnxruntime(model.SerializeToString(), predictor)
    if checked is not None:
        info = replace(info, checked=checked)
    del model.metadata_props[:]
    model.metadata_props.add(key=METADATA_KEY, value=info.to_json())
    data = model.SerializeToString()
    return write_atomically(out, lambda handle: handle.write(data), "an ONNX model", replace=force)


def _trace(reader: nn.Module, example: torch.Tensor) -> bytes:
    """The serialised, checked ONNX graph of ``reader`` run on ``example``."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings(), _antialiased_resize():
        # The tracer's notes (a Python `if` on a shape, the GRU's batch size) are about inputs of other
        # sizes than the example; the dynamic batch is checked by _check_with_onnxruntime instead.
        warnings.simplefilter("ignore")
        # dynamo=False: torch 2.13's default exporter (torch.export + onnxscript) took 10-17 s for `fast`
        # and from 40 s to several minutes for the CTC presets on a 2-core machine (torch.export traces
        # the GRU op by op), against ~2 s for the TorchScript exporter, which emits the same single ONNX
        # GRU node. Its one gap, antialiased resizing, is filled by _antialiased_resize.
        torch.onnx.export(
            reader,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    data = buffer.getvalue()
    onnx.checker.check_model(data)
    return data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _check_with_onnxruntime(data: bytes, predictor) -> float | None:
    """Run the graph on random images at batch sizes 1 and :data:`CHECK_IMAGES`; the largest logit
    difference from PyTorch (None without onnxruntime). Raises CheckpointError where they disagree."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    width, height = predictor.spec.image_size
    images = np.random.default_rng(0).integers(0, 256, (CHECK_IMAGES, height, width, 3), dtype=np.uint8)
    difference = 0.0
    for batch in (images[:1], images):
        expected = predictor.logits(batch).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        if got.shape != expected.shape:
            raise CheckpointError(
                f"the exported graph gives {got.shape} outputs for a batch of {len(batch)}, PyTorch "
                f"{expected.shape}; nothing was written"
            )
        difference = max(difference, float(np.abs(got - expected).max()))
        problem = disagreement(expected, got)
        if problem:
            raise CheckpointError(
                f"the exported graph disagrees with PyTorch ({problem}); nothing was written"
            )
    return difference


def disagreement(expected: np.ndarray, got: np.ndarray) -> str:
    """Why ``got`` (ONNX Runtime's logits) is not an honest copy of ``expected`` (PyTorch's), or "".

    No logit may differ by more than :data:`CHECK_TOLERANCE` of the logits' scale (their largest
    magnitude, at least 1). So the two can read another character only where PyTorch's two best are
    within that of each other: a tie that rounding may break either way, not a different model."""
    if not np.isfinite(got).all():
        return "it gives NaN or infinite logits"
    difference = float(np.abs(got - expected).max())
    scale = max(1.0, float(np.abs(expected).max()))
    if difference > CHECK_TOLERANCE * scale:
        return f"logits differ by up to {difference:.2g}, on logits of up to {scale:.3g}"
    return ""


_RESIZE_AA = "aten::_upsample_bilinear2d_aa"


def _resize_antialiased(g, images, output_size, *_unused: Any):  # align_corners (False here), scales
    batch_and_channels = g.op("Shape", images, start_i=0, end_i=2)
    sizes = g.op("Concat", batch_and_channels, g.op("Cast", output_size, to_i=7), axis_i=0)  # 7: int64
    none = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))  # no roi, no scales
    return g.op(
        "Resize",
        images,
        none,
        none,
        sizes,
        mode_s="linear",
        coordinate_transformation_mode_s="half_pixel",
        antialias_i=1,
        exclude_outside_i=1,
    )


@contextlib.contextmanager
def _antialiased_resize() -> Iterator[None]:
    """Teach the TorchScript exporter antialiased bilinear resizing (it has no translation of its own)
    for the time of one export. ``exclude_outside`` renormalises the filter at the borders as PyTorch
    does; without it border pixels differ by ~1e-3."""
    torch.onnx.register_custom_op_symbolic(_RESIZE_AA, _resize_antialiased, OPSET)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic(_RESIZE_AA, OPSET)
