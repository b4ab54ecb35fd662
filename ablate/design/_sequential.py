"""The stopping rule of adaptive seeds: group-sequential paired t-tests, a non-binding
futility bound for declared claims, and repeated confidence intervals.

A test (a cell against its reference, or a declared claim's two cells, paired by seed) is
looked at after `start` seeds, then every `step` seeds up to `max`. Each look's paired
t-test is compared with that look's boundary (`_boundaries`): O'Brien–Fleming-type
Lan–DeMets boundaries, exact for z statistics, their nominal levels scaled by one factor
calibrated on simulated null studies so that the t-tests, few seeds and all, reject a true
null with probability α (to the calibration's Monte Carlo error; plans of more than 200
looks keep the nominal levels). `decide` and `decide_claim` walk the looks and say where a
test stopped and why.

**Futility** (declared claims only) is non-binding: the efficacy boundaries ignore it, so
the type-I error holds whether or not a futility stop is obeyed. It spends β = 0.2 against
the difference `max` seeds detect with 80 % power. A one-sided claim stops "not supported"
when its t ≤ f_k, a two-sided one when |t| ≤ f_k; at the last look the bounds meet, and a
claim that does not cross is "max" (not supported at the largest sample).

**Repeated confidence intervals** (Jennison & Turnbull 2000, ch. 9): the interval at look k
is mean ± b_k · se with b_k that look's efficacy boundary on the t scale, so the intervals
of all looks hold together with coverage 1 − α (two-sided tests) or 1 − 2α (one-sided tests
and TOST: the interval whose ends are the one-sided tests): a look's interval misses the
true difference exactly when its test of that difference would reject, and the calibration
holds for every true difference (the t statistics about it are pivotal). The mean
difference at the stopping look is reported unadjusted; stopping at a boundary biases it
(an early stop overstates it), which `Decision.caveat` says.

With m comparisons (or m declared claims) each test gets α/m (Bonferroni). Holm's
step-down is not used: it hands a rejected hypothesis's α to the others, which for tests
that stop at different looks needs a group-sequential recycling scheme (Maurer & Bretz
2013), not a step-down over p-values that stopped sequential tests do not have.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ablate.design._boundaries import BETA, Boundaries, SeedPlan, boundaries, spent

if TYPE_CHECKING:
    from ablate.design._claims import Claim

__all__ = [
    "BETA",
    "Boundaries",
    "Decision",
    "SeedPlan",
    "boundaries",
    "claim_boundaries",
    "decide",
    "decide_claim",
    "spent",
]

_NAN = math.nan


# -- decisions


@dataclass(frozen=True)
class Decision:
    """Where one sequential test stopped and why. Cell comparisons: "better", "worse",
    "equivalent", "undecided" (waiting for seeds), "max" (undecided at the largest sample);
    declared claims: "supported", "not supported" (stopped at the futility bound),
    "undecided", "max" (not supported by the largest sample). `diff` (the mean paired
    difference a − b) and the repeated CI `ci_low`–`ci_high` (simultaneous coverage
    `ci_level`) are in the metric's stored units, not flipped for `goal`, at the last look
    taken (NaN before the first); `caveat` says what the unadjusted `diff` does not
    account for."""

    status: str
    n: int  # the seeds the test used (at its last look)
    reason: str
    waiting_for: int = 0  # undecided: the seeds its next look needs
    diff: float = _NAN
    ci_low: float = _NAN
    ci_high: float = _NAN
    ci_level: float = _NAN
    caveat: str = ""


@dataclass(frozen=True)
class _Look:
    """One look's paired differences, summarised."""

    k: int  # the look's index in the plan
    n: int  # its planned seed count
    mean: float
    se: float  # 0 when the differences are identical
    df: int  # pairs − 1

    def t(self, x: float) -> float:
        """x / se, read as a t statistic: ±inf when se = 0 (a constant shift), NaN for 0/0."""
        if self.se > 0:
            return x / self.se
        return math.copysign(math.inf, x) if x != 0 else _NAN

    def at(self, status: str, reason: str, bounds: Boundaries, plan: SeedPlan) -> Decision:
        """A Decision here, with the repeated CI from this look's efficacy boundary."""
        q = bounds.t_upper(self.k, self.df)
        half = math.inf if math.isinf(q) else q * self.se
        level = 1 - bounds.alpha if bounds.sides == 2 else 1 - 2 * bounds.alpha
        if self.n < plan.max:
            caveat = (
                f"stopped at n = {self.n} of {plan.max}: stopping at a boundary overstates "
                "the difference (the mean is biased away from 0); the repeated CI keeps its "
                "coverage"
            )
        else:
            caveat = (
                f"reached n = {plan.max}: the mean is not adjusted for the looks before it "
                "(given no earlier stop, biased towards 0); the repeated CI keeps its coverage"
            )
        return Decision(
            status, self.n, reason, 0, self.mean, self.mean - half, self.mean + half, level, caveat
        )


