"""Read captchas with an exported ONNX model through ONNX Runtime: no PyTorch model is built.

Only the logits come from ONNX Runtime; reading images, read options and decoding are
:class:`~captcha_tui.core.predictor.Predictor`'s own, so both read every image the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .checkpoint import CheckpointError
from .onnx_format import INSTALL_ONNX, OnnxMetadata, metadata_from_props
from .oserrors import describe_os_error, missing
from .predictor import Predictor

NEEDS_ONNXRUNTIME = f"reading .onnx models needs onnxruntime: {INSTALL_ONNX}"


class OnnxPredictor(Predictor):
    def __init__(self, session, info: OnnxMetadata, device: torch.device, path: Path | None = None):
        self.session, self.info, self.meta, self.device, self.path = session, info, info.meta, device, path

    @property
    def steps(self) -> int | None:
        return self.info.steps

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> OnnxPredictor:
        """Open an exported model; raises :class:`CheckpointError` naming what is wrong with it."""
        path = Path(path)
        device = torch.device(device)
        _check_file(path)
        try:
            import onnxruntime
        except ImportError:
            raise CheckpointError(NEEDS_ONNXRUNTIME) from None
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about graph optimisations
        try:
            session = onnxruntime.InferenceSession(str(path), options, providers=_providers(device))
        except Exception:  # noqa: BLE001 - untrusted bytes: any failure is a bad file
            raise CheckpointError(f"{path.name} is truncated or corrupt: not a readable ONNX model") from None
        info = metadata_from_props(session.get_modelmeta().custom_metadata_map, path.name)
        problem = _signature_problem(session, info)
        if problem:
            raise CheckpointError(f"{path.name}: {problem}")
        return cls(session, info, device, path)

    def logits(self, images: np.ndarray) -> torch.Tensor:
        batch = np.ascontiguousarray(images, dtype=np.uint8)
        return torch.from_numpy(self.session.run([self.info.output], {self.info.input: batch})[0])


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"model not found: {missing(path)}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the model file (e.g. {path / 'best.onnx'})")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"cannot read {path.name}: {describe_os_error(exc)}") from None
    if size == 0:
        raise CheckpointError(f"{path.name} is empty (0 bytes): an interrupted copy or export?")


def _providers(device: torch.device) -> list[str]:
    import onnxruntime

    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    raise CheckpointError(
        f"this onnxruntime cannot compute on {device.type} (it has "
        f"{', '.join(onnxruntime.get_available_providers())}): read .onnx models with --device cpu"
    )


def _signature_problem(session, info: OnnxMetadata) -> str:
    """Whether the graph takes and gives what its metadata says; '' when it does."""
    spec = info.meta.spec
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if info.input not in inputs or info.output not in outputs:
        return f"its graph has no input {info.input!r} or output {info.output!r}, as its metadata says"
    given = inputs[info.input]
    width, height = spec.image_size
    if given.type != "tensor(uint8)" or list(given.shape[1:]) != [height, width, 3]:
        return (
            f"its input is {given.type} {given.shape}, but its metadata says (N, {height}, {width}, 3) uint8"
        )
    steps, classes = {
        "ctc": (info.steps, spec.classes + 1),
        "slots": (spec.max_length, spec.classes + 1),
    }.get(spec.decoder, (spec.max_length, spec.classes))
    shape = outputs[info.output].shape
    if len(shape) != 3 or any(
        isinstance(d, int) and d != w for d, w in zip(shape[1:], (steps, classes), strict=True)
    ):
        return f"its output is {shape}, but its metadata says (N, {steps}, {classes})"
    return ""
