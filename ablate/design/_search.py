"""A search (`sweep.search`): the sampler picks each configuration when a worker claims its
trial; the best K are then confirmed on every seed beside a baseline.

Each of the `n_trials` search cells is enqueued as a WAITING trial with nothing fixed; the
worker that claims one asks the study's sampler (TPE or random) for its values on that same
trial, so the sampler sees every finished configuration and exactly `n_trials` are trained,
however many workers race. When every search cell has ended, one process (whichever first
records the choice: the storage lets exactly one add it) picks the K best and enqueues them on
every other seed with their values fixed. The search only returns that choice (`next_round`);
the queue enqueues it once. Each confirmed configuration is then judged against the baseline on
those other seeds alone (`Comparison.selected_on`): on the search seed it was picked for ranking
best, so that seed's value flatters it (the winner's curse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from ablate.design._protocol import Cell, Comparison, Pair, QueueView, Range, Round, SamplerPlan
from ablate.errors import SpecError
from ablate.spec import (
    Recipe,
    SearchSpec,
    StudySpec,
    apply_overrides,
    check_key,
    leaf_annotation,
    raise_validation,
)

if TYPE_CHECKING:
    from ablate.study._record import TrialRecord

BASELINE = "baseline"  # the reference cell of a search with a confirmation, on every seed
CONFIRMATION = "confirmation"  # the study attribute holding the confirmed cells, once chosen
SHOWN_UNCONFIRMED = 5  # a search without confirmation shows its best few


def search_cell_names(n_trials: int) -> list[str]:
    """The cells of a search: one per sampled configuration, `search-00`, `search-01`, ..."""
    width = max(2, len(str(n_trials - 1)))
    return [f"search-{i:0{width}d}" for i in range(n_trials)]


def confirmed_cells(attrs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The confirmed cells with their values ({} until chosen), best first."""
    chosen = attrs.get(CONFIRMATION, {})
    return {str(c["cell"]): dict(c["params"]) for c in chosen.get("cells", [])}


