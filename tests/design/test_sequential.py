"""Adaptive seeds' stopping rule keeps its error rates under optional stopping: checked on
simulated studies, the way the seeds would arrive, look by look."""

import math

import numpy as np
import pytest

from ablate.design._sequential import SeedPlan, decide, look_levels, spent

PLAN = SeedPlan(start=3, max=10, step=2)  # looks at 3, 5, 7, 9, 10
ALPHA = 0.05
STUDIES = 2000


def _run(true_diff: float, effect: float | None, rng: np.random.Generator) -> tuple[list, list]:
    """Each simulated study's decision and the seeds it used (paired differences ~ N(μ, 1))."""
    statuses, used = [], []
    for _ in range(STUDIES):
        d = rng.normal(true_diff, 1.0, size=PLAN.max)
        seen = 0
        while True:  # seeds arrive a look at a time, as the engine queues them
            decision = decide(dict(enumerate(d[:seen])), seen, PLAN, ALPHA, effect, "maximize")
            if decision.status != "undecided":
                break
            seen = next(n for n in PLAN.looks if n > seen)
        statuses.append(decision.status)
        used.append(decision.n)
    return statuses, used


def _bound(rate: float) -> float:
    """α plus 3 Monte-Carlo standard errors."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / STUDIES)


def test_the_levels_spend_exactly_alpha_most_of_it_late() -> None:
    levels = look_levels(PLAN, ALPHA)
    assert sum(levels) == pytest.approx(ALPHA)
    assert all(level > 0 for level in levels) and levels[0] < 1e-3
    assert spent(1.0, ALPHA) == pytest.approx(ALPHA) and spent(0.5, ALPHA) < ALPHA / 5


def test_null_studies_claim_a_difference_at_most_alpha_of_the_time() -> None:
    statuses, used = _run(0.0, effect=0.5, rng=np.random.default_rng(0))
    false = sum(s in ("better", "worse") for s in statuses) / STUDIES
    print(f"null: false-positive rate {false:.4f}, mean seeds {np.mean(used):.2f} of {PLAN.max}")
    assert false <= _bound(ALPHA)
    assert np.mean(used) < PLAN.max  # equivalence stops some studies early


def test_a_difference_that_matters_is_called_equivalent_at_most_alpha_of_the_time() -> None:
    statuses, used = _run(0.5, effect=0.5, rng=np.random.default_rng(1))
    wrong = sum(s == "equivalent" for s in statuses) / STUDIES
    print(f"at the effect: false 'no difference' rate {wrong:.4f}, mean seeds {np.mean(used):.2f}")
    assert wrong <= _bound(ALPHA)


def test_a_large_difference_stops_early_and_is_found() -> None:
    statuses, used = _run(2.0, effect=0.5, rng=np.random.default_rng(2))
    found = sum(s == "better" for s in statuses) / STUDIES
    print(f"2 sd: found {found:.3f}, mean seeds {np.mean(used):.2f}")
    assert found > 0.9 and np.mean(used) < 7


def test_a_look_waits_for_every_seed_it_needs_and_says_why_it_stopped() -> None:
    d = {0: 1.0, 1: 1.1, 2: 0.9, 3: 1.0}
    waiting = decide(d, 4, PLAN, ALPHA, None, "maximize")  # look 1 (3 seeds) not enough
    assert waiting.status == "undecided" and waiting.reason == "waiting for 5 seeds"
    assert decide(d, 2, PLAN, ALPHA, None, "maximize").reason == "waiting for 3 seeds"
    constant = decide({i: 1.0 for i in range(3)}, 3, PLAN, ALPHA, None, "minimize")
    assert constant.status == "worse" and constant.n == 3  # a constant shift up, when lower wins
    assert "paired t-test rejected at n = 3" in constant.reason
    flat = decide({i: 0.0 for i in range(10)}, 10, PLAN, ALPHA, None, "maximize")
    assert flat.status == "max" and flat.n == 10