def _looks(diffs: Mapping[int, float], settled: int, plan: SeedPlan) -> Iterator[_Look | int]:
    """Each look's statistics in turn, or the seed count to wait for where a look's seeds are
    not all settled (then nothing more). A look with fewer than two differences is skipped."""
    for k, n in enumerate(plan.looks):
        if settled < n:
            yield n
            return
        d = np.array([diffs[i] for i in sorted(diffs) if i < n], dtype=float)
        if len(d) >= 2:
            se = float(np.std(d, ddof=1)) / math.sqrt(len(d))
            yield _Look(k, n, float(np.mean(d)), se, len(d) - 1)


def _waiting(settled: int, n: int, last: Decision | None) -> Decision:
    """Undecided until n seeds are settled; the interval of the last look taken, if any."""
    wait = Decision("undecided", settled, f"waiting for {n} seeds", waiting_for=n)
    if last is None:
        return wait
    return replace(
        wait, diff=last.diff, ci_low=last.ci_low, ci_high=last.ci_high, ci_level=last.ci_level
    )


def _shown(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else ("∞" if value > 0 else "−∞")


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
    """A cell against its reference: walk the looks and say where the comparison stopped and
    why, or that it needs the next look's seeds. Each look makes two tests:

    - a difference: the two-sided paired t-test at the look's boundary (α two-sided)
      → "better" or "worse";
    - with `effect` (the smallest difference that matters): both one-sided tests of the
      equivalence test (TOST, Schuirmann 1987) against ±effect cross the look's one-sided
      boundary (α one-sided) → "equivalent".

    No futility stop: without `effect` a comparison that finds nothing runs to `max`.
    `diffs` are the paired differences (cell − reference, raw units) by seed index 0, 1, …;
    `settled` how many leading seed indices have both trials ended (a pair whose tries all
    failed is settled without a difference). `unit` and `points` only format the reason
    (IoU ×100 "points"). The CI is the difference test's (1 − α), or TOST's (1 − 2α) for
    "equivalent"."""
    two = boundaries(plan, alpha, 2, False)
    one = boundaries(plan, alpha, 1, False) if effect else None
    last: Decision | None = None
    for look in _looks(diffs, settled, plan):
        if isinstance(look, int):
            return _waiting(settled, look, last)
        t, bound = look.t(look.mean), two.t_upper(look.k, look.df)
        if abs(t) >= bound:  # NaN (0 / 0) never crosses
            status = "better" if (t > 0) == (goal == "maximize") else "worse"
            why = (
                f"{status}: paired t-test rejected at n = {look.n} (|t| = {_shown(abs(t))} ≥ "
                f"{_shown(bound)}, this look's boundary for α = {alpha:.2g} two-sided)"
            )
            return look.at(status, why, two, plan)
        if one is not None and effect:
            bound = one.t_upper(look.k, look.df)
            tost = min(look.t(look.mean + effect), look.t(effect - look.mean))
            if tost >= bound:
                why = (
                    f"no difference of {effect * unit:g}{points} or more: equivalence test at "
                    f"n = {look.n} (both t ≥ {_shown(bound)}, this look's boundary for "
                    f"α = {alpha:.2g} one-sided)"
                )
                return look.at("equivalent", why, one, plan)
        last = look.at("max", "", two, plan)
    return _at_max(last, plan, f"undecided at the largest sample, n = {plan.max}")


def _at_max(last: Decision | None, plan: SeedPlan, reason: str) -> Decision:
    if last is None:  # no look had two differences
        return Decision("max", plan.max, f"{reason}: fewer than 2 paired differences")
    return replace(last, reason=reason)


def claim_boundaries(plan: SeedPlan, alpha: float, test: str) -> Boundaries:
    """The boundaries a declared claim's test uses: two-sided for `different`, one-sided
    (each of TOST's two tests, for `equivalent`) otherwise; all with futility."""
    return boundaries(plan, alpha, 2 if test == "different" else 1, True)


def _claim_t(test: str, look: _Look, delta: float, m: float) -> float:
    """The claim's t statistic (TOST: the smaller of its two; different: |t|)."""
    if test == "superior":
        return look.t(delta - m)
    if test == "noninferior":
        return look.t(delta + m)
    if test == "equivalent":
        return min(look.t(delta + m), look.t(m - delta))
    return abs(look.t(delta))


def decide_claim(
    diffs: Mapping[int, float],
    settled: int,
    plan: SeedPlan,
    alpha: float,
    claim: Claim,
    goal: str,
) -> Decision:
    """A declared claim at level alpha (its share of the family's): walk the looks of the
    paired differences a − b (stored units) and say where its test stopped and why.

    δ is a − b in the goal's favourable direction (flipped for `minimize`), m the claim's
    margin in stored units: superior tests H0: δ ≤ m and noninferior H0: δ ≤ −m (one-sided),
    equivalent H0: |δ| ≥ m by TOST (both one-sided tests must cross), different H0: δ = 0
    (two-sided). Crossing the efficacy boundary → "supported"; falling to the futility
    bound before the last look → "not supported"; neither by the last look → "max"."""
    bounds = claim_boundaries(plan, alpha, claim.test)
    sign = 1.0 if goal == "maximize" else -1.0
    m, test = claim.stored_margin, claim.test
    last: Decision | None = None
    for look in _looks(diffs, settled, plan):
        if isinstance(look, int):
            return _waiting(settled, look, last)
        delta = sign * look.mean
        stat = _claim_t(test, look, delta, m)
        upper, lower = bounds.t_upper(look.k, look.df), bounds.t_lower(look.k, look.df)
        shown = {"different": "|t| = ", "equivalent": "the smaller t = "}.get(test, "t = ")
        shown += _shown(stat)
        if stat >= upper:
            which = ""
            if test == "different":
                which = f" ({claim.a} {'better' if delta > 0 else 'worse'})"
            sided = "two" if bounds.sides == 2 else "one"
            why = (
                f"supported{which}: {claim.method} rejected at n = {look.n} ({shown}; "
                f"boundary {_shown(upper)} at this look for α = {alpha:.2g} {sided}-sided)"
            )
            return look.at("supported", why, bounds, plan)
        if look.n < plan.max and stat <= lower:
            why = (
                f"not supported: futility bound at n = {look.n} ({shown} ≤ {_shown(lower)}: "
                "the difference the plan is powered for has become unlikely)"
            )
            return look.at("not supported", why, bounds, plan)
        last = look.at("max", "", bounds, plan)
        if look.n == plan.max:
            why = (
                f"not supported at the largest sample, n = {plan.max}: {shown} short of the "
                f"boundary {_shown(upper)}"
            )
            return replace(last, reason=why)
    return _at_max(last, plan, f"not supported at the largest sample, n = {plan.max}")
