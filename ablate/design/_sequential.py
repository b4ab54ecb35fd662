"""The stopping rule of adaptive seeds: group-sequential paired t-tests with exact
Lan–DeMets boundaries, a non-binding futility bound and repeated confidence intervals.

A test (a cell against its reference, or a declared claim's two cells, paired by seed) is
looked at after `start` seeds, then every `step` seeds up to `max`: look k at information
fraction t_k = n_k / max. A one-sided test at level α spends it by the O'Brien–Fleming-type
function of Lan & DeMets (*Biometrika* 70, 1983),

    α(t) = 2 − 2 Φ(z_{1−α/2} / √t),

with boundaries c_1, …, c_K exact for the joint distribution of the looks' z statistics
(Z_k = B(t_k)/√t_k, B a Brownian motion with drift): P(no crossing before look k, Z_k ≥
c_k) = α(t_k) − α(t_{k−1}) under the null, by recursive numerical integration (Armitage,
McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19) with Simpson's rule on a grid. A
two-sided test at α crosses |Z_k| ≥ c_k and spends α/2 a tail by the same function, as
gsDesign and rpact do (five equal looks at α = 0.05: 4.88, 3.36, 2.68, 2.29, 2.03).

**t, not z.** The looks use paired t statistics on few seeds (2 or 3 at the first look),
so each z boundary is applied at its nominal level: look k rejects when its t-test's
p-value is below the z boundary's level (1 − Φ(c_k) one-sided), i.e. when t reaches the
t_{n−1} quantile of Φ(c_k) (Jennison & Turnbull, ch. 11). Each look alone is then exact;
the dependence between looks is the normal one, and with few seeds t statistics are less
tied from look to look than z, so the rule runs a little above α where no futility or
equivalence stop cuts studies short, more so the fewer the seeds.
benchmarks/sequential_error_rates.py measures it over plans.

**Futility** (declared claims only) is non-binding: the efficacy boundaries above ignore
it, so on the z scale the type-I error holds whether or not a futility stop is obeyed. Its
bounds f_1, …, f_K spend β = 0.2 by the same O'Brien–Fleming-type function under the
alternative the plan itself is powered for: the drift at which efficacy and futility bounds
together give 80 % power with f_K = c_K (how gsDesign solves a non-binding β-spending
design). That needs no guess of the seed spread: the alternative is the difference `max`
seeds detect with 80 % power. A one-sided claim stops "not supported" when Z_k ≤ f_k (its
t at the same nominal rule), a two-sided one when |Z_k| ≤ f_k; at the last look the bounds
meet, and a claim that does not cross is "max" (not supported at the largest sample).

**Repeated confidence intervals** (Jennison & Turnbull, ch. 9): the interval at look k is
mean ± b_k · se with b_k that look's efficacy boundary on the t scale, so the intervals of
all looks hold together with coverage 1 − α (two-sided tests) or 1 − 2α (one-sided tests
and TOST: the interval whose ends are the one-sided tests). The mean difference at the
stopping look is reported unadjusted; stopping at a boundary biases it (an early stop
overstates it), which `Decision.caveat` says.

With m comparisons (or m declared claims) each test gets α/m (Bonferroni). Holm's
step-down is not used: it hands a rejected hypothesis's α to the others, which for tests
that stop at different looks needs a group-sequential recycling scheme (Maurer & Bretz
2013), not a step-down over p-values that stopped sequential tests do not have.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ablate.design._claims import Claim

BETA = 0.2  # futility spends β = 0.2: the alternative is what the plan detects with 80 % power
_SPACING = 0.1  # the integration grid's spacing on the z scale, at most (boundaries to 1e-5)
_FINEST = 0.02  # … and at least: many tiny looks (step 1 up to a large max) cost N²·K
_REACH = 9.0  # each look's grid spans its statistic's mean ± 9 sd: the tails left are < 1e-18
_FAR = 38.0  # no boundary lies further out: P(Z ≥ 38) underflows to 0

_NAN = math.nan


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

    @property
    def fractions(self) -> tuple[float, ...]:
        """Each look's information fraction t = n / max."""
        return tuple(n / self.max for n in self.looks)


def spent(t: float, alpha: float) -> float:
    """Lan–DeMets O'Brien–Fleming-type α spent by information fraction t ∈ (0, 1]."""
    from scipy import special  # designs are built by `validate`: scipy only when a test runs

    if t <= 0:
        return 0.0
    if t >= 1:
        return alpha
    z = -special.ndtri(alpha / 2)
    return float(min(alpha, 2 * special.ndtr(-z / math.sqrt(t))))


# -- the joint distribution of the looks (Jennison & Turnbull ch. 19)


@dataclass(frozen=True)
class _Mass:
    """Where the studies still going at a look are: the sub-density of that look's Z on its
    continuation region, as grid points `z` and weights `w` (Simpson weight × density), so
    that ∫ g(z) density(z) dz over the region ≈ Σ w g(z)."""

    t: float
    z: np.ndarray  # (N,)
    w: np.ndarray  # (N,)


