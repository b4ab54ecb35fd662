"""Writing a report's files: each one replaces its previous version whole or not at all, and
a disk that refuses one (full, read-only, no permission) is one line naming the file."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

from ablate.errors import UserError

# what the user can do about a refused write, by the OS's reason
_FIX = {
    errno.ENOSPC: "free space",
    errno.EDQUOT: "free space",
    errno.EACCES: "make the folder writable",
    errno.EPERM: "make the folder writable",
    errno.EROFS: "make the folder writable",
}


def write_text(path: Path, text: str) -> None:
    """`text` as the UTF-8 file at `path`, as `write_bytes` writes it."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """`data` as the file at `path`: written to a new file beside it and renamed over it, so
    a write that fails part-way (a full disk) leaves the previous file as it was and no
    temporary file behind. The OSError of a failure names `path`."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as file:
            file.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        exc.filename, exc.filename2 = str(path), None
        raise


def cannot_write(exc: OSError, rerun: str) -> UserError:
    """A refused write as the one line the CLI prints: the file, the OS's reason, the fix."""
    fix = _FIX.get(exc.errno or 0, "fix that")
    return UserError(
        f"{exc.filename}: cannot write it ({exc.strerror or exc}); {fix} and run `{rerun}`"
    )
