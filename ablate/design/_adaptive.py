"""Adaptive seeds (`sweep.seeds: {start, max, step}`): any grid, variants or tricks design,
trained on `start` seeds first, then `step` more per round for the comparisons still
undecided, until each is decided by the sequential test (`_sequential`) or has `max` seeds.

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

from ablate.design._claims import Claim
from ablate.design._protocol import Cell, Comparison, Design, Pair, QueueView, Round
from ablate.design._sequential import Decision, SeedPlan, decide
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
        looks = ", ".join(str(n) for n in self.plan.looks)
        m = len(self.compared)
        return [
            *self.inner.outline(),
            f"seeds: looks at {looks} seeds; each of the {m} comparison(s) spends "
            f"α = {self.alpha / max(1, m):.3g} over its looks (O'Brien–Fleming-type)",
        ]

    def decisions(self, records: Sequence[TrialRecord]) -> dict[str, Decision]:
        """Each compared cell's sequential decision from the trials so far."""
        values: dict[str, dict[int, float]] = defaultdict(dict)
        settled: dict[str, set[int]] = defaultdict(set)
        pending = {r.key for r in records if r.pending}
        for r in records:
            if r.done or (r.gave_up and r.key not in pending):
                settled[r.cell].add(r.seed)
            if r.done and r.value is not None and math.isfinite(r.value):
                values[r.cell][r.seed] = float(r.value)
        info = metric_info(self.metric.name)
        effect = self.metric.effect / info.scale if self.metric.effect else None
        points = " points" if info.scale != 1.0 else ""
        level = self.alpha / max(1, len(self.compared))
        out = {}
        for cell, ref in self.compared:
            lead = 0
            while lead < self.plan.max and lead in settled[cell] and lead in settled[ref]:
                lead += 1
            diffs = {
                s: values[cell][s] - values[ref][s]
                for s in range(lead)
                if s in values[cell] and s in values[ref]
            }
            out[cell] = decide(
                diffs, lead, self.plan, level, effect, self.metric.goal, info.scale, points
            )
        return out

    def _needed(self, decisions: Mapping[str, Decision]) -> dict[str, int]:
        """How many seeds each cell trains as far as known now: what each of its comparisons
        (as the cell or as the reference) has used or waits for."""
        need = {c.name: self.plan.start for c in self.cells}
        for cell, ref in self.compared:
            decision = decisions[cell]
            wanted = decision.waiting_for or decision.n
            need[cell] = max(need[cell], wanted)
            need[ref] = max(need[ref], wanted)
        return need

    def _pairs(self, records: Sequence[TrialRecord]) -> list[Pair]:
        need = self._needed(self.decisions(records))
        return [Pair(c.name, s, c.overrides) for c in self.cells for s in range(need[c.name])]

    def pairs(self, queue: QueueView | None) -> list[Pair]:
        return self._pairs(queue.records() if queue is not None else [])

    def later(self, queue: QueueView) -> int:
        """The seeds up to `max` of every cell in a comparison still undecided."""
        decisions = self.decisions(queue.records())
        need = self._needed(decisions)
        open_cells = {
            name
            for cell, ref in self.compared
            if decisions[cell].status == "undecided"
            for name in (cell, ref)
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
        inner = self.inner.comparison(records, attrs)
        return replace(inner, sequential=self.decisions(records))


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