_ORIGIN = _Mass(0.0, np.zeros(1), np.ones(1))  # B(0) = 0: every study, before any look


def _kernel(mass: _Mass, t: float, drift: float) -> tuple[np.ndarray, float]:
    """B(t) given each grid point of the last look: its means (N,) and its sd."""
    return mass.z * math.sqrt(mass.t) + drift * (t - mass.t), math.sqrt(t - mass.t)


def _beyond(mass: _Mass, t: float, drift: float, c: float, upper: bool) -> float:
    """P(still going after the previous look, and Z_t ≥ c (upper) or Z_t ≤ c), from its grid."""
    from scipy import special

    if math.isinf(c):
        return float(np.sum(mass.w)) if (c > 0) != upper else 0.0
    loc, sd = _kernel(mass, t, drift)
    x = (c * math.sqrt(t) - loc) / sd
    return float(special.ndtr(-x if upper else x) @ mass.w)


def _advance(
    mass: _Mass, t: float, drift: float, region: list[tuple[float, float]], spacing: float
) -> _Mass:
    """The sub-density at look t of the studies that continue there (Z_t inside `region`, a
    union of intervals), on a Simpson grid of about `spacing`."""
    loc, sd = _kernel(mass, t, drift)
    mean = drift * math.sqrt(t)
    points, weights = [], []
    for lo, hi in region:
        lo, hi = max(lo, mean - _REACH), min(hi, mean + _REACH)
        if hi <= lo:
            continue
        n = 2 * math.ceil((hi - lo) / (2 * spacing)) + 1
        x = np.linspace(lo, hi, n)  # (n,)
        simpson = np.ones(n)
        simpson[1:-1:2], simpson[2:-1:2] = 4.0, 2.0
        simpson *= (hi - lo) / (n - 1) / 3
        density = _convolved(x * math.sqrt(t), loc, mass.w, sd) * math.sqrt(t)
        points.append(x)
        weights.append(simpson * density)
    if not points:
        return _Mass(t, np.zeros(1), np.zeros(1))
    return _Mass(t, np.concatenate(points), np.concatenate(weights))


def _convolved(at: np.ndarray, loc: np.ndarray, w: np.ndarray, sd: float) -> np.ndarray:
    """Σ_i w_i φ((at − loc_i) / sd) / sd at each point of `at` (n,), over the grid points
    (loc ascending) within ±9 sd of it only: with many small looks the kernel is narrow and
    a band of the (n, N) matrix is all that counts."""
    first = np.searchsorted(loc, at - _REACH * sd, "left")  # (n,)
    end = np.searchsorted(loc, at + _REACH * sd, "right")  # (n,)
    width = int(np.max(end - first)) if len(at) else 0
    if width == 0:
        return np.zeros(len(at))
    if 2 * width > len(loc):  # a wide kernel: the whole matrix costs less than gathering
        u = (at[:, None] - loc[None, :]) / sd  # (n, N)
        return np.exp(-0.5 * u * u) @ w / (sd * math.sqrt(2 * math.pi))
    index = first[:, None] + np.arange(width)[None, :]  # (n, width)
    inside = index < end[:, None]
    index = np.minimum(index, len(loc) - 1)
    u = (at[:, None] - loc[index]) / sd
    kernel = np.where(inside, np.exp(-0.5 * u * u), 0.0)  # (n, width)
    return np.einsum("ij,ij->i", kernel, w[index]) / (sd * math.sqrt(2 * math.pi))


def _spacings(fractions: tuple[float, ...]) -> list[float]:
    """The grid spacing at each look: fine enough to resolve the next step's kernel, whose
    sd on this look's z scale is √((t_{k+1} − t_k) / t_k)."""
    out = []
    for t, t_next in zip(fractions, [*fractions[1:], 2.0], strict=True):
        width = math.sqrt((t_next - t) / t)
        out.append(min(_SPACING, max(_FINEST, width / 3)))
    return out


def _solve(f: Callable[[float], float], lo: float, hi: float) -> float:
    from scipy import optimize

    return float(optimize.brentq(f, lo, hi, xtol=1e-9))


