"""Adaptive seeds (`sweep.seeds: {start, max, step}`): any grid, variants or tricks design,
trained on `start` seeds first, then `step` more per round for the tests still undecided,
until each is decided by its sequential test (`_sequential`) or has `max` seeds.

The tests are the study's declared claims when it has any (each claim's two cells, by its
own test, at α/m for m claims), else each cell against its reference (two-sided, with the
equivalence stop when `metric.effect` is set, at α/m for m comparisons).

The next round is what `next_round` returns from the records; the queue enqueues it once,
under a key naming its pairs, so two idle workers never queue one seed twice.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ablate.design._boundaries import SIMULATED_STUDIES
from ablate.design._claims import Claim
from ablate.design._protocol import Cell, Comparison, Design, Pair, QueueView, Round
from ablate.design._sequential import (
    BETA,
    Decision,
    SeedPlan,
    boundaries,
    claim_boundaries,
    decide,
    decide_claim,
)
from ablate.names import metric_info
from ablate.spec import AdaptiveSeeds, MetricSpec

if TYPE_CHECKING:
    from ablate.spec import Recipe
    from ablate.study._record import TrialRecord

_ROUND = "adaptive_round:"  # + a digest of the round's pairs: the key it is enqueued under


@dataclass(frozen=True)
class AdaptiveDesign:
    inner: Design
    plan: SeedPlan
    metric: MetricSpec
    compared: tuple[tuple[str, str], ...]  # (cell, the cell it is compared with)
    alpha: float = 0.05
    claims: tuple[Claim, ...] = ()  # the declared claims (their decisions: `Comparison.claims`)

    # -- what the inner design says

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def cells(self) -> tuple[Cell, ...]:
        return self.inner.cells

    @property
    def recipes(self) -> Mapping[str, Recipe]:
        return self.inner.recipes

    @property
    def baseline(self) -> str:
        return self.inner.baseline

    @property
    def keys(self) -> list[str]:
        return self.inner.keys

    @property
    def factors(self) -> Sequence[str]:
        return self.inner.factors

    @property
    def crossed(self) -> Sequence[str]:
        return self.inner.crossed

    @property
    def axis(self) -> str | None:
        return self.inner.axis

    def values(self, queue: QueueView, record: TrialRecord) -> dict[str, Any]:
        return self.inner.values(queue, record)

    def summary_rows(self, comparison: Comparison) -> list[str]:
        return self.inner.summary_rows(comparison)

    # -- seeds

    def n_trials(self) -> int:
        return len(self.cells) * self.plan.max  # at most

    def describe(self) -> str:
        inner = self.inner.describe().rsplit(" × ", 1)[0]
        p = self.plan
        return f"{inner} × {p.start} to {p.max} seeds (adaptive, +{p.step} a round)"

    def outline(self) -> list[str]:
        """The rule as `ablate validate` lists it: the looks, the α each test gets, its
        boundaries per look (z scale) and its futility stop."""
        looks = ", ".join(str(n) for n in self.plan.looks)
        lines = [*self.inner.outline()]
        if self.claims:
            m = len(self.claims)
            level = self.alpha / m
            lines.append(
                f"seeds: looks at {looks} seeds, driven by the {m} declared claim(s), each at "
                f"α = {level:.3g} ({self.alpha:g} / {m}, Bonferroni: Holm's step-down is not "
                "valid for sequential tests); Lan–DeMets O'Brien–Fleming-type α-spending "
                "on exact group-sequential boundaries, each look's paired t-test at its z "
                f"boundary's nominal level {_calibration(self.plan, level, 1)}; cells in no "
                f"claim train {self.plan.start} seeds, and comparisons not declared are "
                "exploratory"
            )
            for claim in self.claims:
                b = claim_boundaries(self.plan, level, claim.test)
                sided = {"different": "|z|", "equivalent": "TOST's smaller z"}.get(claim.test, "z")
                coverage = 1 - level if b.sides == 2 else 1 - 2 * level
                kind = {"different": "two-sided", "equivalent": "TOST"}.get(claim.test, "one-sided")
                lines.append(
                    f"seeds: claim {claim.index} ({claim.test}, {kind}): supported at {sided} ≥ "
                    f"{_zs(b.upper)}; not supported (futility, non-binding: β = {BETA:g} "
                    f"spent O'Brien–Fleming-type against the difference {self.plan.max} seeds "
                    f"detect with {100 * (1 - BETA):g} % power) at {sided} ≤ "
                    f"{_zs(b.lower[:-1])}; repeated {_percent(coverage)} CIs"
                )
            return lines
        m = len(self.compared)
        level = self.alpha / max(1, m)
        two = boundaries(self.plan, level, 2, False)
        lines.append(
            f"seeds: looks at {looks} seeds; each of the {m} comparison(s) is a two-sided "
            f"paired t-test at α = {level:.3g} ({self.alpha:g} / {max(1, m)}, Bonferroni), "
            "Lan–DeMets O'Brien–Fleming-type α-spending on exact group-sequential boundaries, "
            f"each look's t-test at its z boundary's nominal level {_calibration(self.plan, level)}"
            f" (as z: |z| ≥ {_zs(two.upper)}); no futility stop; repeated "
            f"{_percent(1 - level)} CIs"
        )
        if self.metric.effect:
            one = boundaries(self.plan, level, 1, False)
            points = " points" if metric_info(self.metric.name).scale != 1.0 else ""
            lines.append(
                f"seeds: a comparison also stops 'equivalent' when both one-sided tests against "
                f"±{self.metric.effect:g}{points} (metric.effect) reach z ≥ {_zs(one.upper)}"
            )
        return lines

    def decisions(self, records: Sequence[TrialRecord]) -> dict[str, Decision]:
        """Each compared cell's sequential decision from the trials so far."""
        paired = _Paired.of(records, self.plan.max)
        info = metric_info(self.metric.name)
        effect = self.metric.effect / info.scale if self.metric.effect else None
        points = " points" if info.scale != 1.0 else ""
        level = self.alpha / max(1, len(self.compared))
        out = {}
        for cell, ref in self.compared:
            diffs, lead = paired.between(cell, ref)
            out[cell] = decide(
                diffs, lead, self.plan, level, effect, self.metric.goal, info.scale, points
            )
        return out

    def claim_decisions(self, records: Sequence[TrialRecord]) -> dict[int, Decision]:
        """Each declared claim's sequential decision (by `claim.index`) from the trials so
        far; the family's α is split evenly over the claims."""
        paired = _Paired.of(records, self.plan.max)
        level = self.alpha / max(1, len(self.claims))
        out = {}
        for claim in self.claims:
            diffs, lead = paired.between(claim.a, claim.b)
            out[claim.index] = decide_claim(diffs, lead, self.plan, level, claim, self.metric.goal)
        return out

    def _tests(self, records: Sequence[TrialRecord]) -> list[tuple[str, str, Decision]]:
        """The tests that drive the rounds, as (cell, the cell it is paired with, decision):
        the declared claims when there are any, else each cell against its reference."""
        if self.claims:
            decided = self.claim_decisions(records)
            return [(c.a, c.b, decided[c.index]) for c in self.claims]
        decided_cells = self.decisions(records)
        return [(cell, ref, decided_cells[cell]) for cell, ref in self.compared]

    def _needed(self, tests: Sequence[tuple[str, str, Decision]]) -> dict[str, int]:
        """How many seeds each cell trains as far as known now: what each test it is in has
        used or waits for."""
        need = {c.name: self.plan.start for c in self.cells}
        for a, b, decision in tests:
            wanted = decision.waiting_for or decision.n
            need[a] = max(need[a], wanted)
            need[b] = max(need[b], wanted)
        return need

    def _pairs(self, records: Sequence[TrialRecord]) -> list[Pair]:
        need = self._needed(self._tests(records))
        return [Pair(c.name, s, c.overrides) for c in self.cells for s in range(need[c.name])]

    def pairs(self, queue: QueueView | None) -> list[Pair]:
        return self._pairs(queue.records() if queue is not None else [])

    def later(self, queue: QueueView) -> int:
        """The seeds up to `max` of every cell in a test still undecided."""
        tests = self._tests(queue.records())
        need = self._needed(tests)
        open_cells = {
            name for a, b, decision in tests if decision.status == "undecided" for name in (a, b)
        }
        return sum(self.plan.max - need[c] for c in open_cells)

    def next_round(self, records: Sequence[TrialRecord], attrs: Mapping[str, Any]) -> Round | None:
        """The seeds the undecided comparisons wait for and no trial holds yet."""
        known = {r.key for r in records}
        missing = [p for p in self._pairs(records) if (p.cell, p.seed) not in known]
        if not missing:
            return None
        digest = hashlib.sha1(
            "|".join(sorted(f"{p.cell}:{p.seed}" for p in missing)).encode()
        ).hexdigest()[:16]
        return Round(_ROUND + digest, tuple(missing))

    def comparison(self, records: Sequence[TrialRecord], attrs: Mapping[str, Any]) -> Comparison:
        """The inner design's comparison with the sequential decisions: the declared claims'
        when there are any (the cell comparisons are then exploratory: no seed was added for
        them, so they carry no sequential decision), else each compared cell's."""
        inner = self.inner.comparison(records, attrs)
        if self.claims:
            return replace(inner, claims=self.claim_decisions(records))
        return replace(inner, sequential=self.decisions(records))


