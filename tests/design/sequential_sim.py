"""Simulated studies for the sequential tests' error rates: paired differences ~ N(δ, 1),
each study's seeds arriving look by look, vectorised over studies with numpy. The data are
drawn afresh here (every difference, from the caller's seed), independently of the
simulated studies `ablate.design._boundaries` calibrates its levels on.

Four rules (`RULES`) decide each simulated study: "fixed", the paired t-test at `max`
seeds; "union", the union-bound rule adaptive seeds used first (each look tests at its
increment of α(t), no futility); "nominal", the rule of commit 1b18c15 (exact z boundaries,
each at its nominal level on the t scale, with a futility bound solved on the z scale);
"calibrated", the rule used now (`ablate.design._sequential.boundaries`: those levels scaled
to hold α for t, futility solved on the t scale). tests/design/test_error_rates.py asserts on
them and benchmarks/sequential_error_rates.py prints them; `decide` and `decide_claim` are
checked against `simulate` study by study in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import special, stats

from ablate.design._boundaries import _z_futility_of
from ablate.design._sequential import Boundaries, SeedPlan, boundaries, claim_boundaries, spent

RULES = ("fixed", "union", "nominal", "calibrated")  # see the module's docstring
SUPPORTED, FUTILE, BETTER, WORSE, EQUIVALENT, NONE = "supported", "futile", "+", "-", "=", ""


@dataclass(frozen=True)
class Case:
    """One row: a test (a claim kind, or "cells" for a comparison without claims, which
    stops "better"/"worse" or, with `margin` as metric.effect, "equivalent"), the true
    difference δ in sd units, and the outcomes counted (the error or the power)."""

    label: str
    test: str  # superior, noninferior, equivalent, different, cells
    delta: float
    margin: float
    counted: tuple[str, ...]
    null: bool  # True: the counted outcome is an error, kept at most α
    obeyed: bool = True  # False: the studies ignore futility stops (non-binding: still ≤ α)


PLAN = SeedPlan(start=3, max=10, step=2)  # the README's example: looks at 3, 5, 7, 9, 10
ALPHA = 0.05
CLAIMS = (
    Case("superior (margin 0): δ = 0, the null", "superior", 0.0, 0.0, (SUPPORTED,), True),
    Case("superior (margin 0): δ = 1 sd", "superior", 1.0, 0.0, (SUPPORTED,), False),
    Case(
        "noninferior (margin 0.5 sd): δ = −0.5, the null",
        "noninferior",
        -0.5,
        0.5,
        (SUPPORTED,),
        True,
    ),
    Case("noninferior (margin 0.5 sd): δ = +0.5", "noninferior", 0.5, 0.5, (SUPPORTED,), False),
    Case("equivalent (margin 1 sd): δ = +1, the null", "equivalent", 1.0, 1.0, (SUPPORTED,), True),
    Case("equivalent (margin 1 sd): δ = −1, the null", "equivalent", -1.0, 1.0, (SUPPORTED,), True),
    Case("equivalent (margin 1 sd): δ = 0", "equivalent", 0.0, 1.0, (SUPPORTED,), False),
    Case("different: δ = 0, the null", "different", 0.0, 0.0, (SUPPORTED,), True),
    Case("different: δ = 1 sd", "different", 1.0, 0.0, (SUPPORTED,), False),
)
IGNORED = tuple(  # the nulls again, every futility stop ignored: non-binding
    replace(c, label=c.label.replace("the null", "futility ignored"), obeyed=False)
    for c in CLAIMS
    if c.null and c.delta >= 0
)
SMALL = (  # plans from tiny to larger, for the null rates with every futility stop ignored
    SeedPlan(2, 4, 1),
    SeedPlan(2, 6, 2),
    SeedPlan(3, 6, 1),
    SeedPlan(3, 10, 1),
    SeedPlan(3, 10, 2),
    SeedPlan(2, 20, 2),
    SeedPlan(5, 20, 5),
)
CELLS = (
    Case("no effect set: δ = 0, better or worse", "cells", 0.0, 0.0, (BETTER, WORSE), True),
    Case("no effect set: δ = 1 sd, better", "cells", 1.0, 0.0, (BETTER,), False),
    Case("effect 1 sd: δ = 1 sd, 'equivalent'", "cells", 1.0, 1.0, (EQUIVALENT,), True),
    Case("effect 1 sd: δ = 0, 'equivalent'", "cells", 0.0, 1.0, (EQUIVALENT,), False),
)


def union_levels(plan: SeedPlan, alpha: float) -> tuple[float, ...]:
    """The union-bound rule: look k tests at α(t_k) − α(t_{k−1}) (O'Brien–Fleming-type,
    α(t) = 2 − 2Φ(z_{1−α/2}/√t)), the last look at what is left; they sum to α."""
    cumulative = [spent(n / plan.max, alpha) for n in plan.looks]
    cumulative[-1] = alpha
    return tuple(b - a for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True))


def _stats(d: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of each study's first n differences, (S,) each."""
    head = d[:, :n]
    return head.mean(axis=1), head.std(axis=1, ddof=1) / math.sqrt(n)


def _quantile(level: float, df: int) -> float:
    """The one-sided t boundary at a nominal level (inf at level 0)."""
    return math.inf if level <= 0 else float(-special.stdtrit(df, level))


