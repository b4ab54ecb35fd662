"""A grid (full factorial over `sweep.grid`) and named variants (`sweep.variants`): every cell on
every seed, each compared with one baseline cell."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ablate.design._baseline import resolve_baseline
from ablate.design._protocol import Cell, Comparison, UpFront
from ablate.spec import (
    Recipe,
    StudySpec,
    SweepSpec,
    apply_overrides,
    check_key,
    format_value,
    raise_validation,
    short_keys,
)

if TYPE_CHECKING:
    from ablate.study._record import TrialRecord


def expand_cells(sweep: SweepSpec) -> list[Cell]:
    """The study's cells: every point of the grid (full factorial), then every named variant."""
    cells: list[Cell] = []
    if sweep.grid:
        keys = list(sweep.grid)
        short = short_keys(keys)
        for values in itertools.product(*(sweep.grid[k] for k in keys)):
            overrides = dict(zip(keys, values, strict=True))
            name = ",".join(f"{short[k]}={format_value(v)}" for k, v in overrides.items())
            cells.append(Cell(name, overrides))
    for name, patch in sweep.variants.items():
        cells.append(Cell(name, dict(patch)))
    return cells


@dataclass(frozen=True)
class GridDesign(UpFront):
    kind = "grid"
    cells: tuple[Cell, ...]
    recipes: Mapping[str, Recipe]
    baseline: str
    keys: list[str]
    factors: tuple[str, ...]
    crossed: tuple[str, ...]
    axis: str | None
    seeds: tuple[int, ...]

    def n_trials(self) -> int:
        return len(self.cells) * len(self.seeds)

    def describe(self) -> str:
        return f"{len(self.cells)} cells × {len(self.seeds)} seeds"

    def outline(self) -> list[str]:
        return [
            f"  {c.name}" + (" (baseline)" if c.name == self.baseline else "") for c in self.cells
        ]

    def comparison(self, records: Sequence[TrialRecord], attrs: Mapping[str, Any]) -> Comparison:
        names = [c.name for c in self.cells]
        return Comparison(names, self.baseline, names)


def build_grid(spec: StudySpec, file: Path) -> GridDesign:
    """Check every swept key and every cell's recipe, and resolve the baseline."""
    sweep = spec.sweep
    for key in sweep.grid:
        check_key(file, "sweep.grid", key)
    for name, patch in sweep.variants.items():
        for key in patch:
            check_key(file, f"sweep.variants.{name}", key)
    cells = expand_cells(sweep)
    recipes: dict[str, Recipe] = {}
    for cell in cells:
        try:
            recipes[cell.name] = apply_overrides(spec.base, cell.overrides)
        except ValidationError as exc:
            where = (
                f"sweep.variants.{cell.name}"
                if cell.name in sweep.variants
                else f"sweep.grid (cell {cell.name})"
            )
            raise_validation(file, exc, Recipe, context=f"in {where}, ")
    keys = list(dict.fromkeys(k for c in cells for k in c.overrides))
    factors = list(sweep.grid)
    return GridDesign(
        cells=tuple(cells),
        recipes=recipes,
        baseline=resolve_baseline(file, spec, cells),
        keys=keys,
        factors=tuple(factors),
        crossed=tuple(c.name for c in cells if c.name not in sweep.variants),
        axis=factors[0] if len(factors) == 1 and not sweep.variants else None,
        seeds=tuple(sweep.seed_list),
    )
