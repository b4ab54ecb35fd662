"""Replacing a file whole: a write that fails part-way (a full disk, a stop) leaves the previous
file as it was and no temporary file behind, and its OSError names the file, not a temporary."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def replace_file(path: Path, data: bytes | memoryview, *, sync: bool = False) -> None:
    """`data` as the file at `path`, written beside it and renamed over it; `sync` flushes it
    to the disk before the rename (a checkpoint a killed machine must find whole)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        exc.filename, exc.filename2 = str(path.parent), None
        raise
    os.close(fd)  # mkstemp made it, never shared; written by name below
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            if sync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            exc.filename, exc.filename2 = str(path), None
        raise
