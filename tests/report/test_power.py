"""Minimal detectable effect and seeds needed, checked against statsmodels' power of the t-test."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.power import TTestPower

from ablate.report._power import mde, power, seeds_needed

REFERENCE = TTestPower()  # one-sample (paired) t-test power, two-sided


@pytest.mark.parametrize("n", [2, 3, 5, 10, 30])
# (statsmodels reads the lower tail through a scipy cdf that returns NaN at some small alphas)
@pytest.mark.parametrize("alpha", [0.05, 0.05 / 3, 0.05 / 4])
def test_mde_has_the_target_power_by_statsmodels(n: int, alpha: float):
    sd = 0.013
    detectable = mde(sd, n, alpha)
    # statsmodels' own solver stops at d = 10; its power function does not
    assert REFERENCE.power(detectable / sd, n, alpha) == pytest.approx(0.8, abs=1e-7)
    assert power(detectable, sd, n, alpha) == pytest.approx(0.8, abs=1e-9)


def test_mde_matches_the_solved_effect_size():
    d = REFERENCE.solve_power(effect_size=None, nobs=10, alpha=0.05, power=0.8)
    assert mde(2.0, 10, 0.05) == pytest.approx(2.0 * d, rel=1e-6)


def test_mde_shrinks_with_seeds_and_grows_with_correction():
    values = [mde(1.0, n, 0.05) for n in (3, 5, 10, 20)]
    assert values == sorted(values, reverse=True)
    assert mde(1.0, 5, 0.05 / 4) > mde(1.0, 5, 0.05)


def test_mde_edge_cases():
    assert math.isnan(mde(1.0, 1, 0.05)) and math.isnan(mde(math.nan, 5, 0.05))
    assert mde(0.0, 5, 0.05) == 0.0


@pytest.mark.parametrize(("effect", "sd"), [(1.0, 1.5), (0.5, 0.4), (2.0, 0.5)])
def test_seeds_needed_is_the_first_n_reaching_the_power(effect: float, sd: float):
    n = int(seeds_needed(effect, sd, 0.05))
    assert REFERENCE.power(effect / sd, n, 0.05) >= 0.8
    assert n == 2 or REFERENCE.power(effect / sd, n - 1, 0.05) < 0.8


def test_seeds_needed_edge_cases():
    assert seeds_needed(1.0, 0.0, 0.05) == 2
    assert math.isnan(seeds_needed(1.0, math.nan, 0.05))
    assert seeds_needed(1e-6, 10.0, 0.05) == math.inf
