"""The errors a user causes, each meant to be read: the CLI prints its message and exits 2.

They live here, with nothing heavy imported, so the CLI can catch them without importing torch
or MLflow; so do the small helpers that word their messages.
"""

import difflib
import errno
from collections.abc import Iterable

from ablate.urls import mask_secrets


class UserError(ValueError):
    """Bad input from the user: a file, a key, a value, a URL. The message says what and where."""


class SpecError(UserError):
    """A study file (or an override) that cannot be run."""


class ModelContractError(UserError):
    """A model whose outputs break the contract (`out`, `aux`, `embed`)."""


class DatasetError(UserError):
    """A dataset folder that is missing, empty or not in the expected layout."""


class StorageError(UserError):
    """A study storage ablate cannot use: an Optuna release or table layout it was not
    written for."""


class StorageDown(StorageError):
    """A study storage or tracking store that stayed unreachable past the retry window: the
    study stops with one line; nothing trained is lost and the next start resumes."""


class DiskError(UserError):
    """A file ablate must write that the disk refuses (full, read-only, no permission): the
    study stops with one line naming the path; what was trained is kept."""


# the OS errors that mean "this disk will not take the file", not "this trial is broken", and
# what the user can do about each
_DISK_FIX = {
    errno.ENOSPC: "free space",
    errno.EDQUOT: "free space",
    errno.EROFS: "make the folder writable",
    errno.EACCES: "make the folder writable",
    errno.EPERM: "make the folder writable",
}
DISK_ERRNOS = frozenset(_DISK_FIX)


def disk_refused(where: object, reason: str, fix: str = "free space", rerun: str = "") -> DiskError:
    """The one line for a file the disk would not take: the file, the reason, the fix and the
    command that goes on (`rerun`; by default the one just given, which keeps what it made)."""
    then = f"run `{rerun}`" if rerun else "run the same command again (what was trained is kept)"
    return DiskError(f"{where}: cannot write it ({reason}); {fix} and {then}")


def disk_error(exc: OSError, rerun: str = "") -> DiskError | None:
    """`exc` as a `DiskError` naming its path when the disk refused a write; None otherwise."""
    if exc.errno not in _DISK_FIX:
        return None
    where = exc.filename or "a file"
    return disk_refused(where, exc.strerror or str(exc), _DISK_FIX[exc.errno], rerun)


class ModelArgsError(ModelContractError):
    """Model arguments that the builder's signature refuses; `arg` names the one at fault."""

    def __init__(self, message: str, arg: str) -> None:
        super().__init__(message)
        self.arg = arg


# --------------------------------------------------------------------------- message parts


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''; a slip of case counts as close."""
    by_lower = {c.lower(): c for c in choices}  # val/miou -> val/mIoU
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line of a message: its type and the first line of its text."""
    first = mask_secrets((str(exc).strip().splitlines() or [""])[0])
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def root_cause(exc: BaseException) -> BaseException:
    """The exception at the bottom of a chain: MLflow wraps SQLAlchemy, which wraps the
    driver's error, each repeating the one below with lines of SQL around it."""
    seen = {id(exc)}
    while (below := exc.__cause__ or exc.__context__) is not None and id(below) not in seen:
        seen.add(id(below))
        exc = below
    return exc


def store_error(exc: BaseException, limit: int = 300) -> str:
    """A database or tracking client's error as one line: the driver's own words."""
    return one_line(root_cause(exc), limit)
