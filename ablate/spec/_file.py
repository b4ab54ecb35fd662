"""Reading a study file: a regular file of at most MAX_FILE_BYTES, parsed by the safe loader,
with `--set` overrides applied to the raw mapping before anything is validated."""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import SpecError
from ablate.spec._base import MAX_FILE_BYTES
from ablate.spec._overrides import parse_override, set_path
from ablate.spec._yaml import _Refused, load_yaml


def load_raw(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A study file's mapping as read, with `--set` overrides applied. Raises SpecError."""
    file = Path(path)
    text = read_study_file(file)
    try:
        raw = load_yaml(text)
    except _Refused as exc:
        raise SpecError(f"{file}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{file}: a study file is a mapping with keys name, base, sweep, ...")
    raw = copy.deepcopy(raw)
    for text_override in overrides:
        key, value = parse_override(text_override)
        set_path(raw, key, value)
    return raw


_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_study_file(file: Path) -> str:
    """A study file's text. What is not a regular file (a FIFO would block the read until a
    writer came, /dev/zero never ends) and a file over MAX_FILE_BYTES are refused before
    anything is read; opened without blocking, so the check is made on what is read."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SpecError(f"{file}: no such study file") from None
    except OSError as exc:
        raise SpecError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        for is_kind, kind in _FILE_KINDS:
            if is_kind(mode):
                raise SpecError(f"{file}: is {kind}; a study file is a regular YAML file")
        chunks: list[bytes] = []  # up to one byte past the limit: a size on disk may lie or grow
        left = MAX_FILE_BYTES + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise SpecError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(
            f"{file}: more than {MAX_FILE_BYTES // 2**20} MiB; a study file has at most "
            f"{MAX_FILE_BYTES:,} bytes (the shipped ones are a few KB)"
        )
    try:  # universal newlines, as Path.read_text reads them
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{file}: cannot read it ({exc})") from None
