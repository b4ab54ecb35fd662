"""A search's confirmed configurations are judged on the seeds they were not selected on: the
comparison names each one's selection seed, and a confirmation with no other seed is refused."""

from pathlib import Path
from typing import Any

import pytest

from ablate.design import BASELINE, SearchDesign
from ablate.design._search import CONFIRMATION
from ablate.errors import SpecError
from ablate.study_file import build_study

SPACE = {"loss.aux.weight": {"low": 0.0, "high": 1.0}}


def _design(seeds: list[int], confirm_top: int = 1, **search: Any) -> SearchDesign:
    raw = {
        "name": "d",
        "base": {"data": {"num_classes": 3}},
        "sweep": {
            "search": {"n_trials": 3, "confirm_top": confirm_top, "space": SPACE, **search},
            "seeds": seeds,
        },
    }
    design = build_study(raw, Path("d.yaml")).design
    assert isinstance(design, SearchDesign)
    return design


def _chosen(*cells: str) -> dict[str, Any]:
    return {
        CONFIRMATION: {"cells": [{"cell": c, "params": {"loss.aux.weight": 0.3}} for c in cells]}
    }


def test_each_confirmed_configuration_is_compared_without_the_seed_that_selected_it() -> None:
    design = _design([0, 1, 2], confirm_top=2, seed=1)
    comparison = design.comparison([], _chosen("search-02", "search-00"))
    assert comparison.compared == [BASELINE, "search-02", "search-00"]
    # the search seed (1 here, not the first of the seeds) is the one each was picked on;
    # the baseline and the configurations not confirmed were selected on nothing
    assert dict(comparison.selected_on) == {"search-02": (1,), "search-00": (1,)}


def test_nothing_is_left_out_before_a_confirmation_or_without_one() -> None:
    assert dict(_design([0, 1]).comparison([], {}).selected_on) == {}
    unconfirmed = _design([0, 1], confirm_top=0).comparison([], {})
    assert unconfirmed.best_searched and dict(unconfirmed.selected_on) == {}


def test_a_confirmation_with_only_the_search_seed_is_refused() -> None:
    with pytest.raises(SpecError, match=r"sweep\.seeds = \[4\] holds only the search seed 4"):
        _design([4])
    with pytest.raises(SpecError, match=r"confirm_top = 1"):
        _design([0], seed=0)


def test_one_seed_besides_the_search_seed_is_a_confirmation_without_a_test() -> None:
    # allowed: the report reads "n/a (one seed)" for it (tests/report/test_search.py)
    assert _design([0, 1]).n_trials() == 3 + 2 + 1
    assert _design([3], seed=0).n_trials() == 3 + 1 + 1  # the search seed is not among them
    assert _design([0], confirm_top=0).n_trials() == 3  # nothing confirmed: one seed is fine
