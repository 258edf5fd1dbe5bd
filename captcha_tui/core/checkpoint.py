"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts saved with ``torch.save``, and
it is only ever read back with ``torch.load(..., weights_only=True)``, whose unpickler refuses anything
that is not one of those. A malicious pickle is rejected before any of its code can run.
"""

from __future__ import annotations

import errno
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "captcha-tui-checkpoint/1"
META_KEYS = ("charset", "length", "image_size", "preset", "epoch", "val_accuracy", "keep_case")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or used; ``str()`` says why in one line."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically: temporary file, flush, fsync, rename, fsync the folder.

    A crash or a full disk at any point leaves the previous file at ``path`` as it was.
    """
    path = Path(path)
    payload = {"format": FORMAT, **payload}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CheckpointError(
            f"cannot write a checkpoint in {path.parent}: {_describe_os_error(exc)}"
        ) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save(payload, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        reason = _describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        raise CheckpointError(
            f"could not save {path.name}: {reason}; the previous file is unchanged"
        ) from None
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno == errno.EROFS:
        return "the folder is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely and check that it is one of ours; raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the checkpoint file (e.g. {path / 'best.pt'})")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"refused {path.name}: it contains Python objects other than tensors and plain values, "
                "which could run code when loaded; it was not loaded"
            ) from None
        raise CheckpointError(f"{path.name} is corrupt ({first_line})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        text = str(exc)
        if "central directory" in text or "failed finding" in text or isinstance(exc, EOFError):
            raise CheckpointError(f"{path.name} is truncated or corrupt (an interrupted copy?)") from None
        raise CheckpointError(
            f"cannot read {path.name}: {text.splitlines()[0] if text else type(exc).__name__}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is not a captcha-tui checkpoint (no '{FORMAT}' marker)")
    meta = data.get("meta")
    if not isinstance(meta, dict) or any(key not in meta for key in META_KEYS) or "model" not in data:
        raise CheckpointError(f"{path.name} is missing its metadata or weights")
    return data
