"""The sequential tests' error rates and power on simulated studies (paired differences with
sd 1, looks at 3, 5, 7, 9, 10 seeds, α = 0.05): each claim kind's false-positive rate stays
at α within Monte Carlo error under its null, exact boundaries find a 1 sd difference more
often than the union-bound rule they replace, and `decide` / `decide_claim` decide each
simulated study as the vectorised simulation does. benchmarks/sequential_error_rates.py
prints the same cases with more studies."""

import math

import numpy as np
import pytest

from ablate.design._claims import Claim
from ablate.design._sequential import Decision, decide, decide_claim
from tests.design.sequential_sim import (
    ALPHA,
    BETTER,
    CELLS,
    CLAIMS,
    EQUIVALENT,
    FUTILE,
    IGNORED,
    NONE,
    PLAN,
    SUPPORTED,
    WORSE,
    Case,
    data,
    fixed_power,
    simulate,
)

STUDIES = 8000  # MCSE of a 5 % rate ≈ 0.0024
T_EXCESS = 1.2  # z boundaries on t statistics with ≤ 9 df: the nominal-level rule's small excess


def _ids(cases: tuple[Case, ...]) -> list[str]:
    return [c.label for c in cases]


NULLS = tuple(c for c in CLAIMS if c.null)
POWER = tuple(c for c in CLAIMS if not c.null)


@pytest.mark.parametrize("case", NULLS, ids=_ids(NULLS))
def test_a_claim_is_falsely_supported_at_most_alpha_of_the_time(case: Case) -> None:
    exact = simulate("exact", case, PLAN, ALPHA, STUDIES, seed=11)[0]
    print(f"{case.label}: {exact.rate:.4f} ± {exact.mcse:.4f}, {exact.seeds:.1f} seeds")
    assert exact.rate <= ALPHA + 2 * exact.mcse
    assert exact.seeds < 7  # the futility bound stops most null studies early


@pytest.mark.parametrize("case", IGNORED, ids=_ids(IGNORED))
def test_ignoring_futility_adds_only_the_small_sample_t_excess(case: Case) -> None:
    # non-binding: the efficacy boundaries do not count on futility stops (exact on the z
    # scale: test_sequential.py); on t statistics with few seeds the nominal-level rule runs
    # a little above α (benchmarks/sequential_error_rates.py measures it over plans)
    exact = simulate("exact", case, PLAN, ALPHA, STUDIES, seed=12)[0]
    print(f"{case.label}: {exact.rate:.4f} ± {exact.mcse:.4f}")
    assert exact.rate <= T_EXCESS * ALPHA + 2 * exact.mcse


@pytest.mark.parametrize("case", POWER, ids=_ids(POWER))
def test_exact_boundaries_find_a_1_sd_difference_more_often_than_the_union_bound(
    case: Case,
) -> None:
    fixed, union, exact = (
        simulate(r, case, PLAN, ALPHA, STUDIES, seed=13)[0] for r in ("fixed", "union", "exact")
    )
    print(f"{case.label}: fixed {fixed.rate:.3f}, union {union.rate:.3f}, exact {exact.rate:.3f}")
    assert exact.rate >= union.rate + 0.08
    assert exact.rate >= fixed.rate - 0.1 and exact.seeds < PLAN.max - 1.5
    if case.test != "equivalent":  # the simulation's fixed-n test is the textbook one
        assert fixed.rate == pytest.approx(fixed_power(case, PLAN, ALPHA), abs=3 * fixed.mcse)


def test_cell_comparisons_keep_their_errors_and_gain_power() -> None:
    none_null, none_power, eq_null, eq_power = (
        {r: simulate(r, c, PLAN, ALPHA, STUDIES, seed=14)[0] for r in ("union", "exact")}
        for c in CELLS
    )
    assert none_null["exact"].rate <= T_EXCESS * ALPHA + 2 * none_null["exact"].mcse
    assert eq_null["exact"].rate <= ALPHA + 2 * eq_null["exact"].mcse
    assert none_power["exact"].rate >= none_power["union"].rate + 0.1
    assert eq_power["exact"].rate >= eq_power["union"].rate + 0.15  # the equivalence stop fires


_STATUS = {
    SUPPORTED: "supported",
    FUTILE: "not supported",
    BETTER: "better",
    WORSE: "worse",
    EQUIVALENT: "equivalent",
}


def _walk(d: np.ndarray, case: Case) -> Decision:
    """One simulated study through `decide` / `decide_claim`, seeds arriving a look at a
    time as the engine queues them."""
    seen = 0
    while True:
        diffs = dict(enumerate(d[:seen]))
        if case.test == "cells":
            effect = case.margin or None
            decision = decide(diffs, seen, PLAN, ALPHA, effect, "maximize")
        else:
            claim = Claim(0, "a", "b", case.test, case.margin, 1.0, "")  # type: ignore[arg-type]
            decision = decide_claim(diffs, seen, PLAN, ALPHA, claim, "maximize")
        if decision.status != "undecided":
            return decision
        seen = decision.waiting_for


@pytest.mark.parametrize("case", CLAIMS + CELLS, ids=_ids(CLAIMS + CELLS))
def test_decide_stops_each_simulated_study_where_the_simulation_does(case: Case) -> None:
    studies = 60
    _, outcome, used = simulate("exact", case, PLAN, ALPHA, studies, seed=15)
    for d, want, n in zip(data(case, PLAN, studies, 15), outcome, used, strict=True):
        decision = _walk(d, case)
        assert decision.status == (_STATUS[want] if want != NONE else "max")
        assert decision.n == n
        assert decision.ci_low <= decision.diff <= decision.ci_high
        assert not math.isnan(decision.ci_level)
