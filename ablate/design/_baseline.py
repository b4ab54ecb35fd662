"""Which cell is the baseline: the first cell, or the one a study file's `baseline` names or
matches by its overrides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ablate.design._protocol import Cell
from ablate.errors import SpecError, did_you_mean
from ablate.spec import StudySpec, check_key


def resolve_baseline(file: Path, spec: StudySpec, cells: Sequence[Cell]) -> str:
    """The baseline cell's name: the first cell, or the one `baseline` names or matches."""
    names = [c.name for c in cells]
    if spec.baseline is None:
        return names[0]
    if isinstance(spec.baseline, str):
        if spec.baseline not in names:
            raise SpecError(
                f"{file}: baseline = {spec.baseline!r}: no such cell"
                f"{did_you_mean(spec.baseline, names)}; cells: {_few(names)}"
            )
        return spec.baseline
    wanted = spec.baseline
    for key in wanted:
        check_key(file, "baseline", key)
    matches = [
        c.name
        for c in cells
        if all(_same(c.overrides.get(k, _MISSING), v) for k, v in wanted.items())
    ]
    if len(matches) != 1:
        found = "no cell" if not matches else f"{len(matches)} cells ({_few(matches)})"
        raise SpecError(
            f"{file}: baseline = {dict(wanted)!r} matches {found}; it must match exactly one "
            f"of: {_few(names)}"
        )
    return matches[0]


def _few(names: Sequence[str], shown: int = 10) -> str:
    """The first names, and how many more: a message lists a few of 10,000 cells."""
    more = f" and {len(names) - shown:,} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    """Equal as YAML values: 0 matches 0.0, but true does not match 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)
