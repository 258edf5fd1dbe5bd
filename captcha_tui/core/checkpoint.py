"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts saved with ``torch.save``, and
it is only ever read back with ``torch.load(..., weights_only=True)``, whose unpickler refuses anything
that is not one of those. A malicious pickle is rejected before any of its code can run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .oserrors import describe_os_error, missing
from .spec import CodeSpec, SpecError

FORMAT = "captcha-tui-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or used; ``str()`` says why in one line."""


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint says about its weights: what they read, which network, how they were made."""

    spec: CodeSpec
    preset: str
    epoch: int = 0
    val_accuracy: float = 0.0
    dataset: str = ""
    created: str = ""
    init: str | None = None  # the checkpoint a fine-tune started from
    made_by: str = ""  # how a published model was made: command, machine, time, test score (base.pt)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any) -> CheckpointMeta:
        """Raises :class:`SpecError` or ValueError naming what is wrong. Reads pre-0.3 metadata too."""
        if not isinstance(data, dict):
            raise ValueError("no metadata")
        spec = CodeSpec.read(data)
        if not isinstance(data.get("preset"), str):
            raise ValueError(f"its preset {data.get('preset')!r} is not a name")
        epoch, val = data.get("epoch", 0), data.get("val_accuracy", 0.0)
        if not isinstance(epoch, int) or not isinstance(val, (int, float)):
            raise ValueError("its epoch or validation accuracy is not a number")
        return cls(
            spec=spec,
            preset=data["preset"],
            epoch=int(epoch),
            val_accuracy=float(val),
            dataset=str(data.get("dataset", "")),
            created=str(data.get("created", "")),
            init=data.get("init") if isinstance(data.get("init"), str) else None,
            made_by=str(data.get("made_by", "")),
        )


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: typed metadata, the weights, and what resuming needs (absent in best.pt)."""

    meta: CheckpointMeta
    model: dict[str, torch.Tensor] = field(repr=False)
    optimizer: dict | None = field(default=None, repr=False)
    trainer: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list, repr=False)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (see :func:`write_atomically`)."""
    payload = {"format": FORMAT, **payload}
    return write_atomically(path, lambda out: torch.save(payload, out), "a checkpoint")


def write_atomically(
    path: str | Path, write: Callable[[BinaryIO], None], what: str, replace: bool = True
) -> Path:
    """Write a file with ``write(handle)`` atomically: temporary file, flush, fsync, rename, fsync the folder.

    A crash or a full disk at any point leaves the previous file at ``path`` as it was; at worst a stray
    ``.NAME.*.tmp`` file remains beside it after a crash (never after an error this function sees).
    ``replace=False`` refuses to replace a file already at ``path``. Raises :class:`CheckpointError`
    (``what`` names the kind of file in its message).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CheckpointError(
            f"cannot write {what} in {path.parent}: {describe_os_error(exc)}{_hint(exc)}"
        ) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            _set_mode(out.fileno(), path)
            write(out)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _rename_no_replace(tmp, path)
        sync_folder(path.parent)
    except CheckpointError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        cause = _os_error_in(exc)
        reason = f"{describe_os_error(cause)}{_hint(cause)}" if cause else _first_line(exc)
        raise CheckpointError(
            f"could not save {path.name}: {reason}; the previous file is unchanged"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)  # Ctrl+C twice: no stray temporary file either
        raise
    return path


def file_exists_error(path: Path) -> CheckpointError:
    return CheckpointError(f"{path} already exists; it was left as it is (--force replaces it)")