@dataclass(frozen=True)
class SearchDesign:
    kind = "search"
    cells: tuple[Cell, ...]
    recipes: Mapping[str, Recipe]
    baseline: str  # BASELINE with a confirmation, else ""
    keys: list[str]
    space: Mapping[str, Range]
    search: SearchSpec
    seeds: tuple[int, ...]
    search_seed: int  # the seed every search trial trains with
    goal: Literal["maximize", "minimize"]
    factors: tuple[str, ...] = ()
    crossed: tuple[str, ...] = ()
    axis: str | None = None

    # -- what is trained

    def n_trials(self) -> int:
        confirm = self.search.confirm_top
        others = sum(s != self.search_seed for s in self.seeds)
        return self.search.n_trials + (len(self.seeds) + confirm * others if confirm else 0)

    def describe(self) -> str:
        s = self.search
        text = f"{s.sampler} search of {s.n_trials} configurations on seed {self.search_seed}"
        if s.confirm_top:
            text += f", then the best {s.confirm_top} and the baseline on seeds {list(self.seeds)}"
        return text

    def outline(self) -> list[str]:
        return [
            f"  {key}: {r.kind} in [{_bound(r.low)}, {_bound(r.high)}]"
            + (", log scale" if r.log else "")
            for key, r in self.space.items()
        ]

    def _searched(self) -> list[str]:
        return [c.name for c in self.cells if c.name != BASELINE]

    def pairs(self, queue: QueueView | None) -> list[Pair]:
        """Each search cell once on the search seed; the baseline on every seed; once chosen,
        the confirmed configurations on the other seeds."""
        pairs = [Pair(name, self.search_seed, {}, sampled=True) for name in self._searched()]
        if self.baseline:
            overrides = dict(self.cells[0].overrides)
            pairs = [Pair(BASELINE, s, overrides) for s in self.seeds] + pairs
        if queue is not None:
            pairs += self._confirmation(queue.attrs)
        return pairs

    def _confirmation(self, attrs: Mapping[str, Any]) -> list[Pair]:
        return self._confirming(confirmed_cells(attrs))

    def _confirming(self, chosen: Mapping[str, Mapping[str, Any]]) -> list[Pair]:
        """The chosen configurations on every seed but the search seed, values fixed."""
        return [
            Pair(cell, seed, params, sampled=True, params=params)
            for cell, params in chosen.items()
            for seed in self.seeds
            if seed != self.search_seed
        ]

    def values(self, queue: QueueView, record: TrialRecord) -> dict[str, Any]:
        """Sampled now, or the values fixed when the trial was enqueued (a retry, a
        confirmation). The sampler is seeded by the search seed and the trial number: one
        sampler per process with one seed would draw the same values in every worker."""
        if not record.sampled:
            return dict(record.overrides)
        startup = min(10, max(3, self.search.n_trials // 3))
        seed = (self.search_seed * 1_000_003 + record.number) % 2**32
        return queue.sample(record, self.space, SamplerPlan(self.search.sampler, seed, startup))

    # -- the confirmation

    def _ended(self, records: Sequence[TrialRecord]) -> bool:
        """Whether every search cell has its outcome: done, or failed with its retries used
        up. (A cell between a failed try and its retry has no pending trial, yet has not
        ended.)"""
        tries: dict[str, list[TrialRecord]] = {}
        for r in records:
            if r.seed == self.search_seed:
                tries.setdefault(r.cell, []).append(r)
        for cell in self._searched():
            mine = tries.get(cell, [])
            if not mine or any(r.pending for r in mine):
                return False
            if not any(r.done or r.gave_up for r in mine):
                return False
        return True

    def _ranked(self, records: Sequence[TrialRecord]) -> list[TrialRecord]:
        """The COMPLETE search trials, best first (ties: the earlier trial)."""
        sign = -1.0 if self.goal == "maximize" else 1.0
        searched = set(self._searched())
        done = [
            r for r in records if r.cell in searched and r.seed == self.search_seed and r.complete
        ]
        return sorted(done, key=lambda r: (sign * float(r.value or 0.0), r.number))

    def next_round(self, records: Sequence[TrialRecord], attrs: Mapping[str, Any]) -> Round | None:
        """Once every search trial has ended: the `confirm_top` best on the other seeds, with
        the choice kept under CONFIRMATION. Once chosen, the choice recorded there stands
        (another process may have chosen first), and the round is what of it is missing."""
        if not self.search.confirm_top:
            return None
        if CONFIRMATION in attrs:
            return Round(CONFIRMATION, tuple(self._confirmation(attrs)), attrs[CONFIRMATION])
        if not self._ended(records):
            return None
        best = self._ranked(records)[: self.search.confirm_top]
        choice = {
            "cells": [{"cell": r.cell, "params": dict(r.params), "value": r.value} for r in best]
        }
        chosen = {r.cell: dict(r.params) for r in best}
        return Round(CONFIRMATION, tuple(self._confirming(chosen)), choice)

    def later(self, queue: QueueView) -> int:
        return max(0, self.n_trials() - len(self.pairs(queue)))

    # -- what is compared

    def comparison(self, records: Sequence[TrialRecord], attrs: Mapping[str, Any]) -> Comparison:
        """The baseline, then the confirmed cells (each judged without the search seed it was
        selected on), then the rest ranked; without a confirmation, the best ranks the rest."""
        confirmed = list(confirmed_cells(attrs))
        ranked = [r.cell for r in self._ranked(records)]
        names = [c.name for c in self.cells]
        order = [c for c in names if c == self.baseline] + confirmed
        order += [c for c in ranked if c not in order]
        order += [c for c in names if c not in order]
        if self.baseline:
            selected = {cell: (self.search_seed,) for cell in confirmed}
            return Comparison(
                order, self.baseline, [self.baseline, *confirmed], selected_on=selected
            )
        best = ranked[0] if ranked else names[0]
        return Comparison(order, best, [], best_searched=True)

    def summary_rows(self, comparison: Comparison) -> list[str]:
        return comparison.compared or comparison.cells[:SHOWN_UNCONFIRMED]


def _bound(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_RANGE_TYPES = (int, float, float | None, int | None)


def search_kind(key: str, low: float, high: float) -> Literal["int", "float"]:
    """How a searched key is sampled: integers for a whole-number recipe field (or a
    `model.args` key with whole-number bounds), floats otherwise."""
    annotation = leaf_annotation(key)
    if annotation is None:  # free `model.args` key: the bounds say
        return "int" if isinstance(low, int) and isinstance(high, int) else "float"
    return "int" if annotation in (int, int | None) else "float"


def build_search(spec: StudySpec, search: SearchSpec, file: Path) -> SearchDesign:
    """Check the space (each key a number of the recipe, both bounds accepted by it) and the
    baseline; a cell per sampled configuration and, when the best are to be confirmed, a
    baseline cell trained on every seed."""
    space: dict[str, Range] = {}
    for key, bounds in search.space.items():
        where = f"sweep.search.space.{key}"
        check_key(file, "sweep.search.space", key)
        annotation = leaf_annotation(key)
        if annotation is not None and annotation not in _RANGE_TYPES:
            raise SpecError(
                f"{file}: {where}: {key} is not a number, so it cannot be searched over a "
                "range; sweep its values with sweep.grid or sweep.variants"
            )
        if annotation in (int, int | None) and not bounds.whole:
            raise SpecError(
                f"{file}: {where}: {key} is a whole number: give whole-number low and high "
                f"(got {bounds.low!r}, {bounds.high!r})"
            )
        for bound in ("low", "high"):
            try:
                apply_overrides(spec.base, {key: getattr(bounds, bound)})
            except ValidationError as exc:
                raise_validation(file, exc, Recipe, context=f"in {where}.{bound}, ")
        kind = search_kind(key, bounds.low, bounds.high)
        space[key] = Range(kind, bounds.low, bounds.high, bounds.log)
    if isinstance(spec.baseline, str):
        raise SpecError(
            f"{file}: baseline = {spec.baseline!r}: a search study's baseline is the base recipe "
            "(leave it out) or a mapping of overrides, e.g. {loss.aux.weight: 0.0}"
        )
    baseline_overrides = dict(spec.baseline or {})
    for key in baseline_overrides:
        check_key(file, "baseline", key)
    try:
        baseline_recipe = apply_overrides(spec.base, baseline_overrides)
    except ValidationError as exc:
        raise_validation(file, exc, Recipe, context="in baseline, ")
    cells = [Cell(name, {}) for name in search_cell_names(search.n_trials)]
    recipes = {c.name: spec.base for c in cells}
    if search.confirm_top:  # no baseline cell otherwise: its overrides are only checked
        cells.insert(0, Cell(BASELINE, baseline_overrides))
        recipes[BASELINE] = baseline_recipe
    seeds = spec.sweep.seed_list
    search_seed = search.seed if search.seed is not None else seeds[0]
    if search.confirm_top and all(s == search_seed for s in seeds):
        raise SpecError(
            f"{file}: sweep.search.confirm_top = {search.confirm_top}: a confirmed "
            f"configuration is judged on the seeds it was not selected on, and sweep.seeds = "
            f"{seeds} holds only the search seed {search_seed}: give more seeds (at least 2 "
            "besides the search seed for a test), or confirm_top: 0"
        )
    return SearchDesign(
        cells=tuple(cells),
        recipes=recipes,
        baseline=BASELINE if search.confirm_top else "",
        keys=list(dict.fromkeys([*search.space, *baseline_overrides])),
        space=space,
        search=search,
        seeds=tuple(seeds),
        search_seed=search_seed,
        goal=spec.metric.goal,
    )
