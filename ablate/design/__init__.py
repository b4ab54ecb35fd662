"""Designs: what a study trains and what it compares, behind one `Design` protocol.

`build_design` turns a validated study file into its design: a grid or named variants
(`GridDesign`), named tricks combined one at a time, leaving one out, cumulatively or in full
(`TricksDesign`), or a search (`SearchDesign`). A new design is a module here and one line in
`build_design`; nothing else asks which design a study has.
"""

from __future__ import annotations

from pathlib import Path

from ablate.design._adaptive import AdaptiveDesign, adaptive
from ablate.design._claims import BASELINE_NAME, Claim, resolve_claims
from ablate.design._grid import GridDesign, build_grid, expand_cells
from ablate.design._protocol import (
    Cell,
    Comparison,
    Design,
    Pair,
    QueueView,
    Range,
    Round,
    SamplerPlan,
)
from ablate.design._search import (
    BASELINE,
    SearchDesign,
    build_search,
    confirmed_cells,
    search_kind,
)
from ablate.design._tricks import TricksDesign, build_tricks
from ablate.errors import SpecError
from ablate.spec import AdaptiveSeeds, StudySpec


def build_design(spec: StudySpec, file: Path) -> Design:
    """The design a study file describes; raises SpecError naming the file and key."""
    seeds = spec.sweep.seeds
    if spec.sweep.search is not None:
        if isinstance(seeds, AdaptiveSeeds):
            raise SpecError(
                f"{file}: sweep.seeds = {seeds.model_dump()}: adaptive seeds need cells "
                "compared with a reference (grid, variants or tricks), not a search; give a "
                "list of seeds"
            )
        return build_search(spec, spec.sweep.search, file)
    design: Design = build_tricks(spec, file) if spec.sweep.tricks else build_grid(spec, file)
    if isinstance(seeds, AdaptiveSeeds):
        return adaptive(design, seeds, spec.metric, resolve_claims(spec, design, file))
    return design


__all__ = [
    "BASELINE",
    "BASELINE_NAME",
    "AdaptiveDesign",
    "Cell",
    "Claim",
    "Comparison",
    "Design",
    "GridDesign",
    "Pair",
    "QueueView",
    "Range",
    "Round",
    "SamplerPlan",
    "SearchDesign",
    "TricksDesign",
    "build_design",
    "confirmed_cells",
    "expand_cells",
    "resolve_claims",
    "search_kind",
]
