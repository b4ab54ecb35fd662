"""Adaptive seeds' sequential tests: the exact z boundaries that give the shape, their
levels calibrated so the paired t-tests hold α (checked on simulated t statistics drawn
here, independently of the studies they were calibrated on), the futility bound on the t
scale, and the decisions with their reasons and repeated CIs. The error rates of the
decisions are tests/design/test_error_rates.py's."""

import math

import numpy as np
import pytest
from scipy import special

from ablate.design import _boundaries
from ablate.design._claims import Claim
from ablate.design._sequential import (
    BETA,
    Boundaries,
    SeedPlan,
    boundaries,
    claim_boundaries,
    decide,
    decide_claim,
    spent,
)

PLAN = SeedPlan(start=3, max=10, step=2)  # looks at 3, 5, 7, 9, 10
ALPHA = 0.05
PATHS = 200_000  # simulated studies: MCSE of a 5 % rate ≈ 0.0005
CALIBRATION = math.sqrt(ALPHA * (1 - ALPHA) / 200_000)  # the calibration's own error, at most


def _z_paths(plan: SeedPlan, mean: float, seed: int) -> np.ndarray:
    """Z_k = S_k / √n_k at each look for PATHS studies of N(mean, 1) seeds: (PATHS, K)."""
    sums = np.random.default_rng(seed).normal(mean, 1.0, (PATHS, plan.max)).cumsum(axis=1)
    looks = np.array(plan.looks)
    return sums[:, looks - 1] / np.sqrt(looks)


def _t_paths(plan: SeedPlan, mean: float, seed: int) -> np.ndarray:
    """Each look's paired t statistic for PATHS studies of N(mean, 1) seeds, every
    difference drawn: (PATHS, K)."""
    d = np.random.default_rng(seed).normal(mean, 1.0, (PATHS, plan.max))
    looks = np.array(plan.looks)
    sums, squares = d.cumsum(axis=1)[:, looks - 1], (d * d).cumsum(axis=1)[:, looks - 1]
    sd = np.sqrt((squares - sums**2 / looks) / (looks - 1))
    return sums / looks / (sd / np.sqrt(looks))


def _t_bounds(b: Boundaries, upper: bool = True) -> np.ndarray:
    """The boundaries on the t scale at each look's n − 1 degrees of freedom: (K,)."""
    at = b.t_upper if upper else b.t_lower
    return np.array([at(k, n - 1) for k, n in enumerate(b.plan.looks)])


def _first(hit: np.ndarray) -> np.ndarray:
    """The look index where each path first hits (K where it never does)."""
    return np.where(hit.any(axis=1), hit.argmax(axis=1), hit.shape[1])


def test_the_z_shape_matches_the_published_obrien_fleming_type_values() -> None:
    # Lan–DeMets O'Brien–Fleming-type, two-sided α = 0.05 (α/2 a tail), equally spaced looks:
    # the values of gsDesign, rpact and ldbounds
    five = boundaries(SeedPlan(2, 10, 2), 0.05, 2, False)
    assert five.z_upper == pytest.approx((4.8769, 3.3569, 2.6803, 2.2898, 2.0310), abs=2e-4)
    two = boundaries(SeedPlan(2, 4, 2), 0.05, 2, False)
    assert two.z_upper == pytest.approx((2.9626, 1.9686), abs=2e-4)
    one_sided = boundaries(SeedPlan(2, 10, 2), 0.025, 1, False)
    assert one_sided.z_upper == pytest.approx(five.z_upper, abs=2e-4)


def test_a_single_look_is_the_fixed_n_t_test_exactly() -> None:
    single = boundaries(SeedPlan(5, 5, 1), 0.05, 1, False)
    assert single.z_upper == pytest.approx((1.6449,), abs=1e-4)
    # one look: its nominal level is exact, nothing to calibrate
    assert single.scale == 1.0 and single.calibrated
    assert single.t_upper(0, 4) == pytest.approx(2.13185, abs=1e-5)  # t_{0.95, 4}