def _rename_no_replace(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless a file is there: a hard link fails if the name is taken, so no
    file that appears meanwhile is clobbered. Where links are not supported, check, then rename."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise file_exists_error(path) from None
    except OSError:
        if path.exists():
            raise file_exists_error(path) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: torch.save reports a failed write as a RuntimeError with it as context."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _hint(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return " (free some space, or save elsewhere with --out)"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return " (choose a writable folder with --out)"
    return ""


def _set_mode(fd: int, path: Path) -> None:
    """Give the new file the permissions a plain ``open()`` would (mkstemp makes it private, 0600)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)  # replacing a file: keep its permissions
    except OSError:
        mode = 0o666 & ~_umask()
    with contextlib.suppress(OSError):
        os.fchmod(fd, mode)


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would race with other threads)
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a file created or renamed in it survives a crash; best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the file itself is synced
    finally:
        os.close(fd)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint safely and check that it is one of ours; raises :class:`CheckpointError`.

    Only PyTorch's zip format is read, and only with ``weights_only=True``: a plain pickle is refused
    unread, and an archive whose pickle names anything but tensors and plain values is refused before
    any of it runs. The metadata is checked against the weights' output layer.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {missing(path)}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the checkpoint file (e.g. {path / 'best.pt'})")
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path.name}: {describe_os_error(exc)}") from None
    if not head:
        raise CheckpointError(f"{path.name} is empty (0 bytes): an interrupted copy or save?")
    if head[:1] == b"\x80" or head[:1] in (b"(", b"c", b"}", b"]"):
        raise CheckpointError(
            f"refused {path.name}: it is a bare Python pickle, not a captcha-tui checkpoint, and pickles "
            "can run code when loaded; it was not loaded"
        )
    if head != b"PK\x03\x04":
        raise CheckpointError(f"{path.name} is not a captcha-tui checkpoint (not a PyTorch archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            # torch.load does not check the archive's checksums: a flipped bit would load as a wrong
            # weight. Reading every member once costs milliseconds for a captcha model.
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise CheckpointError(f"{path.name} is truncated or corrupt (an interrupted copy or save?)") from None
    if damaged is not None:
        raise CheckpointError(
            f"{path.name} is corrupt: its part {damaged} fails its checksum (a disk or copy error?)"
        )
    if not any(name.endswith("/data.pkl") for name in names):
        raise CheckpointError(
            f"{path.name} is not a captcha-tui checkpoint (a zip file, but not a PyTorch one)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "GLOBAL" in text or "global" in text:
            raise CheckpointError(
                f"refused {path.name}: it contains Python objects other than tensors and plain values, "
                "which could run code when loaded; it was not loaded"
            ) from None
        raise CheckpointError(
            f"{path.name} is corrupt or holds more than tensors and plain values; it was not loaded"
        ) from None
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: any failure is a bad file, not a crash
        text = str(exc)
        if "central directory" in text or isinstance(exc, (EOFError, zipfile.BadZipFile)):
            raise CheckpointError(
                f"{path.name} is truncated or corrupt (an interrupted copy or save?)"
            ) from None
        raise CheckpointError(f"cannot read {path.name}: {_first_line(exc)}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is not a captcha-tui checkpoint (no '{FORMAT}' marker)")
    meta = data.get("meta")
    if not isinstance(meta, dict) or not ({"spec", "length"} & meta.keys()) or "model" not in data:
        raise CheckpointError(f"{path.name} is missing its metadata or weights")
    try:
        meta = CheckpointMeta.from_dict(meta)
    except (SpecError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: {exc}") from None
    weights = data["model"]
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{path.name}: its weights are not a dict of tensors")
    # The shipped base model stores its weights in half precision (half the wheel); compute in float32.
    weights = {k: v.float() if v.dtype == torch.float16 else v for k, v in weights.items()}
    problem = _output_problem(meta.spec, weights)
    if problem:
        raise CheckpointError(f"{path.name}: {problem}")
    optimizer = data.get("optimizer")
    trainer, history = data.get("trainer", {}), data.get("history", [])
    return Checkpoint(
        meta=meta,
        model=weights,
        optimizer=optimizer if isinstance(optimizer, dict) else None,
        trainer=trainer if isinstance(trainer, dict) else {},
        history=history if isinstance(history, list) else [],
    )


def _output_problem(spec: CodeSpec, weights: dict[str, torch.Tensor]) -> str:
    """Whether the output layer fits the spec's charset (and length, for per-position models); ''."""
    # Every preset ends in a linear layer: check the metadata against it, so a checkpoint whose charset
    # was edited is refused with the reason, not a shape error.
    outputs = [
        value.shape[0]
        for key, value in weights.items()
        if key.startswith("head.") and key.endswith(".weight") and value.dim() == 2
    ]
    if not outputs:
        return ""
    charset, length = spec.charset, spec.max_length
    if spec.decoder == "ctc":
        if outputs[-1] != len(charset) + 1:
            return (
                f"its charset has {len(charset)} characters (+1 CTC blank), but the model's output layer "
                f"has {outputs[-1]}: the charset does not match the weights"
            )
        return ""
    if spec.decoder == "slots":
        if outputs[-1] != length * (len(charset) + 1):
            return (
                f"its charset has {len(charset)} characters (+1 end) × {length} slots = "
                f"{length * (len(charset) + 1)} outputs, but the model's output layer has {outputs[-1]}: "
                "the charset or length does not match the weights"
            )
        return ""
    if outputs[-1] != length * len(charset):
        classes, rest = divmod(outputs[-1], length)
        trained = f" ({classes} characters × {length})" if not rest else ""
        return (
            f"its charset has {len(charset)} characters × {length} positions = {length * len(charset)} "
            f"outputs, but the model's output layer has {outputs[-1]}{trained}: the charset or length "
            "does not match the weights"
        )
    return ""
