"""The boundaries of adaptive seeds' group-sequential paired t-tests: an O'Brien–Fleming-
type shape from exact Lan–DeMets boundaries for z statistics, its levels calibrated on
simulated null studies so that the t-tests hold α, and a non-binding futility bound solved
on the same studies.

A test is looked at after `start` seeds, then every `step` seeds up to `max`: look k at
information fraction t_k = n_k / max. A one-sided test at level α spends it by the
O'Brien–Fleming-type function of Lan & DeMets (*Biometrika* 70, 1983),

    α(t) = 2 − 2 Φ(z_{1−α/2} / √t).

**The shape** (`Boundaries.z_upper`): boundaries c_1, …, c_K exact for the looks' z
statistics (Z_k = B(t_k)/√t_k, B a Brownian motion): P(no crossing before look k, Z_k ≥
c_k) = α(t_k) − α(t_{k−1}) under the null, by recursive numerical integration (Armitage,
McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19) with Simpson's rule on a grid. A
two-sided test crosses |Z_k| ≥ c_k and spends α/2 a tail, as gsDesign and rpact do (five
equal looks at α = 0.05: 4.88, 3.36, 2.68, 2.29, 2.03).

**The t-tests, calibrated** (`Boundaries.upper`, `scale`). The looks test paired t
statistics on few seeds (2 or 3 at the first look). Each z boundary at its nominal level (a
look rejects when its p-value is below 1 − Φ(c_k) a tail) makes each look alone exact, but
t statistics are less tied from look to look than z, so that rule rejects a true null more
than α of the time, the more so the fewer the seeds. So every look's level is scaled by one
factor λ (a little below 1):

    look k rejects when its t-test's p-value ≤ λ (1 − Φ(c_k)) a tail,

with λ the value at which a null study is rejected with probability α (two-sided: in either
tail). That probability does not depend on σ: under the null the looks' t statistics
(mean / se of the first n_k i.i.d. normal differences) are jointly pivotal, so λ is solved
once per (plan, α, sides) on `SIMULATED_STUDIES` simulated studies with σ = 1 from a fixed seed
(one-sided: with each study's mirror image, −d, another null study). No search: a
simulated study is rejected from the smallest λ at which one of its looks' p-values falls
below λ (1 − Φ(c_k)), and λ is the order statistic at which α of them are rejected. The
share rejected is estimated with a control variate, the same studies' z tests against c_k
(σ known), which reject exactly α of them in expectation, with the regression coefficient
estimated on the studies. What Monte Carlo error is left in the α λ holds is at most that
of a share estimated on `SIMULATED_STUDIES` studies, √(α(1 − α)/N), less where t and z agree. One
common λ, rather than each look's level solved in turn so that it spends exactly its
increment on the t scale: with many close looks each increment is a small difference of
two simulated tail shares and their errors add up look by look, where one λ has the error
of one share. It keeps the O'Brien–Fleming shape, and the level of a single look is the
fixed-n test's.

A look's t boundary is the t quantile at its level, stored as the z value of that level:
at the plan's n_k − 1 degrees of freedom the calibrated one; with fewer pairs (a pair whose
tries all failed) the same level at fewer degrees of freedom, which was not simulated. The
pivot assumes normal differences. The fixed seed gives a plan the same boundaries in every
process (for one NumPy: its random streams may change between versions, moving λ within
its Monte Carlo error). A plan of more than `_MOST_LOOKS` looks is not calibrated (λ = 1,
`Boundaries.calibrated` false), bounding the time, which grows with studies × looks; with
that many looks `max` is large and the nominal rule's excess small. A plan where one look
alone can reject needs no calibration: its nominal level is exact (λ = 1).

**Futility** (declared claims only) is non-binding: the efficacy boundaries ignore it, so
the type-I error holds whether or not a futility stop is obeyed. It spends β = 0.2 by the
same O'Brien–Fleming-type function against the alternative the plan itself is powered for:
the effect θ (sd units) at which the calibrated efficacy bounds and the futility bounds
together give 80 % power with f_K = c_K (how gsDesign solves a non-binding β-spending
design, here for t: under an effect θ the t statistics (Z_k + θ√n_k)/s_k are pivotal too).
That needs no guess of the seed spread: the alternative is the difference `max` seeds
detect with 80 % power. Each f_k is the order statistic of the studies still going at which
look k spends its share of β, on the first `_CHUNK` studies and their mirror images: an
error there costs a little power or a few seeds, never α. `drift` is θ√max.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

BETA = 0.2  # futility spends β = 0.2: the alternative is what the plan detects with 80 % power
_SPACING = 0.1  # the integration grid's spacing on the z scale, at most (boundaries to 1e-5)
_FINEST = 0.02  # … and at least: many tiny looks (step 1 up to a large max) cost N²·K
_REACH = 9.0  # each look's grid spans its statistic's mean ± 9 sd: the tails left are < 1e-18
_FAR = 38.0  # no boundary lies further out: P(Z ≥ 38) underflows to 0

# null studies λ is solved on: its Monte Carlo error is √(α(1 − α)/N) at most
SIMULATED_STUDIES = 200_000
_CHUNK = 50_000  # … simulated this many at a time; futility is solved on the first chunk
_KEPT_LOOKS = 20  # chunks of plans with at most this many looks are kept (8 MB a chunk)
_MOST_LOOKS = 200  # a plan with more looks is not calibrated: the time grows with the looks
_SEED = 20_251_207  # the calibration's one seed: a plan always gets the same boundaries
_MOST_SCALE = 2.0  # λ is sought below this (the nominal-level rule needs λ < 1)

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


# -- the z scale: the joint distribution of the looks (Jennison & Turnbull ch. 19)


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


def _solve(f: Callable[[float], float], lo: float, hi: float, xtol: float = 1e-9) -> float:
    from scipy import optimize

    return float(optimize.brentq(f, lo, hi, xtol=xtol))


def _z_efficacy(fractions: tuple[float, ...], alpha: float, sides: int) -> tuple[float, ...]:
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


def _z_futility(
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


# -- the t scale: calibration on simulated studies (σ = 1: the t statistics are pivotal)


@dataclass(frozen=True)
class _Studies:
    """Simulated studies of i.i.d. N(0, 1) paired differences: at each look, the z statistic
    with σ known (sum / √n) and the sample sd of the first n_k differences."""

    n: np.ndarray  # (K,) each look's seed count
    z: np.ndarray  # (K, S)
    sd: np.ndarray  # (K, S)

    def t(self, k: int, sign: float = 1.0, effect: float = 0.0) -> np.ndarray:
        """Look k's paired t statistics (S,), of the studies (sign 1) or their mirror images
        (−1), each difference shifted by `effect` (sd units)."""
        return (sign * self.z[k] + effect * math.sqrt(self.n[k])) / self.sd[k]


def _simulate(plan: SeedPlan, chunk: int) -> _Studies:
    """One chunk of the plan's simulated studies, from the fixed seed and the chunk's index.
    Each look's new differences enter as their sum (~ N(0, m)) and their spread about their
    own mean (~ χ²_{m−1}), merged into the running sum of squares (Chan, Golub & LeVeque
    1979): one draw of each per look, however many seeds it adds."""
    looks = plan.looks
    rng = np.random.default_rng((_SEED, chunk))
    z = np.empty((len(looks), _CHUNK), dtype=np.float32)  # float32: to 1e-7, half the memory
    sd = np.empty((len(looks), _CHUNK), dtype=np.float32)
    total, squares, n = np.zeros(_CHUNK), np.zeros(_CHUNK), 0  # Σ d and Σ (d − mean)² so far
    for k, n_k in enumerate(looks):
        m = n_k - n
        block = rng.standard_normal(_CHUNK) * math.sqrt(m)
        if m > 1:
            squares += rng.chisquare(m - 1, _CHUNK)
        if n:
            squares += (block / m - total / n) ** 2 * (n * m / n_k)
        total += block
        n = n_k
        z[k] = total / math.sqrt(n)
        sd[k] = np.sqrt(squares / (n - 1))
    return _Studies(np.array(looks), z, sd)


_kept = functools.lru_cache(maxsize=2 * SIMULATED_STUDIES // _CHUNK)(_simulate)  # two plans' worth


def _studies(plan: SeedPlan, chunk: int) -> _Studies:
    """A chunk of simulated studies: kept for the next test of the same plan where small."""
    return _kept(plan, chunk) if len(plan.looks) <= _KEPT_LOOKS else _simulate(plan, chunk)


def _tails(studies: _Studies, k: int, sides: int, effect: float = 0.0) -> np.ndarray:
    """Look k's statistics (2S,) of the studies and their mirror images: t (one-sided) or
    |t| (two-sided); each is a study under the same effect, as the differences are
    symmetric about it."""
    both = np.concatenate([studies.t(k, 1.0, effect), studies.t(k, -1.0, effect)])
    return np.abs(both) if sides == 2 else both


def _rejecting(studies: _Studies, z_upper: np.ndarray, sides: int) -> tuple[np.ndarray, np.ndarray]:
    """For each simulated study (and, one-sided, its mirror image), the smallest log λ at
    which the t-tests at λ × the z boundaries' nominal levels reject it (inf: none below
    `_MOST_SCALE`), and whether its z test (σ known) rejects it: (S,) or (2S,) each."""
    from scipy import special

    log_level = special.log_ndtr(-z_upper)  # (K,) a tail; −inf where a look cannot reject
    df = studies.n - 1
    reach = -special.stdtrit(df, np.minimum(0.5, _MOST_SCALE * np.exp(log_level)))  # (K,)
    out, hits = [], []
    for sign in (1.0,) if sides == 2 else (1.0, -1.0):  # two-sided: a mirror is the same
        smallest = np.full(studies.z.shape[1], np.inf)  # (S,)
        hit = np.zeros(studies.z.shape[1], dtype=bool)  # (S,)
        for k in np.flatnonzero(np.isfinite(z_upper)).tolist():
            t, z = studies.t(k, sign), sign * studies.z[k]
            if sides == 2:
                t, z = np.abs(t), np.abs(z)
            hit |= z >= z_upper[k]
            near = np.flatnonzero(t >= reach[k])  # only these reject below _MOST_SCALE
            with np.errstate(divide="ignore"):
                ratio = np.log(special.stdtr(df[k], -t[near])) - log_level[k]
            smallest[near] = np.minimum(smallest[near], ratio)
        out.append(smallest)
        hits.append(hit)
    return np.concatenate(out), np.concatenate(hits)


def _level_scale(plan: SeedPlan, z_upper: tuple[float, ...], alpha: float, sides: int) -> float:
    """λ: the t-tests at λ × each z boundary's nominal level (1 − Φ(c_k) a tail) reject a
    simulated null study α of the time, with the z tests as control variate."""
    chunks = [
        _rejecting(_studies(plan, i), np.array(z_upper), sides)
        for i in range(SIMULATED_STUDIES // _CHUNK)
    ]
    log_lam = np.concatenate([c[0] for c in chunks])
    z_hit = np.concatenate([c[1] for c in chunks])
    count = len(log_lam)

    def at(share: float) -> float:
        """The log λ at which `share` of the simulated studies are rejected."""
        j = min(max(round(share * count), 1), count - 1)
        pair = np.partition(log_lam, (j - 1, j))[j - 1 : j + 1]
        if not np.all(np.isfinite(pair)):
            raise ArithmeticError(f"no level scale below {_MOST_SCALE} holds α = {alpha}")
        return float(pair.mean())

    # the share rejected at λ, estimated as mean(t rejects) − b (mean(z rejects) − α), with
    # b the regression coefficient of the one indicator on the other (at the plain λ)
    rejected = log_lam <= at(alpha)
    z_share = float(z_hit.mean())
    both = float(np.mean(rejected & z_hit))
    b = (both - float(rejected.mean()) * z_share) / (z_share * (1 - z_share))
    return math.exp(at(alpha + b * (z_share - alpha)))


def _t_futility(
    studies: _Studies, fractions: tuple[float, ...], upper: np.ndarray, sides: int, effect: float
) -> tuple[tuple[float, ...], float]:
    """The β-spending futility bounds on the t scale (at each look's n_k − 1 degrees of
    freedom) of the simulated studies under `effect` (sd units), against the efficacy
    boundaries `upper` (K,) on the same scale; and how much of β the last look leaves
    unspent when it stops at t < upper (0 for the right effect)."""
    size, going, used = 2 * _CHUNK, np.ones(2 * _CHUNK, dtype=bool), 0.0
    floor = 0.0 if sides == 2 else -math.inf  # no futility stop
    out: list[float] = []
    for k, t in enumerate(fractions):
        target = (spent(t, BETA) - used) * size  # the studies this look stops futile
        used = spent(t, BETA)
        x = _tails(studies, k, sides, effect)
        short = going & (x < upper[k])  # still going and not crossing efficacy here
        if k == len(upper) - 1:
            return (*out, float(upper[k])), (np.count_nonzero(short) - target) / size
        below = x[short]
        j = round(target)
        if j < 1:
            f = floor  # β(t) underflows: nothing to spend here
        elif j >= len(below):
            f = float(upper[k])  # the studies left would all be futile: the bounds meet
        else:
            f = float(np.partition(below, j - 1)[j - 1])  # exactly j of them at t ≤ f
        out.append(f)
        going = short & (x > f)
    raise AssertionError("a plan has at least one look")


def _z_at(t: float, df: int) -> float:
    """The z value at a t_df statistic's level (from the far tail): `_t_at`'s inverse."""
    from scipy import special

    if math.isinf(t):
        return t
    return math.copysign(-float(special.ndtri(special.stdtr(df, -abs(t)))), t)


def _t_at(z: float, df: int) -> float:
    """The t_df quantile at Φ(z): a z value at its nominal level (from the far tail, so
    boundaries of 8 and more keep their precision)."""
    from scipy import special

    return math.copysign(-float(special.stdtrit(df, special.ndtr(-abs(z)))), z)


@dataclass(frozen=True)
class Boundaries:
    """One test's boundaries at a plan's looks, each as the z value of the level its t-test
    uses (a look's t boundary is the t quantile at that level: `t_upper`, `t_lower`).
    `upper`: efficacy (one-sided t ≥ b, two-sided |t| ≥ b); `lower`: the non-binding
    futility bound (one-sided t ≤ f, two-sided |t| ≤ f; −inf or 0 where a test has none);
    `z_upper`: the exact boundaries for z statistics that give their shape; `scale`: λ, the
    calibration of their nominal levels (1: not calibrated, a plan of more than
    `_MOST_LOOKS` looks); `drift`: √max × the effect (sd units) futility is spent against
    (NaN without futility)."""

    plan: SeedPlan
    alpha: float
    sides: int
    upper: tuple[float, ...]
    lower: tuple[float, ...]
    z_upper: tuple[float, ...]
    scale: float
    drift: float = _NAN

    @property
    def calibrated(self) -> bool:
        """Whether the t-tests hold α by construction: not for a plan of more than
        `_MOST_LOOKS` looks, each z boundary at its nominal level."""
        return len(self.upper) <= _MOST_LOOKS

    def t_upper(self, k: int, df: int) -> float:
        """Look k's efficacy boundary for a t statistic on df degrees of freedom."""
        return _t_at(self.upper[k], df)

    def t_lower(self, k: int, df: int) -> float:
        """Look k's futility boundary for a t statistic on df degrees of freedom."""
        return _t_at(self.lower[k], df)


@functools.lru_cache(maxsize=256)
def boundaries(plan: SeedPlan, alpha: float, sides: int, futility: bool) -> Boundaries:
    """The boundaries of a test at level alpha (one- or two-sided), with or without a
    non-binding futility bound; computed once per (plan, α, test)."""
    from scipy import special

    z_upper = _z_efficacy(plan.fractions, alpha, sides)
    none = (0.0 if sides == 2 else -math.inf,) * len(z_upper)
    if len(z_upper) > _MOST_LOOKS or sum(map(math.isfinite, z_upper)) == 1:
        bounds = Boundaries(plan, alpha, sides, z_upper, none, z_upper, 1.0)
    else:
        scale = _level_scale(plan, z_upper, alpha, sides)
        log_scale = math.log(scale)
        upper = tuple(-float(special.ndtri_exp(log_scale + special.log_ndtr(-c))) for c in z_upper)
        bounds = Boundaries(plan, alpha, sides, upper, none, z_upper, scale)
    if not futility:
        return bounds
    lower, drift = _t_futility_of(bounds) if bounds.calibrated else _z_futility_of(bounds)
    return replace(bounds, lower=lower, drift=drift)


def _fixed_drift(bounds: Boundaries) -> float:
    """The fixed-sample z design's drift, z_{1−α} + z_{1−β}: the drift solving f_K = c_K
    lies above it (boundaries above the fixed one, futility stops and t's estimated sd all
    cost power)."""
    from scipy import special

    return float(-special.ndtri(bounds.alpha / bounds.sides) - special.ndtri(BETA))


def _z_futility_of(bounds: Boundaries) -> tuple[tuple[float, ...], float]:
    """The futility bound and its drift on the z scale (a plan not calibrated)."""
    fractions, upper, sides = bounds.plan.fractions, bounds.z_upper, bounds.sides

    def unspent(drift: float) -> float:
        return _z_futility(fractions, upper, BETA, sides, drift)[1]

    fixed = _fixed_drift(bounds)
    drift = _solve(unspent, 0.9 * fixed, 1.5 * fixed)
    return _z_futility(fractions, upper, BETA, sides, drift)[0], drift


def _t_futility_of(bounds: Boundaries) -> tuple[tuple[float, ...], float]:
    """The futility bound (as z values at the t-tests' levels) and its drift, solved on the
    first chunk of simulated studies against the calibrated efficacy boundaries."""
    plan, sides = bounds.plan, bounds.sides
    df = [n - 1 for n in plan.looks]
    upper = np.array([bounds.t_upper(k, d) for k, d in enumerate(df)])  # (K,)
    studies, root = _studies(plan, 0), math.sqrt(plan.max)

    def unspent(drift: float) -> float:
        return _t_futility(studies, plan.fractions, upper, sides, drift / root)[1]

    lo = hi = _fixed_drift(bounds)
    while unspent(lo) < 0:
        lo /= 1.5
    while unspent(hi) > 0:  # few seeds: t's power lags z's
        hi *= 1.5
    drift = _solve(unspent, lo, hi, xtol=1e-4)  # the unspent β jumps by 1 / 100,000 studies
    f = _t_futility(studies, plan.fractions, upper, sides, drift / root)[0]
    met = zip(f, upper, bounds.upper, df, strict=True)  # where the bounds meet, exactly
    return tuple(z if x == t else _z_at(x, d) for x, t, z, d in met), drift
