"""Operating-system errors, and paths that are not there, in words a user can act on."""

from __future__ import annotations

import errno


def describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno == errno.EROFS:
        return "the folder is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def missing(path: object) -> str:
    """``path`` for a "not found" message: quoted, with a word on it, where it starts or ends with white
    space (`--data "data/dataset "`, a name pasted with its trailing space), which the plain path hides."""
    text = str(path)
    if text == text.strip():
        return text
    where = "ends" if text[-1:].isspace() else "starts"
    return f"{text!r} (it {where} with a space: a stray one?)"
