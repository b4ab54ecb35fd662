"""Each design answers for itself: its cells, what it trains, what it compares with what."""

from pathlib import Path
from typing import Any

from ablate.design import BASELINE, GridDesign, SearchDesign
from ablate.design._search import CONFIRMATION
from ablate.study_file import build_study


def _study(sweep: dict[str, Any], **extra: Any) -> Any:
    raw = {"name": "d", "base": {"data": {"num_classes": 3}}, "sweep": sweep, **extra}
    return build_study(raw, Path("d.yaml"))


class _Attrs:
    """A queue as far as `pairs` and `comparison` of a grid need it."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.attrs = attrs

    def records(self) -> list[Any]:
        return []


def test_a_grid_trains_every_cell_on_every_seed_and_compares_all_with_its_baseline() -> None:
    study = _study(
        {"grid": {"loss.aux.weight": [0.0, 0.4]}, "variants": {"lovasz": {"loss.lovasz": 0.5}}},
        baseline={"loss.aux.weight": 0.4},
    )
    design = study.design
    assert isinstance(design, GridDesign)
    assert [(p.cell, p.seed) for p in design.pairs(None)][:3] == [
        ("aux.weight=0", 0),
        ("aux.weight=0", 1),
        ("aux.weight=0", 2),
    ]
    assert len(design.pairs(None)) == design.n_trials() == 9
    comparison = design.comparison([], {})
    assert comparison.baseline == "aux.weight=0.4"
    assert comparison.compared == ["aux.weight=0", "aux.weight=0.4", "lovasz"]
    assert design.crossed == ("aux.weight=0", "aux.weight=0.4")  # the variant is off the grid
    assert design.axis is None  # a variant sits beside the grid: no single axis
    assert "  aux.weight=0.4 (baseline)" in design.outline()


def test_a_search_plans_its_confirmation_only_once_chosen() -> None:
    study = _study(
        {
            "search": {
                "n_trials": 3,
                "confirm_top": 1,
                "space": {"loss.aux.weight": {"low": 0.0, "high": 1.0}},
            },
            "seeds": [0, 1],
        }
    )
    design = study.design
    assert isinstance(design, SearchDesign)
    before = design.pairs(_Attrs({}))  # type: ignore[arg-type]
    assert [(p.cell, p.seed, p.sampled) for p in before] == [
        (BASELINE, 0, False),
        (BASELINE, 1, False),
        ("search-00", 0, True),
        ("search-01", 0, True),
        ("search-02", 0, True),
    ]
    chosen = {CONFIRMATION: {"cells": [{"cell": "search-01", "params": {"loss.aux.weight": 0.3}}]}}
    after = design.pairs(_Attrs(chosen))  # type: ignore[arg-type]
    assert after[len(before) :][0].cell == "search-01"
    assert [(p.seed, dict(p.params)) for p in after[len(before) :]] == [
        (1, {"loss.aux.weight": 0.3})
    ]
    assert design.n_trials() == len(after) == 6
    comparison = design.comparison([], chosen)
    assert comparison.compared == [BASELINE, "search-01"]
    assert design.outline() == ["  loss.aux.weight: float in [0, 1]"]
