"""A loaded study: its validated spec, where it came from, and the design built from it.

This module sits above `ablate.spec` (the schema, reading the file) and `ablate.design` (what a
study trains and compares): designs are built on the spec's models, and the spec knows nothing
of designs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ablate.design import Cell, Claim, Design, build_design, resolve_claims
from ablate.errors import SpecError
from ablate.spec import (
    MAX_CELL_NAME,
    MAX_CELLS,
    MAX_TRIALS,
    Recipe,
    StudySpec,
    SweepSpec,
    check_grid_size,
    load_raw,
    raise_validation,
    shown,
)


@dataclass(frozen=True)
class Study:
    """A validated study: the spec, where it came from, its design (the cells, their
    recipes, what is compared with what) and its declared claims."""

    spec: StudySpec
    path: Path
    design: Design
    claims: tuple[Claim, ...] = ()  # the declared claims, their cells resolved

    @property
    def cells(self) -> tuple[Cell, ...]:
        return self.design.cells

    @property
    def recipes(self) -> Mapping[str, Recipe]:
        """Cell name -> its recipe, as known before training."""
        return self.design.recipes

    @property
    def baseline(self) -> str:
        """The baseline cell's name ("" for a design without one)."""
        return self.design.baseline

    @property
    def keys(self) -> list[str]:
        """The swept keys, in file order (the columns of the results tables)."""
        return self.design.keys

    @property
    def n_trials(self) -> int:
        """How many (cell, seed) trials the design holds once complete."""
        return self.design.n_trials()

    def describe(self) -> str:
        """The design in words, for the console."""
        return self.design.describe()


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> Study:
    """Read, override (`--set`), validate and expand a study file. Raises SpecError."""
    return build_study(load_raw(path, overrides), Path(path))


def build_study(raw: Mapping[str, Any], file: Path) -> Study:
    """Validate a study's raw mapping and build its design; `file` is named in errors."""
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise_validation(file, exc, StudySpec)
    check_grid_size(file, spec.sweep)
    design = build_design(spec, file)
    check_design_size(file, spec.sweep, design)
    return Study(spec=spec, path=file, design=design, claims=resolve_claims(spec, design, file))


def check_design_size(file: Path, sweep: SweepSpec, design: Design) -> None:
    """Refuse a design over MAX_CELLS cells or MAX_TRIALS trials, and a cell name that
    cannot name a file or an MLflow run: over MAX_CELL_NAME bytes in UTF-8 (a file name has
    at most 255, a checkpoint's adds its seed; MLflow's run names 250 characters), or holding
    a control character (a newline breaks every one-line message; PostgreSQL refuses NUL)."""
    where = f"sweep.{design.kind}"  # the key the design is read from: grid, tricks, search
    if len(design.cells) > MAX_CELLS:
        raise SpecError(
            f"{file}: {where}: {len(design.cells):,} cells; a study has at most {MAX_CELLS:,}"
        )
    if design.n_trials() > MAX_TRIALS:
        raise SpecError(
            f"{file}: sweep.seeds: {design.describe()} = {design.n_trials():,} trials; a study "
            f"has at most {MAX_TRIALS:,}: give fewer seeds or fewer cells"
        )
    for cell in design.cells:
        key = "sweep.variants" if cell.name in sweep.variants else where
        size = len(cell.name.encode("utf-8"))
        if size > MAX_CELL_NAME:
            fix = (
                "give the variant a shorter name"
                if cell.name in sweep.variants
                else "shorten the values or trick names, or name the cells with sweep.variants"
            )
            raise SpecError(
                f"{file}: {key}: the cell name {shown(cell.name)} is {size:,} bytes in UTF-8 "
                f"({len(cell.name):,} characters); a cell name has at most {MAX_CELL_NAME} "
                f"bytes (it names the cell's MLflow runs and checkpoint files): {fix}"
            )
        if re.search(r"[\x00-\x1f\x7f]", cell.name):
            raise SpecError(
                f"{file}: {key}: the cell name {shown(cell.name)} holds a control character "
                "(a newline, tab, NUL, …); a cell name is one line of printable text"
            )
