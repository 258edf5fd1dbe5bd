"""Read captchas with a trained checkpoint, or with an exported ONNX model (``onnx_predictor.py``)."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import CheckpointError, CheckpointMeta, load_checkpoint
from .decoding import ReadOptions, ReadPlan, decode_ctc, decode_positional, decode_slots, plan_read
from .images import ImageError, decode_image, is_image_file, load_image, to_model_array, to_rgb
from .labels import LabelError, find_label_file, label_from_name, read_label_file
from .model import PRESETS, build_model, to_model_input
from .spec import CodeSpec

# What predict() reads: a file path, a file's bytes, a PIL image, or an (H, W, 3) / (H, W) uint8 array.
ImageInput = str | Path | bytes | Image.Image | np.ndarray


@dataclass(frozen=True)
class Prediction:
    code: str
    confidences: tuple[float, ...]  # softmax probability of each chosen character

    @property
    def confidence(self) -> float:
        """Probability that the whole code is right, as the model sees it (0 for an empty reading: the
        model read nothing there, which is not a sure reading of nothing)."""
        return float(np.prod(self.confidences)) if self.confidences else 0.0


@dataclass(frozen=True)
class PathResult:
    path: Path
    prediction: Prediction | None = None
    error: str | None = None
    label: str | None = None  # from the file name, when it carries one the model could read

    @property
    def correct(self) -> bool | None:
        if self.prediction is None or self.label is None:
            return None
        return self.prediction.code == self.label


class Predictor:
    """Reads captchas with a PyTorch checkpoint. :meth:`load` returns an
    :class:`~captcha_tui.core.onnx_predictor.OnnxPredictor` for an ONNX file: the same interface, the
    logits computed by ONNX Runtime, everything else (image reading, read options, decoding) shared."""

    def __init__(
        self, model: torch.nn.Module, meta: CheckpointMeta, device: torch.device, path: Path | None = None
    ):
        self.model, self.meta, self.device, self.path = model.eval(), meta, device, path

    @property
    def spec(self) -> CodeSpec:
        return self.meta.spec

    @property
    def steps(self) -> int | None:
        """Time steps per image of a CTC model (the most characters it can emit); None otherwise."""
        return getattr(self.model, "steps", None) if self.spec.decoder == "ctc" else None

    def plan(self, options: ReadOptions | None) -> ReadPlan | None:
        """Check read-time constraints against this model; raises ReadError for impossible ones."""
        return None if options is None else plan_read(self.spec, options, self.steps)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Predictor:
        """Load a checkpoint (.pt) or an exported model (.onnx, told apart by content); raises
        :class:`CheckpointError` naming what does not fit."""
        path = Path(path)
        if is_onnx_file(path):
            from .onnx_predictor import OnnxPredictor

            return OnnxPredictor.load(path, device)
        device = torch.device(device)
        checkpoint = load_checkpoint(path, map_location=device)
        meta = checkpoint.meta
        if meta.preset not in PRESETS:
            raise CheckpointError(f"{path.name} uses preset {meta.preset!r}, unknown to this version")
        try:
            model = build_model(meta.preset, meta.spec)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path.name} has unusable metadata: {exc}") from None
        problems = _state_mismatch(model, checkpoint.model)
        if problems:
            raise CheckpointError(
                f"{path.name} does not fit preset {meta.preset!r} with {meta.spec.classes} characters × "
                f"{meta.spec.lengths}: {problems} (the presets changed in 0.2: train older checkpoints again)"
            )
        model.load_state_dict(checkpoint.model)
        return cls(model.to(device), meta, device, path)

    @torch.inference_mode()
    def predict_arrays(self, images: np.ndarray, options: ReadOptions | None = None) -> list[Prediction]:
        """``images``: (N, H, W, 3) uint8 at the model's image size. ``options`` constrain what may be
        read (charset mask, exact length)."""
        plan = self.plan(options)
        logits = self.logits(images)
        if self.spec.decoder == "slots":
            decoded = decode_slots(logits, self.spec, plan)
        else:
            decoded = (decode_ctc if self.spec.decoder == "ctc" else decode_positional)(logits, plan)
        return [Prediction("".join(self.spec.charset[i] for i in d.indices), d.confidences) for d in decoded]

    @torch.inference_mode()
    def logits(self, images: np.ndarray) -> torch.Tensor:
        """The model's raw outputs for (N, H, W, 3) uint8 ``images`` (see ``model.py`` for their shape)."""
        batch = torch.tensor(images).to(self.device)  # a copy: decoded arrays are read-only
        return self.model(to_model_input(batch))

    def to_array(self, image: ImageInput) -> np.ndarray:
        """Any :data:`ImageInput` as the (H, W, 3) uint8 array the model reads; raises ImageError."""
        size = self.spec.image_size
        if isinstance(image, (str, Path)):
            return load_image(image, size)
        if isinstance(image, (bytes, bytearray, memoryview)):
            return decode_image(bytes(image), size)
        # Pictures and arrays as files are read: transparency onto white, deep grayscale scaled down (a
        # plain convert("RGB") made transparent pixels black and 16-bit ones white: nothing was read).
        if isinstance(image, Image.Image):
            return to_model_array(to_rgb(image), size)
        if isinstance(image, np.ndarray):
            if (
                image.dtype != np.uint8
                or image.ndim not in (2, 3)
                or (image.ndim == 3 and image.shape[2] not in (3, 4))
            ):
                raise ImageError(f"expected an (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
            return to_model_array(to_rgb(Image.fromarray(image)), size)
        raise TypeError(
            f"cannot read a {type(image).__name__}: give a path, bytes, a PIL image or a uint8 array"
        )

    def predict(self, image: ImageInput, options: ReadOptions | None = None) -> Prediction:
        """One captcha from a path, bytes, a PIL image or a numpy array; raises ImageError (a bad image)
        or ReadError (constraints the model cannot meet), each with a one-line reason."""
        return self.predict_arrays(self.to_array(image)[None], options)[0]

    def predict_image(self, path: str | Path, options: ReadOptions | None = None) -> Prediction:
        """One file; raises :class:`~captcha_tui.core.images.ImageError` with a one-line reason."""
        return self.predict(Path(path), options)

    def predict_paths(
        self, paths: list[Path], batch_size: int = 256, options: ReadOptions | None = None
    ) -> list[PathResult]:
        """Many files; a bad one gets its reason and never stops the rest."""
        return [result for chunk in self.read_chunks(paths, batch_size, options) for result in chunk]

    def read_chunks(
        self,
        paths: list[Path],
        chunk_size: int = 256,
        options: ReadOptions | None = None,
        labels: FolderLabels | None = None,
    ) -> Iterator[list[PathResult]]:
        """:meth:`predict_paths` ``chunk_size`` files at a time, in order: the caller can report progress or
        stop between chunks, and only one chunk's images are in memory (60,000 at once were over 1 GB).
        ``labels``: the folders' label files (:class:`FolderLabels`), which label their images before the
        file names do."""
        for start in range(0, len(paths), chunk_size):
            chunk = paths[start : start + chunk_size]
            results: list[PathResult | None] = [None] * len(chunk)
            good: list[tuple[int, np.ndarray]] = []
            for i, path in enumerate(chunk):
                try:
                    good.append((i, load_image(path, self.spec.image_size)))
                except ImageError as exc:
                    results[i] = PathResult(path, error=str(exc))
            if good:
                predictions = self.predict_arrays(np.stack([array for _, array in good]), options)
                for (i, _), prediction in zip(good, predictions, strict=True):
                    label = self._label_for(chunk[i], labels)
                    results[i] = PathResult(chunk[i], prediction, label=label)
            yield [r for r in results if r is not None]

    def _label_for(self, path: Path, labels: FolderLabels | None = None) -> str | None:
        listed, code = labels.lookup(path) if labels is not None else (False, None)
        if not listed:
            code = label_from_name(path.name)
        if not code:
            return None
        code = self.spec.normalise(code)
        try:
            self.spec.check(code)
        except ValueError:
            return None
        return code


def is_onnx_file(path: Path) -> bool:
    """Whether ``path`` holds (or, by its name, should hold) an ONNX model rather than a checkpoint.

    By content first: a checkpoint is a zip archive (``PK``), an ONNX model a protobuf whose first field
    is its IR version (byte 0x08). A missing or unreadable file goes by its suffix, so its error message
    names the right kind of file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        head = b""
    if head.startswith(b"PK"):
        return False
    return head[:1] == b"\x08" or path.suffix.lower() == ".onnx"


def _state_mismatch(model: torch.nn.Module, state: dict) -> str:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        named = ", ".join([*missing[:2], *unexpected[:2]])
        return f"{len(missing)} missing and {len(unexpected)} unexpected layers, e.g. {named} (another architecture?)"
    for key, tensor in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            return f"layer {key} is {got}, expected {tuple(tensor.shape)}"
    return ""


def expand_paths(specs: list[str]) -> tuple[list[Path], list[str]]:
    """Files, folders (their images) and globs → (image paths, problems with the specs themselves)."""
    paths: list[Path] = []
    problems: list[str] = []
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        path = Path(spec).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
            if not found:
                problems.append(f"{spec}: no images in this folder")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        elif glob.has_magic(spec):
            found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
            if not found:
                problems.append(f"{spec}: no files match")
            paths.extend(found)
        else:
            problems.append(f"{spec}: no such file or folder")
    return paths, problems


class FolderLabels:
    """The answers of each image's folder's labels.csv (or .tsv), each file read once: where a folder has
    one, it alone labels its images, as ``prepare`` reads it (a row marked unreadable or undone, or none,
    leaves the image unlabelled; its file name is not read for a code); elsewhere the file names do.
    ``problems``: the label files that could not be read."""

    def __init__(self) -> None:
        self._folders: dict[Path, dict[Path, str] | None] = {}
        self.problems: list[str] = []

    def lookup(self, path: Path) -> tuple[bool, str | None]:
        """(whether a label file covers ``path``, its label there or None)."""
        path = Path(path).resolve()
        folder = path.parent
        if folder not in self._folders:
            self._folders[folder] = self._read(folder)
        rows = self._folders[folder]
        if rows is None:
            return False, None
        return True, rows.get(path) or None

    def _read(self, folder: Path) -> dict[Path, str] | None:
        label_file = find_label_file(folder)
        if label_file is None:
            return None
        try:
            return read_label_file(label_file)
        except (LabelError, OSError) as exc:
            self.problems.append(f"{label_file}: {exc} (its images are read by their file names)")
            return None


def accuracy(results: list[PathResult]) -> tuple[int, int]:
    """(right, labelled) over results whose file names carry a readable label."""
    judged = [r.correct for r in results if r.correct is not None]
    return sum(judged), len(judged)
