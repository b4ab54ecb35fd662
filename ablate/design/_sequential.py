"""The stopping rule of adaptive seeds: a group-sequential paired t-test with alpha spending.

A comparison (a cell against its reference, paired by seed) is looked at after `start` seeds,
then every `step` seeds up to `max`. Each look spends part of the comparison's error budget α
by the O'Brien–Fleming-type spending function of Lan & DeMets (1983),

    α(t) = 2 − 2 Φ(z_{1−α/2} / √t),    t = n / max (the share of the largest sample),

so early looks, with few seeds, need overwhelming evidence and the last look keeps most of α.
Look k tests at the increment α_k = α(t_k) − α(t_{k−1}), and at the last look whatever is left
(α − α(t_{k−1})). Since Σ α_k = α, the union bound keeps the chance of any false claim over all
looks at most α whatever the correlation between looks: no joint distribution is needed, at the
price of some power against the exact group-sequential boundaries. Each look makes two tests at
its α_k:

- a difference: the two-sided paired t-test, p < α_k  → "better" or "worse";
- no difference that matters (with `effect`, the smallest difference that matters): both
  one-sided tests of the equivalence test (TOST, Schuirmann 1987) against ±effect reject at
  α_k, i.e. the (1 − 2α_k) interval lies inside (−effect, +effect).

Either error (a difference claimed where there is none, "no difference that matters" claimed
where the true difference is at least `effect`) stays at most α under this optional stopping;
tests/design/test_sequential.py checks both on simulated studies. With m comparisons in one
study each gets α/m (Bonferroni), so the study's family-wise error stays at most α.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeedPlan:
    start: int
    max: int
    step: int

    @property
    def looks(self) -> list[int]:
        """The seed counts at which comparisons are looked at: start, start+step, …, max."""
        looks = list(range(self.start, self.max, self.step))
        return [*looks, self.max]


def spent(t: float, alpha: float) -> float:
    """Lan–DeMets O'Brien–Fleming-type α spent by information fraction t ∈ (0, 1]."""
    from scipy import stats  # designs are built by `validate`: scipy only when a test runs

    if t <= 0:
        return 0.0
    z = stats.norm.ppf(1 - alpha / 2)
    return float(min(alpha, 2 - 2 * stats.norm.cdf(z / math.sqrt(min(t, 1.0)))))


@functools.lru_cache(maxsize=64)
def look_levels(plan: SeedPlan, alpha: float) -> tuple[float, ...]:
    """The level each look tests at; they sum to alpha."""
    cumulative = [spent(n / plan.max, alpha) for n in plan.looks]
    cumulative[-1] = alpha  # the last look keeps whatever is left
    return tuple(b - a for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True))


@dataclass(frozen=True)
class Decision:
    status: str  # "better", "worse", "equivalent", "undecided", "max"
    n: int  # the seeds the comparison used (at its last look)
    reason: str
    waiting_for: int = 0  # undecided: the seeds its next look needs


def _t_parts(d: np.ndarray) -> tuple[float, float, int]:
    n = len(d)
    mean = float(np.mean(d))
    se = float(np.std(d, ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return mean, se, n - 1


def look(d: np.ndarray, level: float, effect: float | None) -> str | None:
    """One look's decision from the paired differences d (cell − reference, raw units):
    "up"/"down" (a difference), "equivalent", or None."""
    from scipy import special

    mean, se, df = _t_parts(d)
    if df < 1:
        return None
    if se == 0:  # identical differences: a constant shift is a difference, zero is none
        if mean != 0:
            return "up" if mean > 0 else "down"
        return "equivalent" if effect else None
    t = mean / se
    # special.stdtr(df, x) is Student's t CDF: scipy.stats.t without its per-call overhead
    if 2 * special.stdtr(df, -abs(t)) < level:
        return "up" if t > 0 else "down"
    if effect:
        lower = special.stdtr(df, -(mean + effect) / se)  # H0: diff ≤ −effect
        upper = special.stdtr(df, (mean - effect) / se)  # H0: diff ≥ +effect
        if max(lower, upper) < level:
            return "equivalent"
    return None


def decide(
    diffs: Mapping[int, float],
    settled: int,
    plan: SeedPlan,
    alpha: float,
    effect: float | None,
    goal: str,
    unit: float = 1.0,
    points: str = "",
) -> Decision:
    """Walk the looks and say where the comparison stopped and why, or that it needs the next
    look's seeds. `diffs` are the paired differences (cell − reference, raw units) by seed
    index 0, 1, …; `settled` how many leading seed indices have both trials ended (a pair
    whose tries all failed is settled without a difference). `unit` and `points` only format
    the reason (IoU ×100 "points")."""
    levels = look_levels(plan, alpha)
    for n, level in zip(plan.looks, levels, strict=True):
        if settled < n:
            return Decision("undecided", settled, f"waiting for {n} seeds", waiting_for=n)
        d = np.array([diffs[i] for i in sorted(diffs) if i < n], dtype=float)
        outcome = look(d, level, effect)
        at = f"at n = {n} (level {level:.2g} of α = {alpha:.2g} spent at this look)"
        if outcome in ("up", "down"):
            improved = (outcome == "up") == (goal == "maximize")
            status = "better" if improved else "worse"
            return Decision(status, n, f"{status}: paired t-test rejected {at}")
        if outcome == "equivalent":
            assert effect is not None
            shown = f"{effect * unit:g}{points}"
            return Decision(
                "equivalent", n, f"no difference of {shown} or more: equivalence test {at}"
            )
    return Decision("max", plan.max, f"undecided at the largest sample, n = {plan.max}")