@dataclass(frozen=True)
class _Paired:
    """The finite metric values by cell and seed, and the seeds whose trials have settled
    (ended, or given up with no try pending)."""

    values: Mapping[str, Mapping[int, float]]
    settled: Mapping[str, set[int]]
    max: int

    @classmethod
    def of(cls, records: Sequence[TrialRecord], max_seeds: int) -> _Paired:
        values: dict[str, dict[int, float]] = defaultdict(dict)
        settled: dict[str, set[int]] = defaultdict(set)
        pending = {r.key for r in records if r.pending}
        for r in records:
            if r.done or (r.gave_up and r.key not in pending):
                settled[r.cell].add(r.seed)
            if r.done and r.value is not None and math.isfinite(r.value):
                values[r.cell][r.seed] = float(r.value)
        return cls(values, settled, max_seeds)

    def between(self, a: str, b: str) -> tuple[dict[int, float], int]:
        """The paired differences a − b by seed, and how many leading seeds both settled."""
        lead = 0
        while (
            lead < self.max and lead in self.settled.get(a, ()) and lead in self.settled.get(b, ())
        ):
            lead += 1
        va, vb = self.values.get(a, {}), self.values.get(b, {})
        return {s: va[s] - vb[s] for s in range(lead) if s in va and s in vb}, lead