@pytest.mark.parametrize("sides", [1, 2])
def test_each_look_spends_its_share_of_alpha_exactly_on_the_z_scale(sides: int) -> None:
    b = boundaries(PLAN, ALPHA, sides, False)
    z = _z_paths(PLAN, 0.0, seed=sides)
    stop = _first((np.abs(z) if sides == 2 else z) >= np.array(b.z_upper))
    shares = [sides * spent(n / PLAN.max, ALPHA / sides) for n in PLAN.looks]
    wanted = np.diff([0.0, *shares])
    got = np.bincount(stop, minlength=len(PLAN.looks) + 1)[:-1] / PATHS
    mcse = np.sqrt(wanted * (1 - wanted) / PATHS)
    assert np.all(np.abs(got - wanted) <= 3 * mcse + 1e-5), (got, wanted)
    assert abs(got.sum() - ALPHA) <= 3 * math.sqrt(ALPHA * (1 - ALPHA) / PATHS)


@pytest.mark.parametrize(("plan", "sides"), [(PLAN, 1), (PLAN, 2), (SeedPlan(2, 4, 1), 2)])
def test_the_t_tests_reject_a_true_null_alpha_of_the_time(plan: SeedPlan, sides: int) -> None:
    b = boundaries(plan, ALPHA, sides, False)
    t = _t_paths(plan, 0.0, seed=10 + sides)
    rate = np.mean(((np.abs(t) if sides == 2 else t) >= _t_bounds(b)).any(axis=1))
    mcse = math.sqrt(ALPHA * (1 - ALPHA) / PATHS)
    assert abs(rate - ALPHA) <= 3 * math.hypot(mcse, CALIBRATION), rate
    nominal = np.array(
        [
            -special.stdtrit(n - 1, special.ndtr(-c))
            for n, c in zip(plan.looks, b.z_upper, strict=True)
        ]
    )
    excess = np.mean(((np.abs(t) if sides == 2 else t) >= nominal).any(axis=1))
    assert excess > ALPHA + 3 * mcse  # what the calibration corrects: z levels on t run above


def test_each_look_tests_at_one_scale_of_its_z_boundarys_nominal_level() -> None:
    b = boundaries(PLAN, ALPHA, 1, True)
    assert 0.8 < b.scale < 1 and b.calibrated
    for k in range(len(PLAN.looks)):
        level = b.scale * special.ndtr(-b.z_upper[k])
        for df in (1, 2, 9, 10_000):
            assert special.stdtr(df, -b.t_upper(k, df)) == pytest.approx(level, rel=1e-8)
        assert b.t_upper(k, 100_000) == pytest.approx(b.upper[k], abs=1e-3)
        assert special.stdtr(2, b.t_lower(k, 2)) == pytest.approx(special.ndtr(b.lower[k]))
    far = boundaries(SeedPlan(2, 1000, 499), ALPHA, 2, False)  # a first look at t = 0.002
    assert math.isinf(far.upper[0]) and math.isinf(far.t_upper(0, 1))  # cannot reject there


def test_a_plan_of_very_many_looks_keeps_the_z_boundaries_at_their_nominal_level() -> None:
    many = boundaries(SeedPlan(2, 250, 1), ALPHA, 2, False)  # 249 looks
    assert not many.calibrated and many.scale == 1.0 and many.upper == many.z_upper


def test_futility_spends_beta_against_the_alternative_the_plan_detects_with_80_percent() -> None:
    b = boundaries(PLAN, ALPHA, 1, True)
    assert b.lower[-1] == b.upper[-1]  # the bounds meet at the last look
    assert b.upper == boundaries(PLAN, ALPHA, 1, False).upper  # non-binding: efficacy ignores it
    assert all(f < c for f, c in zip(b.lower[:-1], b.upper[:-1], strict=True))
    t = _t_paths(PLAN, b.drift / math.sqrt(PLAN.max), seed=3)  # E[Z at max] = drift
    efficacy = _first(t >= _t_bounds(b))
    futility = _first(t <= _t_bounds(b, upper=False))  # the last look: "max", not futile
    power = np.mean(efficacy <= futility)  # crossed the efficacy bound first
    # solved on 100,000 studies (50,000 and their mirror images) and checked on as many more
    se = math.sqrt(BETA * (1 - BETA) / PATHS + BETA * (1 - BETA) / 100_000)
    assert abs(power - (1 - BETA)) <= 3 * se, power


