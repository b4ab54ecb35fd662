"""Tricks designs: the cells each makes, what each cell applies and what it is compared with,
and the study files they refuse."""

from pathlib import Path
from typing import Any

import pytest

from ablate.design import TricksDesign
from ablate.errors import SpecError
from ablate.study_file import build_study

BASE = {"data": {"num_classes": 3}, "loss": {"aux": {"weight": 0.0}}}
TRICKS = {
    "aux": {"loss.aux.weight": 0.4},
    "ohem": {"loss.ce.ohem_thresh": 0.7, "loss.ce.min_kept": 1000},
    "lovasz": {"loss.lovasz": 0.5},
}


def _design(design: str | None, tricks: dict[str, Any] = TRICKS, **extra: Any) -> TricksDesign:
    sweep: dict[str, Any] = {"tricks": tricks, "seeds": [0, 1]}
    if design:
        sweep["design"] = design
    raw = {"name": "t", "base": BASE, "sweep": sweep, **extra}
    built = build_study(raw, Path("t.yaml")).design
    assert isinstance(built, TricksDesign)
    return built


def _cells(design: TricksDesign) -> list[tuple[str, dict[str, Any], str]]:
    return [(c.name, dict(c.overrides), design.references.get(c.name, "")) for c in design.cells]


def test_one_at_a_time_is_the_base_and_each_trick_alone_against_it() -> None:
    design = _design(None)  # the default
    assert design.design == "one_at_a_time"
    assert _cells(design) == [
        ("baseline", {}, ""),
        ("+aux", TRICKS["aux"], "baseline"),
        ("+ohem", TRICKS["ohem"], "baseline"),
        ("+lovasz", TRICKS["lovasz"], "baseline"),
    ]
    assert design.n_trials() == 8 and len(design.pairs(None)) == 8
    assert design.recipes["+ohem"].loss.ce.min_kept == 1000
    assert design.recipes["baseline"].loss.aux.weight == 0.0  # the base's own value


def test_leave_one_out_compares_all_but_each_with_all() -> None:
    design = _design("leave_one_out")
    everything = {**TRICKS["aux"], **TRICKS["ohem"], **TRICKS["lovasz"]}
    assert _cells(design) == [
        ("all", everything, ""),
        ("all-aux", {**TRICKS["ohem"], **TRICKS["lovasz"]}, "all"),
        ("all-ohem", {**TRICKS["aux"], **TRICKS["lovasz"]}, "all"),
        ("all-lovasz", {**TRICKS["aux"], **TRICKS["ohem"]}, "all"),
    ]
    assert design.baseline == "all"


def test_cumulative_adds_one_trick_per_row_each_compared_with_the_row_above() -> None:
    design = _design("cumulative")
    assert [(name, ref) for name, _, ref in _cells(design)] == [
        ("baseline", ""),
        ("+aux", "baseline"),
        ("+aux+ohem", "+aux"),
        ("+aux+ohem+lovasz", "+aux+ohem"),
    ]
    comparison = design.comparison([], {})
    assert comparison.references["+aux+ohem+lovasz"] == "+aux+ohem"
    outline = "\n".join(design.outline())
    assert "+aux+ohem         compared with +aux" in outline
    assert "ohem: loss.ce.ohem_thresh = 0.7, loss.ce.min_kept = 1000" in outline


def test_factorial_is_every_subset_by_size_then_file_order() -> None:
    design = _design("factorial")
    assert [c.name for c in design.cells] == [
        "baseline",
        "+aux",
        "+ohem",
        "+lovasz",
        "+aux+ohem",
        "+aux+lovasz",
        "+ohem+lovasz",
        "+aux+ohem+lovasz",
    ]
    assert design.members["+aux+lovasz"] == {"aux", "lovasz"}
    assert set(design.references.values()) == {"baseline"}
    assert design.n_trials() == 16


@pytest.mark.parametrize(
    ("sweep", "extra", "says"),
    [
        (
            {
                "tricks": {"a": {"loss.aux.weight": 0.4}, "b": {"loss.aux.weight": 0.2}},
                "design": "factorial",
            },
            {},
            "'a' sets loss.aux.weight = 0.4 and 'b' sets it to 0.2",
        ),
        ({"tricks": {"Aux": {"loss.aux.weight": 0.4}}}, {}, "trick name 'Aux'"),
        ({"tricks": {"a": {}}}, {}, "trick 'a' changes no key"),
        ({"tricks": {"a": {"loss.lovaz": 0.5}}}, {}, "did you mean 'loss.lovasz'"),
        ({"tricks": {"a": {"loss.lovasz": -1}}}, {}, "in sweep.tricks.a"),
        ({"grid": {"loss.lovasz": [0.5]}, "design": "factorial"}, {}, "needs 'tricks'"),
        (
            {"tricks": {"a": {"loss.lovasz": 0.5}}, "variants": {"v": {"loss.lovasz": 0.1}}},
            {},
            "'tricks' cannot be combined",
        ),
        (
            {
                "tricks": {f"t{i}": {"loss.lovasz": 0.1 * i} for i in range(7)},
                "design": "factorial",
            },
            {},
            "at most 6 tricks",
        ),
        ({"tricks": {"a": {"loss.lovasz": 0.5}}}, {"baseline": "+a"}, "leave `baseline` out"),
        ({"tricks": {"a": {"loss.lovasz": 0.0}}}, {}, "the trick changes nothing"),
    ],
)
def test_bad_tricks_are_refused_naming_the_key(
    sweep: dict[str, Any], extra: dict[str, Any], says: str
) -> None:
    raw = {"name": "t", "base": BASE, "sweep": sweep, **extra}
    with pytest.raises(SpecError, match=None) as caught:
        build_study(raw, Path("t.yaml"))
    assert says in str(caught.value) and "t.yaml" in str(caught.value)
