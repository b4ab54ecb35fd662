"""A running trial's checkpoint: everything needed to continue it and get the same numbers as
a run that was never stopped (model, optimiser, loss buffers, AMP scaler, random states, the
position in the batch order, the evaluations so far).

A checkpoint folder may be shared (`--checkpoint-dir` on a cluster), so a file in it is data,
never code: it is read with `weights_only=True` and holds tensors and plain values only. A file
that cannot be used (empty, truncated, random bytes, a pickle with code in it, another trial's)
is set aside under a name no trial looks for, and the trial starts from the beginning: left in
place, it would fail or confuse every later try."""

from __future__ import annotations

import hashlib
import io
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ablate.errors import one_line
from ablate.files import replace_file

NAME_BYTES = 120  # of a cell's name in a file name: file systems allow 255 bytes, not characters


class CheckpointSetAside(UserWarning):
    """A checkpoint that could not be used was moved aside; the trial starts from the beginning."""


@dataclass(frozen=True)
class Loaded:
    """What `load_checkpoint` found: the state to continue from (None: start from the
    beginning) and, when a file was there but could not be used, `set_aside`'s line."""

    state: dict[str, Any] | None
    set_aside: str = ""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (tensors and plain values only) to `path` atomically: a stop mid-write
    leaves the previous checkpoint."""
    # serialised in memory first: torch.save writing to a file that hits a full disk raises
    # a RuntimeError about stream positions; a plain write raises ENOSPC, which names the cause
    buffer = io.BytesIO()
    torch.save(state, buffer)
    replace_file(path, buffer.getbuffer(), sync=True)


def load_checkpoint(path: Path | None, identity: Mapping[str, Any]) -> Loaded:
    """The checkpoint at `path` if one is there and was written by this very trial (`identity`:
    its recipe and seed). A file that does not load as tensors and plain values, is not a
    checkpoint, or is another trial's is set aside (see `set_aside`) and the trial starts from
    the beginning. Nothing in the file is ever run."""
    if path is None or not path.exists():
        return Loaded(None)
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: it is refused anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, EOFError, RuntimeError, …: any file's bytes
        return Loaded(None, set_aside(path, "damaged", f"unreadable ({_why(exc)})"))
    if not isinstance(state, dict) or "identity" not in state:
        what = "a dict without identity" if isinstance(state, dict) else type(state).__name__
        return Loaded(None, set_aside(path, "damaged", f"not a checkpoint ({what})"))
    if state["identity"] != identity:
        differs = ", ".join(_differences(identity, state["identity"])[:3]) or "identity"
        return Loaded(None, set_aside(path, "foreign", f"written for another trial ({differs})"))
    return Loaded(state)


def set_aside(path: Path, kind: str, reason: str) -> str:
    """Rename the unusable checkpoint `path` to `<name>.<kind>-<UTC time>` beside it (never over
    another file), warn, and return one line for the log and the run's tags:
    `set aside as <new path>: <reason>`, or `could not set aside <path> (<error>): <reason>`
    when the rename fails (a read-only folder); the trial starts from the beginning either way."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.{kind}-{stamp}")
    n = 1
    while target.exists():  # only two tries of one trial race here, and they do not run at once
        n += 1
        target = path.with_name(f"{path.name}.{kind}-{stamp}-{n}")
    try:
        path.rename(target)
    except OSError as exc:
        line = f"could not set aside {path} ({one_line(exc)}): {reason}"
    else:
        line = f"set aside as {target}: {reason}"
    message = f"checkpoint {line}; the trial starts from the beginning"
    warnings.warn(message, CheckpointSetAside, stacklevel=2)
    return line


def _why(exc: BaseException) -> str:
    """The cause of a failed load in one line: torch's weights-only refusal wraps it in
    paragraphs of advice."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines or not lines[0].startswith("Weights only load failed"):
        return one_line(exc, limit=200)
    advice = ("Check the documentation", "Please file an issue")
    cause = next((line for line in lines[1:] if not line.startswith(advice)), "unsupported content")
    return f"refused by the weights-only loader: {cause[:160]}"


def _differences(ours: Mapping[str, Any], theirs: Any, at: str = "") -> list[str]:
    """Dotted paths at which a foreign identity differs from ours (`seed`, `recipe.train.lr`)."""
    if not isinstance(theirs, Mapping):
        return [at.rstrip(".") or "identity"]
    found: list[str] = []
    for key in sorted({*ours, *theirs}, key=str):
        mine, other = ours.get(key), theirs.get(key)
        if isinstance(mine, Mapping) and isinstance(other, Mapping):
            found += _differences(mine, other, f"{at}{key}.")
        elif mine != other or (key in ours) != (key in theirs):
            found.append(f"{at}{key}")
    return found


def checkpoint_name(cell: str, seed: int) -> str:
    """A file name for the checkpoint of a (cell, seed): every try of it resumes the same. The
    cell's part is cut to NAME_BYTES bytes of UTF-8 at a character's end, so a long non-ASCII
    name stays under the file systems' 255 bytes; the hash keeps cut names apart."""
    safe = "".join(c if c.isalnum() or c in "._=-" else "_" for c in cell)
    safe = safe.encode()[:NAME_BYTES].decode(errors="ignore")  # drops a character cut in two
    tag = hashlib.sha1(cell.encode(errors="surrogatepass")).hexdigest()[
        :8
    ]  # two cells never share a file
    return f"{safe}-{tag}-seed{seed}.pt"