def test_two_sided_futility_is_an_inner_wedge_that_meets_the_last_boundary() -> None:
    b = claim_boundaries(PLAN, ALPHA, "different")
    assert b.sides == 2 and b.lower[-1] == b.upper[-1]
    assert all(0 <= f < c for f, c in zip(b.lower[:-1], b.upper[:-1], strict=True))
    t = np.abs(_t_paths(PLAN, b.drift / math.sqrt(PLAN.max), seed=4))
    futility = _first(t <= _t_bounds(b, upper=False))  # the last look: "max", not futile
    power = np.mean(_first(t >= _t_bounds(b)) <= futility)
    se = math.sqrt(BETA * (1 - BETA) / PATHS + BETA * (1 - BETA) / 100_000)
    assert abs(power - (1 - BETA)) <= 3 * se, power


def test_boundaries_are_computed_once_per_plan_level_and_test() -> None:
    assert boundaries(PLAN, 0.0125, 1, True) is boundaries(PLAN, 0.0125, 1, True)
    assert claim_boundaries(PLAN, 0.0125, "superior") is boundaries(PLAN, 0.0125, 1, True)


def test_the_calibration_gives_the_same_boundaries_every_time() -> None:
    # a study's rounds and its report, in other processes, must agree: a fixed seed
    kept = boundaries(PLAN, 0.0125, 1, True)
    _boundaries._kept.cache_clear()  # the simulated studies too, drawn afresh
    assert boundaries.__wrapped__(PLAN, 0.0125, 1, True) == kept


def test_a_look_waits_for_every_seed_it_needs_and_says_why_it_stopped() -> None:
    d = {0: 1.0, 1: 1.1, 2: 0.9, 3: 1.0}
    waiting = decide(d, 4, PLAN, ALPHA, None, "maximize")  # look 1 (3 seeds) not enough
    assert waiting.status == "undecided" and waiting.reason == "waiting for 5 seeds"
    assert waiting.waiting_for == 5 and waiting.diff == pytest.approx(1.0)  # look 1's
    first = decide(d, 2, PLAN, ALPHA, None, "maximize")
    assert first.reason == "waiting for 3 seeds" and math.isnan(first.ci_low)
    constant = decide({i: 1.0 for i in range(3)}, 3, PLAN, ALPHA, None, "minimize")
    assert constant.status == "worse" and constant.n == 3  # a constant shift up, when lower wins
    assert "paired t-test rejected at n = 3" in constant.reason
    assert constant.ci_low == constant.ci_high == 1.0
    flat = decide({i: 0.0 for i in range(10)}, 10, PLAN, ALPHA, None, "maximize")
    assert flat.status == "max" and flat.n == 10
    assert flat.reason == "undecided at the largest sample, n = 10"


def test_the_repeated_ci_is_the_stopping_looks_boundary_around_the_mean() -> None:
    d = dict(enumerate([2.0, 2.5, 1.5, 2.2, 1.8, 2.1, 1.9]))
    decision = decide(d, 7, PLAN, ALPHA, None, "maximize")
    values = np.array(list(d.values())[:5])
    se = values.std(ddof=1) / math.sqrt(5)
    t = boundaries(PLAN, ALPHA, 2, False).t_upper(1, 4)
    assert decision.status == "better" and decision.n == 5  # look 1 (3 seeds) too early
    assert decision.diff == pytest.approx(values.mean())
    assert decision.ci_low == pytest.approx(values.mean() - t * se)
    assert decision.ci_high == pytest.approx(values.mean() + t * se)
    assert decision.ci_level == pytest.approx(0.95) and decision.ci_low > 0
    assert "biased away from 0" in decision.caveat


