"""Paired comparison of a cell with the baseline from the per-seed differences cell − baseline:
Student-t interval, paired t-test, Wilcoxon signed-rank test, Cohen's d_z, a bootstrap interval,
and Holm's correction across the cells compared."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


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


def level_stats(x: np.ndarray, confidence: float) -> dict[str, float]:
    """Mean, sample std and the Student-t interval of the mean; NaN where n is too small."""
    n = len(x)
    mean = float(np.mean(x)) if n else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    std = float(np.std(x, ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def paired_differences(cell: pd.Series, base: pd.Series) -> np.ndarray:
    """cell − baseline for every seed present in both, in seed order."""
    joined = pd.concat({"cell": cell, "base": base}, axis=1, join="inner").sort_index()
    return (joined["cell"] - joined["base"]).to_numpy(dtype=float)


def no_comparison(n: int) -> dict[str, Any]:
    empty = dict.fromkeys(
        ("diff", "diff_ci_low", "diff_ci_high", "p_value", "p_wilcoxon", "d_z"), math.nan
    )
    return {**empty, "boot_low": math.nan, "boot_high": math.nan, "n_pairs": n}


def paired_stats(d: np.ndarray, confidence: float, n_boot: int, rng_seed: int) -> dict[str, Any]:
    """Paired comparison from the per-seed differences d (cell − baseline)."""
    level = level_stats(d, confidence)
    out = no_comparison(len(d))
    out.update(diff=level["mean"], diff_ci_low=level["ci_low"], diff_ci_high=level["ci_high"])
    if len(d) < 2:
        return out
    spread = float(np.ptp(d))
    if spread <= 1e-12 * max(1.0, float(np.max(np.abs(d)))):
        # Identical differences: the t statistic is 0/0 or ±inf. All zero is no evidence of a
        # difference (p = 1); a constant non-zero shift is left untested (NaN) rather than p = 0.
        out["p_value"] = 1.0 if not np.any(d) else math.nan
    else:
        out["p_value"] = float(stats.ttest_1samp(d, 0.0).pvalue)
        out["d_z"] = level["mean"] / level["std"]
    if np.any(d):
        with warnings.catch_warnings():  # scipy warns about ties and zeros with few pairs
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            out["p_wilcoxon"] = float(stats.wilcoxon(d, alternative="two-sided").pvalue)
    out["boot_low"], out["boot_high"] = _bootstrap_mean_ci(d, confidence, n_boot, rng_seed)
    return out


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
