"""What a paired comparison could have detected: the minimal detectable effect (MDE) of the
paired t-test, and the seeds needed to detect a given effect.

Both are computed from the noncentral t distribution (Cohen 1988, ch. 2): with n pairs whose
differences have standard deviation σ, the paired t statistic of a true mean difference δ follows
a noncentral t with n − 1 degrees of freedom and noncentrality δ√n/σ. The MDE is the δ the
two-sided test at level α rejects with probability `power`; σ is the one observed (a plug-in
estimate, so the MDE is as uncertain as the seed spread it is computed from). At a fixed n the
MDE is proportional to σ, so the chi-square confidence interval of σ (`spread_interval`) is an
interval of the MDE too (`mde_interval`).
"""

from __future__ import annotations

import math

from scipy import optimize, stats

POWER = 0.8  # the conventional power an MDE is quoted at
MAX_SEEDS = 10_000  # `seeds_needed` gives up above this


def power(effect: float, sd: float, n: int, alpha: float) -> float:
    """Probability that the two-sided paired t-test at level `alpha` rejects when the true mean
    difference is `effect` and the differences' standard deviation is `sd`, with `n` pairs."""
    if n < 2 or not sd > 0:
        return math.nan
    df = n - 1
    critical = float(stats.t.ppf(1 - alpha / 2, df))
    return _rejection(critical, df, abs(effect) * math.sqrt(n) / sd)


def _rejection(critical: float, df: int, shift: float) -> float:
    """P(|T'| > critical) for T' noncentral t(df, shift ≥ 0). The lower tail is written as the
    upper tail at −shift: scipy's cdf returns NaN far out in that tail, where the sf does not."""
    return float(stats.nct.sf(critical, df, shift) + stats.nct.sf(critical, df, -shift))


def mde(sd: float, n: int, alpha: float, target: float = POWER) -> float:
    """The smallest true mean difference the paired t-test detects with probability `target`,
    in the units of `sd`; NaN below two pairs or without a spread estimate, 0 for no spread."""
    if n < 2 or math.isnan(sd):
        return math.nan
    if sd == 0:
        return 0.0
    df = n - 1
    critical = float(stats.t.ppf(1 - alpha / 2, df))

    def short(shift: float) -> float:  # power at noncentrality `shift`, minus the target
        return _rejection(critical, df, shift) - target

    high = critical + 10.0
    while short(high) < 0:  # tiny n at tiny alpha needs a very large noncentrality
        high *= 2
    shift = float(optimize.brentq(short, 0.0, high, xtol=1e-10))
    return shift * sd / math.sqrt(n)


def spread_interval(n: int, confidence: float) -> tuple[float, float]:
    """The factors that turn the sample standard deviation s of `n` normal values into the
    `confidence` interval of σ: s·sqrt((n − 1)/χ²_{1−a/2, n−1}) to s·sqrt((n − 1)/χ²_{a/2,
    n−1}), a = 1 − confidence; NaN below two values."""
    if n < 2:
        return math.nan, math.nan
    df = n - 1
    tail = (1.0 - confidence) / 2
    upper, lower = stats.chi2.ppf([1.0 - tail, tail], df)
    return math.sqrt(df / float(upper)), math.sqrt(df / float(lower))


def mde_interval(detectable: float, n: int, confidence: float) -> tuple[float, float]:
    """The `confidence` interval of an MDE computed from `n` pairs' spread: the MDE at the
    bounds of σ's chi-square interval, which at a fixed n scales it linearly."""
    low, high = spread_interval(n, confidence)
    return detectable * low, detectable * high


def seeds_needed(effect: float, sd: float, alpha: float, target: float = POWER) -> float:
    """The fewest pairs (≥ 2) with which the paired t-test detects a true difference `effect`
    with probability `target`, given the observed spread `sd`; NaN without a spread estimate,
    inf above `MAX_SEEDS`."""
    if math.isnan(sd) or not effect > 0:
        return math.nan
    if sd == 0:
        return 2.0
    if power(effect, sd, MAX_SEEDS, alpha) < target:
        return math.inf
    low, high = 1, 2  # power(low) < target <= power(high) once the doubling stops
    while power(effect, sd, high, alpha) < target:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        if power(effect, sd, mid, alpha) < target:
            low = mid
        else:
            high = mid
    return float(high)
