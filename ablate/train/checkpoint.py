"""A running trial's checkpoint: everything needed to continue it and get the same numbers as
a run that was never stopped (model, optimiser, loss buffers, AMP scaler, random states, the
position in the batch order, the evaluations so far)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a stop mid-write leaves the previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path | None, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at `path` if it exists and was written by this very trial (`identity`:
    its recipe and seed); None otherwise. ablate wrote it, so it is unpickled in full."""
    if path is None or not path.exists():
        return None
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return state if state.get("identity") == identity else None


def checkpoint_name(cell: str, seed: int) -> str:
    """A file name for the checkpoint of a (cell, seed): every try of it resumes the same."""
    safe = "".join(c if c.isalnum() or c in "._=-" else "_" for c in cell)[:120]
    tag = hashlib.sha1(cell.encode()).hexdigest()[:8]  # two cells never share a file
    return f"{safe}-{tag}-seed{seed}.pt"
