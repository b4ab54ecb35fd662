"""Declared claims: what a study sets out to show, resolved against its cells before it runs.

A claim in the study file names two cells as `ablate validate` lists them (or `baseline`), a
test and, where the test needs one, a margin in the metric's display unit. Resolving it here
checks the names against the design's cells, once, when the study is loaded, so a typo is an
error before any trial trains and not an empty row in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ablate.errors import SpecError, did_you_mean
from ablate.names import metric_info
from ablate.spec import AdaptiveSeeds, ClaimTest, StudySpec


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Cells(Protocol):
    """What resolving claims reads of a design (`Design` has it): its cells' names and its
    baseline, so this module needs nothing of the protocol's (which reads decisions)."""

    @property
    def cells(self) -> Sequence[_Named]: ...

    @property
    def baseline(self) -> str: ...


BASELINE_NAME = "baseline"  # what a claim may call the study's baseline cell


@dataclass(frozen=True)
class Claim:
    """One declared claim, its cells resolved: `a` against `b` (cell names), paired by seed.
    `margin` is in the metric's display unit (points for IoU), `scale` turns it into stored
    units; `index` is its place in the file's `claims` list (`claims.0` is the first)."""

    index: int
    a: str
    b: str
    test: ClaimTest
    margin: float
    scale: float
    unit: str  # " points" for IoU metrics, "" for metrics shown raw

    @property
    def stored_margin(self) -> float:
        """The margin in the metric's stored units (IoU in 0–1)."""
        return self.margin / self.scale

    @property
    def method(self) -> str:
        """The test in words."""
        return {
            "superior": "one-sided paired t-test",
            "noninferior": "one-sided paired t-test",
            "equivalent": "two one-sided paired t-tests (TOST)",
            "different": "two-sided paired t-test",
        }[self.test]

    @property
    def sentence(self) -> str:
        """The claim in words: what 'supported' would mean."""
        unit = self.unit.rstrip("s") if self.margin == 1 and self.unit else self.unit
        m = f"{self.margin:g}{unit}"
        if self.test == "superior":
            return f"{self.a} beats {self.b}" + (f" by more than {m}" if self.margin else "")
        if self.test == "noninferior":
            return f"{self.a} is at most {m} worse than {self.b}"
        if self.test == "equivalent":
            return f"{self.a} and {self.b} differ by less than {m}"
        return f"{self.a} and {self.b} differ"


def resolve_claims(spec: StudySpec, design: _Cells, file: Path) -> tuple[Claim, ...]:
    """The study's declared claims with their cells resolved; raises SpecError naming the
    file and the claim's key when a cell is unknown, the design picks its cells as it runs
    (a search), or fewer than two seeds could be shared."""
    if not spec.claims:
        return ()
    if spec.sweep.search is not None:
        raise SpecError(
            f"{file}: claims: a search picks its cells as it runs, so no claim can name them "
            "before it; declare claims in a study of the configurations it found (grid or "
            "variants)"
        )
    seeds = spec.sweep.seeds
    if not isinstance(seeds, AdaptiveSeeds) and len(seeds) < 2:
        raise SpecError(
            f"{file}: claims: sweep.seeds has {len(seeds)} seed; a claim is tested on the "
            "seeds both its cells completed, and a paired test needs at least 2: give 2 or "
            "more seeds"
        )
    names = [c.name for c in design.cells]
    info = metric_info(spec.metric.name)
    unit = " points" if info.scale != 1.0 else ""
    out = []
    for i, claim in enumerate(spec.claims):
        a = _cell(claim.a, "a", i, names, design.baseline, file)
        b = _cell(claim.b, "b", i, names, design.baseline, file)
        if a == b:
            raise SpecError(
                f"{file}: claims.{i}: a = {claim.a!r} and b = {claim.b!r} are the same cell "
                f"({a!r}); a claim compares two cells"
            )
        out.append(Claim(i, a, b, claim.test, claim.margin or 0.0, info.scale, unit))
    return tuple(out)


def _cell(said: str, side: str, index: int, names: Sequence[str], baseline: str, file: Path) -> str:
    """The cell a claim's `a` or `b` names; SpecError when none is."""
    if said == BASELINE_NAME and baseline:
        return baseline
    if said in names:
        return said
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    raise SpecError(
        f"{file}: claims.{index}.{side} = {said!r}: no such cell{did_you_mean(said, names)}; "
        f"the cells (as `ablate validate` lists them): {shown}, or {BASELINE_NAME!r}"
    )