def test_equivalence_stops_with_its_interval_inside_the_effect() -> None:
    rng = np.random.default_rng(0)
    d = dict(enumerate(rng.normal(0.0, 0.05, 10)))
    decision = decide(d, 10, PLAN, ALPHA, 0.5, "maximize", unit=100.0, points=" points")
    assert decision.status == "equivalent" and decision.n < 10
    assert decision.reason.startswith("no difference of 50 points or more: equivalence test")
    assert -0.5 < decision.ci_low < decision.ci_high < 0.5
    assert decision.ci_level == pytest.approx(0.90)  # TOST's 1 − 2α interval


def _claim(test: str, margin: float = 0.0) -> Claim:
    return Claim(0, "a", "b", test, margin, 1.0, "")  # type: ignore[arg-type]


def _noisy(mean: float, n: int = 10, sd: float = 0.1) -> dict[int, float]:
    return dict(enumerate(np.random.default_rng(1).normal(mean, sd, n)))


@pytest.mark.parametrize(
    ("test", "margin", "mean", "goal", "status", "n"),
    [
        ("superior", 1.0, 3.0, "maximize", "supported", 3),
        ("superior", 1.0, 3.0, "minimize", "not supported", 3),  # a − b = +3 is worse
        ("superior", 1.0, -3.0, "minimize", "supported", 3),
        ("noninferior", 1.0, -0.5, "maximize", "supported", 5),  # 0.5 worse, inside 1
        ("noninferior", 1.0, -3.0, "maximize", "not supported", 3),
        ("equivalent", 1.0, 0.0, "maximize", "supported", 3),
        ("equivalent", 1.0, 2.0, "minimize", "not supported", 3),
        ("different", 0.0, -1.0, "maximize", "supported", 5),  # |z| ≥ 3.93 first: t_2 > 40
        ("different", 0.0, 0.0, "maximize", "not supported", 5),
    ],
)
def test_each_claim_kind_stops_on_its_own_test(
    test: str, margin: float, mean: float, goal: str, status: str, n: int
) -> None:
    decision = decide_claim(_noisy(mean), 10, PLAN, ALPHA, _claim(test, margin), goal)
    assert (decision.status, decision.n) == (status, n), decision.reason
    assert decision.ci_low <= decision.diff <= decision.ci_high
    assert decision.diff == pytest.approx(mean, abs=0.2)  # a − b, not flipped for the goal
    one_sided = test != "different"
    assert decision.ci_level == pytest.approx(0.90 if one_sided else 0.95)


def test_a_claims_reason_names_its_test_boundary_and_direction() -> None:
    worse = decide_claim(_noisy(-1.0), 10, PLAN, ALPHA, _claim("different"), "maximize")
    assert worse.reason.startswith("supported (a worse): two-sided paired t-test rejected at n = 5")
    assert "for α = 0.05 two-sided" in worse.reason
    futile = decide_claim(_noisy(-3.0), 10, PLAN, ALPHA, _claim("superior"), "maximize")
    assert futile.reason.startswith("not supported: futility bound at n = 3 (t = ")


def test_a_claim_not_supported_at_the_largest_sample_is_max() -> None:
    one_look = SeedPlan(5, 5, 1)  # a single look: no futility stop before it
    weak = {0: 0.1, 1: -0.2, 2: 0.3, 3: 0.0, 4: -0.1}
    decision = decide_claim(weak, 5, one_look, ALPHA, _claim("superior"), "maximize")
    assert decision.status == "max" and decision.n == 5
    assert decision.reason.startswith("not supported at the largest sample, n = 5")
    assert "not adjusted" in decision.caveat
    failed = decide_claim({}, 5, one_look, ALPHA, _claim("superior"), "maximize")
    assert failed.status == "max" and "fewer than 2 paired differences" in failed.reason
    assert math.isnan(failed.ci_low)


def test_an_undecided_claim_carries_its_last_looks_interval() -> None:
    d = {0: 0.2, 1: -0.1, 2: 0.3, 3: 0.1}
    decision = decide_claim(d, 4, PLAN, ALPHA, _claim("superior"), "maximize")
    assert decision.status == "undecided" and decision.waiting_for == 5
    assert decision.ci_low < decision.diff < decision.ci_high
