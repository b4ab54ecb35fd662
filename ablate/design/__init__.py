"""Designs: what a study trains and what it compares, behind one `Design` protocol.

`build_design` turns a validated study file into its design: a grid or named variants
(`GridDesign`), named tricks combined one at a time, leaving one out, cumulatively or in full
(`TricksDesign`), or a search (`SearchDesign`). A new design is a module here and one line in
`build_design`; nothing else asks which design a study has.
"""

from __future__ import annotations

from pathlib import Path

from ablate.design._grid import GridDesign, build_grid, expand_cells
from ablate.design._protocol import Cell, Comparison, Design, Pair, QueueView
from ablate.design._search import (
    BASELINE,
    Range,
    SamplerPlan,
    SearchDesign,
    build_search,
    confirmed_cells,
    search_kind,
)
from ablate.design._tricks import TricksDesign, build_tricks
from ablate.spec import StudySpec


def build_design(spec: StudySpec, file: Path) -> Design:
    """The design a study file describes; raises SpecError naming the file and key."""
    if spec.sweep.search is not None:
        return build_search(spec, spec.sweep.search, file)
    if spec.sweep.tricks:
        return build_tricks(spec, file)
    return build_grid(spec, file)


__all__ = [
    "BASELINE",
    "Cell",
    "Comparison",
    "Design",
    "GridDesign",
    "Pair",
    "QueueView",
    "Range",
    "SamplerPlan",
    "SearchDesign",
    "TricksDesign",
    "build_design",
    "confirmed_cells",
    "expand_cells",
    "search_kind",
]