def _look(
    test: str, mean: np.ndarray, se: np.ndarray, margin: float, upper: float, lower: float
) -> np.ndarray:
    """Each study's outcome at one look (S,), given the look's t boundaries: `upper` the
    efficacy one (one-sided, or |t| for two-sided tests), `lower` futility (−inf: none)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.full(mean.shape, NONE, dtype=object)
        if test == "cells":
            t = mean / se
            out[np.abs(t) >= upper] = np.where(t[np.abs(t) >= upper] > 0, BETTER, WORSE)
            if margin:
                tost = np.minimum((mean + margin) / se, (margin - mean) / se)
                out[(out == NONE) & (tost >= lower)] = EQUIVALENT
            return out
        stat = {
            "superior": (mean - margin) / se,
            "noninferior": (mean + margin) / se,
            "equivalent": np.minimum((mean + margin) / se, (margin - mean) / se),
            "different": np.abs(mean / se),
        }[test]
    out[stat <= lower] = FUTILE
    out[stat >= upper] = SUPPORTED
    return out


def _thresholds(
    rule: str, case: Case, plan: SeedPlan, alpha: float
) -> list[tuple[int, float, float]]:
    """(n, upper, lower) t boundaries at each look the rule makes. For "cells", `lower` is
    the equivalence (TOST) boundary instead of a futility one."""
    looks = plan.looks
    two = case.test in ("cells", "different")
    if rule == "fixed":
        df = plan.max - 1
        up = _quantile(alpha / (2 if two else 1), df)
        low = _quantile(alpha, df) if case.test == "cells" and case.margin else -math.inf
        return [(plan.max, up, low)]
    if rule == "union":
        out = []
        for n, level in zip(looks, union_levels(plan, alpha), strict=True):
            up = _quantile(level / (2 if two else 1), n - 1)
            low = _quantile(level, n - 1) if case.test == "cells" else -math.inf
            out.append((n, up, low))
        return out
    if case.test == "cells":
        diff, tost = boundaries(plan, alpha, 2, False), boundaries(plan, alpha, 1, False)
        if rule == "nominal":
            diff, tost = _nominal(diff), _nominal(tost)
        return [(n, diff.t_upper(k, n - 1), tost.t_upper(k, n - 1)) for k, n in enumerate(looks)]
    b = claim_boundaries(plan, alpha, case.test)
    if rule == "nominal":
        b = _nominal(b)
    last = len(looks) - 1  # the last look has no futility stop: not crossing is "max"
    return [
        (n, b.t_upper(k, n - 1), b.t_lower(k, n - 1) if case.obeyed and k < last else -math.inf)
        for k, n in enumerate(looks)
    ]


def _nominal(b: Boundaries) -> Boundaries:
    """1b18c15's boundaries: the exact z boundaries at their nominal levels, and futility
    spent on the z scale against them."""
    if math.isnan(b.drift):
        return replace(b, upper=b.z_upper, scale=1.0)
    lower, drift = _z_futility_of(b)
    return replace(b, upper=b.z_upper, lower=lower, scale=1.0, drift=drift)


def data(case: Case, plan: SeedPlan, studies: int, seed: int) -> np.ndarray:
    """Each simulated study's paired differences by seed, (studies, max): N(δ, 1)."""
    return np.random.default_rng(seed).normal(case.delta, 1.0, size=(studies, plan.max))


@dataclass(frozen=True)
class Rates:
    rate: float  # the share of studies with a counted outcome
    mcse: float  # its Monte Carlo standard error, sqrt(p (1 − p) / N)
    seeds: float  # mean seeds a study used


def simulate(
    rule: str, case: Case, plan: SeedPlan, alpha: float, studies: int, seed: int
) -> tuple[Rates, np.ndarray, np.ndarray]:
    """The case's rate under a rule over `studies` simulated studies; also each study's
    outcome and seeds used (its data: `data(case, plan, studies, seed)`), for checking
    `decide` study by study."""
    d = data(case, plan, studies, seed)
    outcome = np.full(studies, NONE, dtype=object)
    used = np.full(studies, plan.max)
    going = np.ones(studies, dtype=bool)
    for n, upper, lower in _thresholds(rule, case, plan, alpha):
        mean, se = _stats(d, n)
        now = _look(case.test, mean, se, case.margin, upper, lower)
        stop = going & (now != NONE)
        outcome[stop], used[stop] = now[stop], n
        going &= ~stop
    p = float(np.isin(outcome, case.counted).mean())
    return Rates(p, math.sqrt(p * (1 - p) / studies), float(used.mean())), outcome, used


def fixed_power(case: Case, plan: SeedPlan, alpha: float) -> float:
    """The fixed-n paired t-test's exact power for a one- or two-sided difference (a check
    on the simulation)."""
    null = {"superior": case.margin, "noninferior": -case.margin}.get(case.test, 0.0)
    df, ncp = plan.max - 1, (case.delta - null) * math.sqrt(plan.max)
    two = case.test in ("cells", "different")
    crit = stats.t.isf(alpha / (2 if two else 1), df)
    return float(stats.nct.sf(crit, df, ncp) + (stats.nct.cdf(-crit, df, ncp) if two else 0))