def _zs(bounds: Sequence[float]) -> str:
    """z boundaries as the outline lists them (∞: this look cannot stop that way)."""
    shown = [
        f"{z:.2f}".replace("-", "−") if math.isfinite(z) else ("∞" if z > 0 else "none")
        for z in bounds
    ]
    return ", ".join(shown) if shown else "none"


def _percent(share: float) -> str:
    return f"{100 * share:.3g} %"


def adaptive(
    inner: Design, seeds: AdaptiveSeeds, metric: MetricSpec, claims: Sequence[Claim] = ()
) -> AdaptiveDesign:
    """Adaptive seeds around a design whose comparisons are known before training (a grid,
    variants, tricks). `claims`: the study's declared claims, resolved."""
    fixed = inner.comparison([], {})
    compared = tuple(
        (cell, fixed.references.get(cell, fixed.baseline))
        for cell in fixed.compared
        if cell != fixed.baseline
    )
    plan = SeedPlan(seeds.start, seeds.max, seeds.step)
    return AdaptiveDesign(inner, plan, metric, compared, claims=tuple(claims))


def _calibration(plan: SeedPlan, level: float, sides: int = 2) -> str:
    """How the t-tests' levels hold α, in words, for the outline."""
    b = boundaries(plan, level, sides, False)
    if not b.calibrated:
        return (
            f"(not calibrated: a plan of {len(b.upper)} looks is too many to simulate, so "
            "with few seeds the error may run slightly above α)"
        )
    return (
        f"× {b.scale:.3g} ({'two' if sides == 2 else 'one'}-sided), calibrated on "
        f"{SIMULATED_STUDIES:,} simulated null studies so that the t-tests hold α for this plan"
    )
