"""Named tricks combined the ways a paper's ablation section does (`sweep.tricks` and
`sweep.design`).

- `one_at_a_time`: the base, and each trick alone on it; each compared with the base.
- `leave_one_out`: every trick together ("all"), and all but each one; each compared with all,
  so a trick's contribution in the full recipe is minus its row's difference.
- `cumulative`: the base, then one more trick per row in file order ("bag of tricks"); each
  row compared with the row above (its step gain), the running total against the base.
- `factorial`: every subset of the tricks (2^k cells); the common table compares each with
  the base, the design's own table gives main effects and two-way interactions.

Cells are named by what they add to the base (`+aux+ohem`) or take from all (`all-aux`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ablate.design._protocol import Cell, Comparison, UpFront
from ablate.errors import SpecError
from ablate.spec import Recipe, StudySpec, apply_overrides, check_key, raise_validation

if TYPE_CHECKING:
    from ablate.study._record import TrialRecord

BASE, ALL = "baseline", "all"

# what each design compares a cell with, in words (validate, the report)
_AGAINST = {
    "one_at_a_time": "the baseline",
    "leave_one_out": "all tricks",
    "cumulative": "the row above",
    "factorial": "the baseline",
}


def _plus(tricks: Sequence[str]) -> str:
    return "".join(f"+{t}" for t in tricks) or BASE


@dataclass(frozen=True)
class TricksDesign(UpFront):
    kind = "tricks"
    design: str  # one_at_a_time | leave_one_out | cumulative | factorial
    patches: Mapping[str, Mapping[str, Any]]  # trick -> its overrides, in file order
    cells: tuple[Cell, ...]
    members: Mapping[str, frozenset[str]]  # cell -> the tricks it applies
    recipes: Mapping[str, Recipe]
    baseline: str
    references: Mapping[str, str]  # cell -> the cell it is compared with
    keys: list[str]
    seeds: tuple[int, ...]
    factors: tuple[str, ...] = ()
    crossed: tuple[str, ...] = ()
    axis: str | None = None

    def n_trials(self) -> int:
        return len(self.cells) * len(self.seeds)

    def describe(self) -> str:
        name = self.design.replace("_", "-")
        return (
            f"{name} over {len(self.patches)} tricks: {len(self.cells)} cells × "
            f"{len(self.seeds)} seeds"
        )

    def outline(self) -> list[str]:
        width = max(len(c.name) for c in self.cells)
        lines = []
        for cell in self.cells:
            against = self.references.get(cell.name)
            what = f"compared with {against}" if against else "reference"
            lines.append(f"  {cell.name:<{width}}  {what}")
        lines.append("tricks:")
        for trick, patch in self.patches.items():
            lines.append(f"  {trick}: " + ", ".join(f"{k} = {v!r}" for k, v in patch.items()))
        return lines

    def comparison(self, records: Sequence[TrialRecord], attrs: Mapping[str, Any]) -> Comparison:
        names = [c.name for c in self.cells]
        against = "" if self.against == "the baseline" else self.against
        return Comparison(
            names, self.baseline, names, references=dict(self.references), against=against
        )

    @property
    def against(self) -> str:
        """What a cell is compared with, in words."""
        return _AGAINST[self.design]


def _combinations(design: str, tricks: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(cell name, the tricks it applies) in the order the design's table reads."""
    if design == "one_at_a_time":
        return [(BASE, ()), *((f"+{t}", (t,)) for t in tricks)]
    if design == "leave_one_out":
        but = [(f"all-{t}", tuple(u for u in tricks if u != t)) for t in tricks]
        return [(ALL, tuple(tricks)), *but]
    if design == "cumulative":
        return [(_plus(tricks[:i]), tuple(tricks[:i])) for i in range(len(tricks) + 1)]
    if design == "factorial":  # by size, then file order: the base, singles, pairs, …
        subsets = [
            combo for k in range(len(tricks) + 1) for combo in itertools.combinations(tricks, k)
        ]
        return [(_plus(combo), combo) for combo in subsets]
    raise ValueError(f"unknown design {design!r}")


def _merged(
    file: Path, tricks: Mapping[str, Mapping[str, Any]], applied: Sequence[str]
) -> dict[str, Any]:
    """The overrides of several tricks together; two tricks setting one key differently
    cannot be combined."""
    overrides: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for name in applied:
        for key, value in tricks[name].items():
            if key in overrides and overrides[key] != value:
                raise SpecError(
                    f"{file}: sweep.tricks: {owner[key]!r} sets {key} = {overrides[key]!r} and "
                    f"{name!r} sets it to {value!r}; tricks this design combines must not "
                    "set one key to different values"
                )
            overrides[key], owner[key] = value, name
    return overrides


def build_tricks(spec: StudySpec, file: Path) -> TricksDesign:
    """Check every trick's keys and every cell's recipe; the design's cells and references."""
    sweep = spec.sweep
    design = sweep.design or "one_at_a_time"
    if spec.baseline is not None:
        raise SpecError(
            f"{file}: baseline = {spec.baseline!r}: a tricks design fixes what each cell is "
            f"compared with ({_AGAINST[design]}); leave `baseline` out"
        )
    for name, patch in sweep.tricks.items():
        for key in patch:
            check_key(file, f"sweep.tricks.{name}", key)
    for name, patch in sweep.tricks.items():
        try:
            alone = apply_overrides(spec.base, patch)
        except ValidationError as exc:
            raise_validation(file, exc, Recipe, context=f"in sweep.tricks.{name}, ")
        if alone == spec.base:
            shown = ", ".join(f"{k} = {v!r}" for k, v in patch.items())
            raise SpecError(
                f"{file}: sweep.tricks.{name}: the base already has {shown}, so the trick "
                "changes nothing; set the base (`base.<key>`) to the value without the trick"
            )
    names = tuple(sweep.tricks)
    cells, members, recipes = [], {}, {}
    for cell_name, applied in _combinations(design, names):
        overrides = _merged(file, sweep.tricks, applied)
        try:
            recipes[cell_name] = apply_overrides(spec.base, overrides)
        except ValidationError as exc:
            raise_validation(file, exc, Recipe, context=f"in sweep.tricks (cell {cell_name}), ")
        cells.append(Cell(cell_name, overrides))
        members[cell_name] = frozenset(applied)
    order = [c.name for c in cells]
    if design == "cumulative":
        references = {later: earlier for earlier, later in itertools.pairwise(order)}
    else:
        references = {c: order[0] for c in order[1:]}
    keys = list(dict.fromkeys(k for t in names for k in sweep.tricks[t]))
    return TricksDesign(
        design=design,
        patches={t: dict(sweep.tricks[t]) for t in names},
        cells=tuple(cells),
        members=members,
        recipes=recipes,
        baseline=order[0],
        references=references,
        keys=keys,
        seeds=tuple(sweep.seed_list),
    )
