"""Writing a report's files: each one replaces its previous version whole or not at all, and
a disk that refuses one (full, read-only, no permission) is one line naming the file."""

from __future__ import annotations

from pathlib import Path

from ablate.errors import UserError, disk_error
from ablate.files import replace_file


def write_text(path: Path, text: str) -> None:
    """`text` as the UTF-8 file at `path`, as `write_bytes` writes it."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """`data` as the file at `path`: written to a new file beside it and renamed over it, so
    a write that fails part-way (a full disk) leaves the previous file as it was and no
    temporary file behind. The OSError of a failure names `path`."""
    replace_file(path, data)


def cannot_write(exc: OSError, rerun: str) -> UserError:
    """A refused write as the one line the CLI prints: the file, the OS's reason, the fix."""
    refused = disk_error(exc, rerun)
    if refused is not None:
        return refused
    return UserError(
        f"{exc.filename}: cannot write it ({exc.strerror or exc}); fix that and run `{rerun}`"
    )