def _efficacy(fractions: tuple[float, ...], alpha: float, sides: int) -> tuple[float, ...]:
    """The exact boundaries c_k under the null (drift 0): one-sided, P(Z_k ≥ c_k first at
    look k) = α(t_k) − α(t_{k−1}); two-sided, each tail spends α/2 that way."""
    mass, used = _ORIGIN, 0.0
    out: list[float] = []
    for t, spacing in zip(fractions, _spacings(fractions), strict=True):
        target = sides * (spent(t, alpha / sides) - used)
        used = spent(t, alpha / sides)

        def excess(c: float, mass: _Mass = mass, t: float = t, target: float = target) -> float:
            """P(still going, crossing c here) beyond what this look spends."""
            up = _beyond(mass, t, 0.0, c, upper=True)
            both = up + _beyond(mass, t, 0.0, -c, upper=False) if sides == 2 else up
            return both - target

        if target <= 0 or excess(_FAR) >= 0:
            c = math.inf  # nothing to spend here (α(t) underflows): this look cannot reject
        else:
            c = _solve(excess, 0.0 if sides == 2 else -_REACH, _FAR)
        out.append(c)
        region = [(-c, c)] if sides == 2 else [(-math.inf, c)]
        mass = _advance(mass, t, 0.0, region, spacing)
    return tuple(out)


def _futility_for(
    fractions: tuple[float, ...], upper: tuple[float, ...], beta: float, sides: int, drift: float
) -> tuple[tuple[float, ...], float]:
    """The β-spending futility bounds under `drift` (the mean of Z at t = 1), and how much
    of β the last look leaves unspent when it stops at Z < c_K (0 for the right drift)."""
    mass, used = _ORIGIN, 0.0
    out: list[float] = []
    for k, (t, c, spacing) in enumerate(zip(fractions, upper, _spacings(fractions), strict=True)):
        target = spent(t, beta) - used
        used += target

        def excess(f: float, mass: _Mass = mass, t: float = t, target: float = target) -> float:
            """P(still going, Z_t ≤ f) (two-sided: |Z_t| ≤ f) beyond what this look spends."""
            below = _beyond(mass, t, drift, f, upper=False)
            inside = below - _beyond(mass, t, drift, -f, upper=False) if sides == 2 else below
            return inside - target

        cap = min(c, drift * math.sqrt(t) + _REACH)
        if k == len(fractions) - 1:
            return (*out, c), excess(cap)
        floor = 0.0 if sides == 2 else drift * math.sqrt(t) - _REACH
        if target <= 0 or excess(floor) >= 0:
            f = 0.0 if sides == 2 else -math.inf  # β(t) underflows: nothing to spend here
        elif excess(cap) <= 0:
            f = c  # the studies left would all be futile: the bounds meet
        else:
            f = _solve(excess, floor, cap)
        out.append(f)
        region = [(f, c)] if sides == 1 else [(-c, -f), (f, c)]
        mass = _advance(mass, t, drift, region, spacing)
    raise AssertionError("a plan has at least one look")


@dataclass(frozen=True)
class Boundaries:
    """One test's boundaries at a plan's looks, on the z scale. `upper`: efficacy (one-sided
    Z ≥ c, two-sided |Z| ≥ c); `lower`: the non-binding futility bound (one-sided Z ≤ f,
    two-sided |Z| ≤ f; −inf or 0 where a test has none); `drift`: the mean of Z at `max`
    seeds under the alternative futility is spent against (NaN without futility)."""

    plan: SeedPlan
    alpha: float
    sides: int
    upper: tuple[float, ...]
    lower: tuple[float, ...]
    drift: float = _NAN

    def t_upper(self, k: int, df: int) -> float:
        """Look k's efficacy boundary for a t statistic on df degrees of freedom."""
        return _t_at(self.upper[k], df)

    def t_lower(self, k: int, df: int) -> float:
        """Look k's futility boundary for a t statistic on df degrees of freedom."""
        return _t_at(self.lower[k], df)


def _t_at(z: float, df: int) -> float:
    """The t_df quantile at Φ(z): a z boundary at its nominal level (from the far tail, so
    boundaries of 8 and more keep their precision)."""
    from scipy import special

    return math.copysign(-float(special.stdtrit(df, special.ndtr(-abs(z)))), z)


@functools.lru_cache(maxsize=256)
def boundaries(plan: SeedPlan, alpha: float, sides: int, futility: bool) -> Boundaries:
    """The boundaries of a test at level alpha (one- or two-sided), with or without a
    non-binding futility bound; computed once per (plan, α, test)."""
    from scipy import special

    fractions = plan.fractions
    upper = _efficacy(fractions, alpha, sides)
    none = 0.0 if sides == 2 else -math.inf
    if not futility:
        return Boundaries(plan, alpha, sides, upper, (none,) * len(upper))
    # the drift solving f_K = c_K lies above the fixed-sample design's (z_{1−α} + z_{1−β}:
    # boundaries above the fixed one and futility stops both cost power; the lower tail of a
    # two-sided test may give a hair back) and well below 1.5×
    fixed = -special.ndtri(alpha / sides) - special.ndtri(BETA)

    def unspent(drift: float) -> float:
        return _futility_for(fractions, upper, BETA, sides, drift)[1]

    drift = _solve(unspent, 0.9 * fixed, 1.5 * fixed)
    lower = _futility_for(fractions, upper, BETA, sides, drift)[0]
    return Boundaries(plan, alpha, sides, upper, lower, drift)


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
