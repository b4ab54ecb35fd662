"""Paired comparison of a cell with the baseline from the per-seed differences cell − baseline:
Student-t interval, paired t-test, Wilcoxon signed-rank test, Cohen's d_z, a bootstrap interval,
and Holm's correction across the cells compared.

Statistics are given only where they can mean something. The exact Wilcoxon test's smallest
two-sided p-value with n pairs is 2/2^n, so below `wilcoxon_min_n(alpha)` pairs (6 at α = 0.05)
it cannot reject whatever the data, and it is left out (NaN). A percentile bootstrap of the mean
from a handful of pairs is far too narrow (3 pairs have 10 distinct resamples), so it is left
out below `BOOTSTRAP_MIN_N` pairs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

BOOTSTRAP_MIN_N = 10  # fewer pairs: a percentile interval badly undercovers


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN entries stay NaN and do not count in m.

    Sorted ascending, p_(i) becomes max_{j<=i} min(1, (m - j + 1) p_(j)) (Holm 1979), which
    controls the family-wise error rate without assuming independence between the tests.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    m = order.size
    scaled = (m - np.arange(m)) * p[order]  # (m - j + 1) p_(j), j counted from 1
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


@dataclass(frozen=True)
class Level:
    """A cell's metric over its seeds: how many, the mean, the sample std (ddof 1) and the
    Student-t interval of the mean; NaN where too few seeds give none."""

    n: int = 0
    mean: float = math.nan
    std: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan


def level_stats(x: np.ndarray, confidence: float) -> Level:
    """Mean, sample std and the Student-t interval of the mean; NaN where n is too small."""
    n = len(x)
    mean = float(np.mean(x)) if n else math.nan
    if n < 2:
        return Level(n, mean)
    std = float(np.std(x, ddof=1))
    half = float(special.stdtrit(n - 1, 0.5 + confidence / 2)) * std / math.sqrt(n)
    return Level(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Paired:
    """A cell's comparison with the cell it is paired with (by seed), from the differences
    cell − reference: their mean with its t-interval, the tests, effect sizes, and what the
    comparison could detect (`mde`, with `mde_low` to `mde_high` its interval from the
    chi-square interval of the differences' spread). `p_holm`, the MDE and `seeds_needed`
    depend on how many cells are compared, so the summary, which sees them all, sets them. The
    baseline's own row has only `n_pairs`: its number of seeds."""

    diff: float = math.nan
    diff_ci_low: float = math.nan
    diff_ci_high: float = math.nan
    n_pairs: int = 0
    p_value: float = math.nan
    p_holm: float = math.nan
    p_wilcoxon: float = math.nan
    d_z: float = math.nan
    boot_low: float = math.nan
    boot_high: float = math.nan
    d_av: float = math.nan
    mde: float = math.nan
    mde_low: float = math.nan
    mde_high: float = math.nan
    seeds_needed: float = math.nan


def paired_differences(cell: pd.Series, base: pd.Series) -> np.ndarray:
    """cell − baseline for every seed present in both, in seed order."""
    both = cell.index.intersection(base.index).sort_values()
    return cell.loc[both].to_numpy(dtype=float) - base.loc[both].to_numpy(dtype=float)


def paired_stats(
    cell: pd.Series, base: pd.Series, confidence: float, n_boot: int, rng_seed: int
) -> tuple[Paired, float]:
    """The paired comparison of a cell's per-seed values with its reference's, and the
    standard deviation of the differences (NaN below two pairs), which its MDE is
    computed from."""
    d = paired_differences(cell, base)
    level = level_stats(d, confidence)
    out = Paired(level.mean, level.ci_low, level.ci_high, len(d))
    if len(d) < 2:
        return out, math.nan
    p_value, d_z = _t_test(d, level)
    p_wilcoxon = math.nan
    if np.any(d) and len(d) >= wilcoxon_min_n(1.0 - confidence):
        with warnings.catch_warnings():  # scipy warns about ties and zeros with few pairs
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            p_wilcoxon = float(stats.wilcoxon(d, alternative="two-sided").pvalue)
    boot = (math.nan, math.nan)
    if n_boot > 0 and len(d) >= BOOTSTRAP_MIN_N:
        boot = _bootstrap_mean_ci(d, confidence, n_boot, rng_seed)
    both = cell.index.intersection(base.index)
    paired = replace(
        out,
        p_value=p_value,
        p_wilcoxon=p_wilcoxon,
        d_z=d_z,
        boot_low=boot[0],
        boot_high=boot[1],
        d_av=cohens_d_av(d, cell.loc[both].to_numpy(float), base.loc[both].to_numpy(float)),
    )
    return paired, level.std


def identical(d: np.ndarray) -> bool:
    """Whether the differences are all equal (to rounding): a t statistic is then 0/0 or ±inf,
    and a test takes the limit of an ever smaller spread instead."""
    return float(np.ptp(d)) <= 1e-12 * max(1.0, float(np.max(np.abs(d))))


def _t_test(d: np.ndarray, level: Level) -> tuple[float, float]:
    """(p, d_z) of the one-sample t-test of d against 0; at least two values."""
    if identical(d):
        # Identical differences: the t statistic is 0/0 or ±inf. All zero is no evidence of a
        # difference (p = 1); a constant non-zero shift is the limit of ever smaller spread
        # around that shift, where p → 0 and d_z → ±inf.
        if not np.any(d):
            return 1.0, 0.0
        return 0.0, math.copysign(math.inf, level.mean)
    # Student's one-sample t-test by its formula: scipy.stats.ttest_1samp gives the same p
    # (tests/report check it) at a hundred times the cost, paid per cell and class
    t = level.mean / (level.std / math.sqrt(len(d)))
    return float(2.0 * special.stdtr(len(d) - 1, -abs(t))), level.mean / level.std


def mean_difference(d: np.ndarray, confidence: float) -> dict[str, Any]:
    """The mean of per-seed differences with its Student-t interval and the one-sample
    t-test's p: one row of a per-class or effects table."""
    level = level_stats(d, confidence)
    return {
        "estimate": level.mean,
        "ci_low": level.ci_low,
        "ci_high": level.ci_high,
        "n": len(d),
        "p_value": _t_test(d, level)[0] if len(d) >= 2 else math.nan,
    }


def wilcoxon_min_n(alpha: float) -> int:
    """The fewest pairs with which the exact two-sided Wilcoxon test can reach p < alpha: its
    smallest p-value, every difference of one sign, is 2 / 2^n."""
    return max(1, math.floor(1 - math.log2(alpha)) + 1) if alpha > 0 else 1_000_000


def cohens_d_av(d: np.ndarray, cell: np.ndarray, base: np.ndarray) -> float:
    """Cohen's d_av (Lakens 2013, eq. 10): the mean paired difference over the mean of the two
    cells' standard deviations. Unlike d_z it does not shrink the denominator by the
    correlation between cells, so it reads like the d of two independent groups."""
    if len(d) < 2 or len(cell) < 2 or len(base) < 2:
        return math.nan
    spread = (float(np.std(cell, ddof=1)) + float(np.std(base, ddof=1))) / 2
    mean = float(np.mean(d))
    if spread == 0:
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / spread


def _bootstrap_mean_ci(
    d: np.ndarray, confidence: float, n_boot: int, rng_seed: int
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(d), resampling the pairs; one array op, no loop."""
    rng = np.random.default_rng(rng_seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))  # (n_boot, n_pairs)
    means = d[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)
