"""The sequential tests' error rates and power on simulated studies (paired differences with
sd 1, α = 0.05): under every null (claims with futility obeyed or ignored, cell comparisons
with and without `metric.effect`, plans from 2 to 20 seeds) the calibrated rule rejects at
most α of the time within Monte Carlo error, where the rule it replaces (z boundaries at
their nominal level) ran above it; it finds a 1 sd difference far more often than the
union-bound rule; and `decide` / `decide_claim` decide each simulated study as the
vectorised simulation does. The studies here are drawn by tests/design/sequential_sim.py
from their own seeds, independently of the studies the boundaries are calibrated on.
benchmarks/sequential_error_rates.py prints the same cases with more studies."""

import math

import numpy as np
import pytest

from ablate.design._claims import Claim
from ablate.design._sequential import Decision, SeedPlan, decide, decide_claim
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
    SMALL,
    SUPPORTED,
    WORSE,
    Case,
    data,
    fixed_power,
    simulate,
)

STUDIES = 8000  # a case: MCSE of a 5 % rate ≈ 0.0024


def _ids(cases: tuple[Case, ...]) -> list[str]:
    return [c.label for c in cases]


NULLS = tuple(c for c in CLAIMS + IGNORED + CELLS if c.null)
POWER = tuple(c for c in CLAIMS if not c.null)
PLANS = [(plan, case) for plan in SMALL for case in IGNORED]


@pytest.mark.parametrize(("i", "case"), enumerate(NULLS), ids=_ids(NULLS))
def test_a_true_null_is_rejected_at_most_alpha_of_the_time(i: int, case: Case) -> None:
    rule = simulate("calibrated", case, PLAN, ALPHA, STUDIES, seed=100 + i)[0]
    print(f"{case.label}: {rule.rate:.4f} ± {rule.mcse:.4f}, {rule.seeds:.1f} seeds")
    assert rule.rate <= ALPHA + 2 * rule.mcse
    if case.test != "cells" and case.obeyed:
        assert rule.seeds < 7  # the futility bound stops most null claims early


@pytest.mark.parametrize(
    ("i", "plan", "case"),
    [(i, plan, case) for i, (plan, case) in enumerate(PLANS)],
    ids=[f"{p.start}-{p.max}-{p.step} {c.test}" for p, c in PLANS],
)
def test_every_plan_holds_alpha_with_futility_ignored(i: int, plan: SeedPlan, case: Case) -> None:
    # non-binding futility: the efficacy boundaries alone hold α, however few the seeds
    rule = simulate("calibrated", case, plan, ALPHA, STUDIES, seed=200 + i)[0]
    print(f"{plan} {case.test}: {rule.rate:.4f} ± {rule.mcse:.4f}")
    assert rule.rate <= ALPHA + 2 * rule.mcse


def test_z_boundaries_at_their_nominal_level_ran_above_alpha() -> None:
    # what the calibration corrects, and what the tests above would have caught
    case = next(c for c in IGNORED if c.test == "different")
    nominal = simulate("nominal", case, PLAN, ALPHA, 40_000, seed=300)[0]
    calibrated = simulate("calibrated", case, PLAN, ALPHA, 40_000, seed=300)[0]
    assert nominal.rate > ALPHA + 2 * nominal.mcse
    assert calibrated.rate < nominal.rate


@pytest.mark.parametrize(("i", "case"), enumerate(POWER), ids=_ids(POWER))
def test_a_1_sd_difference_is_found_far_more_often_than_by_the_union_bound(
    i: int, case: Case
) -> None:
    fixed, union, nominal, rule = (
        simulate(r, case, PLAN, ALPHA, STUDIES, seed=400 + i)[0]
        for r in ("fixed", "union", "nominal", "calibrated")
    )
    print(
        f"{case.label}: fixed {fixed.rate:.3f}, union {union.rate:.3f}, "
        f"nominal {nominal.rate:.3f}, calibrated {rule.rate:.3f}"
    )
    assert rule.rate >= union.rate + 0.08
    assert rule.rate >= fixed.rate - 0.12 and rule.seeds < PLAN.max - 1.5
    # the nominal rule's extra power came with its extra α (and a futility bound spent
    # against a smaller difference than the one it has 80 % power for on the t scale)
    assert nominal.rate - 0.05 <= rule.rate <= nominal.rate
    if case.test != "equivalent":  # the simulation's fixed-n test is the textbook one
        assert fixed.rate == pytest.approx(fixed_power(case, PLAN, ALPHA), abs=3 * fixed.mcse)


def test_cell_comparisons_gain_power_over_the_union_bound() -> None:
    power = [c for c in CELLS if not c.null]
    none_power, eq_power = (
        {r: simulate(r, c, PLAN, ALPHA, STUDIES, seed=500)[0] for r in ("union", "calibrated")}
        for c in power
    )
    assert none_power["calibrated"].rate >= none_power["union"].rate + 0.1
    assert eq_power["calibrated"].rate >= eq_power["union"].rate + 0.15  # equivalence stops


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
    _, outcome, used = simulate("calibrated", case, PLAN, ALPHA, studies, seed=15)
    for d, want, n in zip(data(case, PLAN, studies, 15), outcome, used, strict=True):
        decision = _walk(d, case)
        assert decision.status == (_STATUS[want] if want != NONE else "max")
        assert decision.n == n
        assert decision.ci_low <= decision.diff <= decision.ci_high
        assert not math.isnan(decision.ci_level)
