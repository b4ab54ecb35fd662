"""Statistics across seeds: per-cell summaries and paired comparisons with the baseline cell.

Every cell of a study is trained once per seed, and the seed fixes the data order and the
initialisation, so two cells trained with the same seed share much of their noise. Comparisons
with the baseline are therefore *paired by seed*: the paired t-test, the Wilcoxon signed-rank test,
Cohen's d_z and a bootstrap interval all work on the per-seed differences cell − baseline. Holm's
step-down procedure corrects the p-values for the number of cells compared.

For two-key grids, `two_way` tabulates the metric and `interaction_test` runs a two-way ANOVA
with interaction (seed as a block) to ask whether the effect of one key depends on the other.

Only COMPLETE trials enter the statistics. A seed that was retried (FAIL, then COMPLETE) counts
once, by its best outcome; DIVERGED seeds are counted in a divergence rate, not silently dropped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

SUMMARY_STATS = (
    "n",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "diverged",
    "divergence_rate",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "n_pairs",
    "p_value",
    "p_holm",
    "p_wilcoxon",
    "d_z",
    "boot_low",
    "boot_high",
    "verdict",
)

# Outcome of one (cell, seed), best first: a seed retried after a crash counts by its best try.
_OUTCOME_RANK = {"COMPLETE": 0, "DIVERGED": 1, "FAIL": 2}
_IOU_PREFIX = "val/iou/"
ANOVA_TERMS = ("row", "col", "interaction")
# Residual SS below this share of the total SS counts as none (rounding, not noise): F undefined.
_NO_VARIANCE = 1e-12


def is_fraction_metric(metric: str) -> bool:
    """Whether a metric lives in [0, 1] (IoU, accuracy) and is best read in points (×100)."""
    name = metric.lower()
    return "iou" in name or "acc" in name


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


def summarize(
    trials: pd.DataFrame,
    *,
    metric: str,
    goal: Literal["maximize", "minimize"],
    baseline: str,
    keys: Sequence[str],
    cells: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """One row per cell: the metric over its COMPLETE seeds and its paired comparison with baseline.

    Cells follow `cells` when given (a listed cell with no completed trial still gets a row, with
    n = 0 and NaNs, so a report can show it as missing), else their first appearance in `trials`.
    A verdict of "better" or "worse" needs p_holm < 1 - confidence (0.05 by default). The
    baseline row carries its own n as n_pairs and NaN in every comparison column.
    """
    _require_columns(trials, ["number", "state", "cell", "seed", metric, *keys])
    if goal not in ("maximize", "minimize"):
        raise ValueError(f"goal must be 'maximize' or 'minimize', not {goal!r}")
    order = _cell_order(trials, cells)
    values = _seed_values(trials, metric)
    if baseline not in order and baseline not in set(trials["cell"]):
        raise ValueError(f"baseline cell {baseline!r} is not among the cells {order}")
    base = values.get(baseline, _empty_series())
    key_values = _key_values(trials, keys)
    outcomes = _outcome_counts(trials)

    rows = []
    for cell in order:
        own = values.get(cell, _empty_series())
        row: dict[str, Any] = {"cell": cell}
        row.update(key_values.get(cell, dict.fromkeys(keys)))
        row.update(_level_stats(own.to_numpy(), confidence))
        row.update(_divergence(outcomes, cell))
        if cell == baseline:
            row.update(_no_comparison(len(own)))
        else:
            diffs = _paired_differences(own, base)
            row.update(_paired_stats(diffs, confidence, n_boot, rng_seed))
        rows.append(row)

    summary = pd.DataFrame(rows, columns=["cell", *keys, *SUMMARY_STATS])
    compared = (summary["cell"] != baseline).to_numpy()
    p_holm = np.full(len(summary), np.nan)
    p_holm[compared] = holm(summary.loc[compared, "p_value"].to_numpy(dtype=float))
    summary["p_holm"] = p_holm
    alpha = 1.0 - confidence
    summary["verdict"] = [
        _verdict(row, baseline=baseline, goal=goal, alpha=alpha)
        for row in summary.to_dict("records")
    ]
    return summary


def per_class_diff(
    trials: pd.DataFrame,
    *,
    baseline: str,
    class_columns: Sequence[str],
    cells: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Long table (cell, class, diff, ci_low, ci_high, n_pairs) of per-class IoU minus baseline.

    Shows *where* a trick helps: a small mIoU change can hide a large gain on thin or rare
    classes. Pairs are by seed over seeds where both cells have a finite value for that class
    (a class absent from a validation set has a NaN IoU). Non-baseline cells only.
    """
    _require_columns(trials, ["number", "state", "cell", "seed", *class_columns])
    order = [cell for cell in _cell_order(trials, cells) if cell != baseline]
    rows = []
    for column in class_columns:
        values = _seed_values(trials, column)
        base = values.get(baseline, _empty_series())
        for cell in order:
            diffs = _paired_differences(values.get(cell, _empty_series()), base)
            level = _level_stats(diffs, confidence)
            rows.append(
                {
                    "cell": cell,
                    "class": column.removeprefix(_IOU_PREFIX),
                    "diff": level["mean"],
                    "ci_low": level["ci_low"],
                    "ci_high": level["ci_high"],
                    "n_pairs": len(diffs),
                }
            )
    table = pd.DataFrame(rows, columns=["cell", "class", "diff", "ci_low", "ci_high", "n_pairs"])
    # Group by cell, classes in the order given, so a reader scans one cell at a time.
    table["_cell_pos"] = table["cell"].map({cell: i for i, cell in enumerate(order)})
    table = table.sort_values("_cell_pos", kind="stable").drop(columns="_cell_pos")
    return table.reset_index(drop=True)


def two_way(trials: pd.DataFrame, *, metric: str, row_key: str, col_key: str) -> pd.DataFrame:
    """The mean of `metric` over COMPLETE seeds for every (row_key, col_key) pair, and its n.

    Columns form two blocks, `table["mean"]` and `table["n"]`, each a grid with the row_key
    values as index and the col_key values as columns, both in order of first appearance in
    `trials` (the study's cell order). Every value any trial had is a level, so a pair whose
    seeds all failed shows n = 0 and a NaN mean; a null key value is a level of its own (NaN).
    Two cells sharing a pair (a third swept key, or variants that set neither key) are an
    error: filter `trials` to the two-key grid first.
    """
    rows, cols, values = _grid_values(trials, metric, row_key, col_key)
    mean = np.full((len(rows), len(cols)), np.nan)
    n = np.zeros((len(rows), len(cols)), dtype=int)
    for (i, j), group in values.groupby(["i", "j"]):
        mean[i, j] = group["value"].mean()
        n[i, j] = len(group)
    index = pd.Index(rows, name=row_key)
    columns = pd.Index(cols, name=col_key)
    return pd.concat(
        {
            "mean": pd.DataFrame(mean, index=index, columns=columns),
            "n": pd.DataFrame(n, index=index, columns=columns),
        },
        axis=1,
    )


def interaction_test(
    trials: pd.DataFrame,
    *,
    metric: str,
    row_key: str,
    col_key: str,
    block_seed: bool = True,
) -> dict[str, Any]:
    """Two-way ANOVA with interaction over the COMPLETE seeds of a two-key grid.

    Does the effect of one key depend on the other? The model is
    y_ijk = mu + a_i + b_j + (ab)_ij [+ s_k] + e_ijk with rows i, columns j and seeds k as
    replicates. With `block_seed` (the default) the seed is also a block: it fixes the
    initialisation and the data order of every cell, so results sharing a seed share noise (why
    `summarize` pairs by seed), and a block term s_k takes that shared part out of the error,
    as in a randomised complete block design with factorial treatments (Montgomery, Design and
    Analysis of Experiments, ch. 5, "Blocking in a factorial design"). It costs r - 1 error
    degrees of freedom and assumes the seed effect is additive. Without it the seeds are plain
    replicates (a completely randomised design).

    The sums of squares are the balanced-design closed forms, so the data are made balanced:
    only seeds with a result in every (row, col) pair are used (as paired tests use only seeds
    both cells have); `n_dropped` counts the results left out. Where a term cannot be tested, F
    and p are NaN and `note` says why: a pair with no result at all (everything NaN), one
    common seed (no error degrees of freedom), one level of a key, or no residual variance.

    Returns a flat dict: `F_<term>`, `p_<term>`, `df_<term>`, `ss_<term>` for the terms
    "row", "col" and "interaction"; `ss_seed`, `df_seed` (0 without blocking), `ss_error`,
    `df_error`; `n_rows`, `n_cols`, `n_seeds` (common seeds used), `n_dropped`, `blocked` and
    `note` ("" when all went well).
    """
    rows, cols, values = _grid_values(trials, metric, row_key, col_key)
    result: dict[str, Any] = {
        **{f"{stat}_{term}": math.nan for term in ANOVA_TERMS for stat in ("F", "p", "df", "ss")},
        "ss_seed": math.nan,
        "df_seed": math.nan,
        "ss_error": math.nan,
        "df_error": math.nan,
        "n_rows": len(rows),
        "n_cols": len(cols),
        "n_seeds": 0,
        "n_dropped": len(values),
        "blocked": block_seed,
        "note": "",
    }
    seeds_of = values.groupby(["i", "j"])["seed"].agg(set)
    empty = [
        f"{row_key}={rows[i]}, {col_key}={cols[j]}"
        for i in range(len(rows))
        for j in range(len(cols))
        if (i, j) not in seeds_of.index
    ]
    if empty or not len(values):
        result["note"] = "no completed seed for " + ("; ".join(empty) or "any pair")
        return result
    common = sorted(set.intersection(*seeds_of.tolist()))
    if not common:
        result["note"] = "no seed has a result in every pair"
        return result
    used = values[values["seed"].isin(common)]
    y = np.full((len(rows), len(cols), len(common)), np.nan)  # (rows, cols, seeds)
    position = used["seed"].map({seed: k for k, seed in enumerate(common)})
    y[used["i"].to_numpy(), used["j"].to_numpy(), position.to_numpy()] = used["value"].to_numpy()
    result.update(_anova(y, block_seed=block_seed))
    result.update(n_seeds=len(common), n_dropped=len(values) - len(used))
    notes = []
    if result["n_dropped"]:
        notes.append(f"{result['n_dropped']} result(s) on seeds missing from some pair left out")
    if result["df_error"] == 0:
        notes.append(f"{len(common)} common seed(s): no error degrees of freedom")
    elif not result["ss_error"] > _NO_VARIANCE * result["ss_total"]:
        notes.append("no residual variance: F is undefined")
    if min(len(rows), len(cols)) < 2:
        notes.append("a key with one level has no effect to test")
    del result["ss_total"]
    result["note"] = "; ".join(notes)
    return result


def verdict_sentence(row: Mapping[str, Any], metric: str, *, confidence: float = 0.95) -> str:
    """One plain sentence for a summary row, e.g. "x: +1.42 mIoU-points vs baseline (...) — better."

    Fraction metrics (IoU, accuracy) are shown ×100 as points, others in their own units.
    """
    scale = 100.0 if is_fraction_metric(metric) else 1.0
    name = metric.split("/")[-1]
    unit = f"{name}-points" if scale == 100.0 else name
    cell, verdict = row["cell"], row["verdict"]
    if verdict == "baseline":
        percent = "%" if scale == 100.0 else ""
        return f"{cell}: baseline, {name} = {_fmt(row['mean'] * scale)}{percent} (n = {row['n']})."
    if verdict == "missing":
        return f"{cell}: no completed seed paired with the baseline — missing."
    diff = f"{_fmt(row['diff'] * scale, signed=True)} {unit} vs baseline"
    if row["n_pairs"] < 2:
        return f"{cell}: {diff} (one paired seed, no test possible) — {verdict}."
    low = _fmt(row["diff_ci_low"] * scale, signed=True)
    high = _fmt(row["diff_ci_high"] * scale, signed=True)
    level = f"{confidence * 100:g}% CI {low} to {high}"
    return f"{cell}: {diff} ({level}, {_fmt_p(row['p_holm'])}, n = {row['n_pairs']}) — {verdict}."


def _require_columns(trials: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in trials.columns]
    if missing:
        raise ValueError(f"trials table lacks column(s) {missing}; it has {list(trials.columns)}")


def _cell_order(trials: pd.DataFrame, cells: Sequence[str] | None) -> list[str]:
    if cells is not None:
        return list(dict.fromkeys(cells))
    return list(pd.unique(trials["cell"]))


def _empty_series() -> pd.Series:
    return pd.Series([], dtype=float)


def _seed_values(trials: pd.DataFrame, column: str) -> dict[Hashable, pd.Series]:
    """Per cell, the finite values of `column` over its COMPLETE seeds, indexed by seed.

    If a seed somehow completed twice, its latest trial (highest number) wins.
    """
    frame = _complete_rows(trials, column)
    return {
        cell: group.set_index("seed")["value"].sort_index()
        for cell, group in frame.groupby("cell", sort=False)
    }


def _complete_rows(trials: pd.DataFrame, column: str) -> pd.DataFrame:
    """The COMPLETE rows with a finite `column`, one per (cell, seed) (the latest trial wins),
    with that column as float under the name "value"; the index is the trials table's."""
    done = trials[trials["state"] == "COMPLETE"].sort_values("number", kind="stable")
    done = done.drop_duplicates(["cell", "seed"], keep="last")
    value = pd.to_numeric(done[column], errors="coerce").astype(float)
    keep = np.isfinite(value.to_numpy())
    return done.assign(value=value)[keep]


def _grid_values(
    trials: pd.DataFrame, metric: str, row_key: str, col_key: str
) -> tuple[list[Any], list[Any], pd.DataFrame]:
    """The row and column levels and one row (i, j, cell, seed, value) per COMPLETE seed.

    Levels are the key values of every trial (any state), in order of first appearance; i and
    j index them. Raises if two cells fall on the same (row, col) pair.
    """
    _require_columns(trials, ["number", "state", "cell", "seed", metric, row_key, col_key])
    row_codes, row_levels = pd.factorize(trials[row_key], use_na_sentinel=False)
    col_codes, col_levels = pd.factorize(trials[col_key], use_na_sentinel=False)
    coded = trials.assign(i=row_codes, j=col_codes)
    cells = coded.drop_duplicates("cell").groupby(["i", "j"])["cell"].agg(list)
    shared = cells[cells.map(len) > 1]
    if len(shared):
        (i, j), names = next(iter(shared.items()))
        raise ValueError(
            f"cells {names} share {row_key}={row_levels[i]}, {col_key}={col_levels[j]}; "
            "a two-way table needs one cell per pair: filter the trials to the grid"
        )
    values = _complete_rows(coded, metric)[["i", "j", "cell", "seed", "value"]]
    return list(row_levels), list(col_levels), values.reset_index(drop=True)


def _anova(y: np.ndarray, *, block_seed: bool) -> dict[str, Any]:
    """Balanced two-way ANOVA of y (rows, cols, seeds); closed-form sums of squares.

    SS_row = b r sum_i (m_i - m)^2, SS_col = a r sum_j (m_j - m)^2,
    SS_int = r sum_ij (m_ij - m_i - m_j + m)^2, SS_within = sum_ijk (y_ijk - m_ij)^2; with the
    seed as a block, SS_seed = a b sum_k (m_k - m)^2 moves out of SS_within into its own term.
    The deviations are formed directly rather than as differences of totals, which would lose
    digits to cancellation when the effects are small against the mean.
    """
    a, b, r = y.shape
    m = y.mean()
    m_i = y.mean(axis=(1, 2))  # (a,)
    m_j = y.mean(axis=(0, 2))  # (b,)
    m_ij = y.mean(axis=2)  # (a, b)
    m_k = y.mean(axis=(0, 1))  # (r,)
    ss = {
        "row": b * r * float(np.sum((m_i - m) ** 2)),
        "col": a * r * float(np.sum((m_j - m) ** 2)),
        "interaction": r * float(np.sum((m_ij - m_i[:, None] - m_j[None, :] + m) ** 2)),
    }
    df = {"row": a - 1, "col": b - 1, "interaction": (a - 1) * (b - 1)}
    residual = y - m_ij[:, :, None]  # (a, b, r)
    if block_seed:
        residual = residual - (m_k - m)[None, None, :]
        ss_seed, df_seed = a * b * float(np.sum((m_k - m) ** 2)), r - 1
        df_error = (a * b - 1) * (r - 1)
    else:
        ss_seed, df_seed = 0.0, 0
        df_error = a * b * (r - 1)
    ss_error = float(np.sum(residual**2))
    ss_total = float(np.sum((y - m) ** 2))
    out: dict[str, Any] = {
        "ss_seed": ss_seed,
        "df_seed": df_seed,
        "ss_error": ss_error,
        "df_error": df_error,
        "ss_total": ss_total,
    }
    testable = df_error > 0 and ss_error > _NO_VARIANCE * ss_total
    for term in ANOVA_TERMS:
        out[f"ss_{term}"], out[f"df_{term}"] = ss[term], df[term]
        if testable and df[term] > 0:
            f = (ss[term] / df[term]) / (ss_error / df_error)
            out[f"F_{term}"] = f
            out[f"p_{term}"] = float(stats.f.sf(f, df[term], df_error))
        else:
            out[f"F_{term}"] = out[f"p_{term}"] = math.nan
    return out


def _key_values(trials: pd.DataFrame, keys: Sequence[str]) -> dict[Hashable, dict[str, Any]]:
    """The swept-key values of each cell, read from its first row (all rows of a cell agree)."""
    first = trials.drop_duplicates("cell")
    return {row["cell"]: {key: row[key] for key in keys} for row in first.to_dict("records")}


def _outcome_counts(trials: pd.DataFrame) -> pd.DataFrame:
    """Per cell, how many seeds ended COMPLETE, DIVERGED and FAIL, each seed counted once."""
    finished = trials[trials["state"].isin(list(_OUTCOME_RANK))]
    rank = finished["state"].map(_OUTCOME_RANK)
    best = rank.groupby([finished["cell"], finished["seed"]]).min()
    counts = best.groupby(level=0).value_counts().unstack(fill_value=0)
    return counts.reindex(columns=list(_OUTCOME_RANK.values()), fill_value=0)


def _divergence(outcomes: pd.DataFrame, cell: str) -> dict[str, Any]:
    if cell not in outcomes.index:
        return {"diverged": 0, "divergence_rate": math.nan}
    counts = outcomes.loc[cell]
    diverged = int(counts[_OUTCOME_RANK["DIVERGED"]])
    finished = int(counts.sum())
    return {"diverged": diverged, "divergence_rate": diverged / finished}


def _level_stats(x: np.ndarray, confidence: float) -> dict[str, float]:
    """Mean, sample std and the Student-t interval of the mean; NaN where n is too small."""
    n = len(x)
    mean = float(np.mean(x)) if n else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    std = float(np.std(x, ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def _paired_differences(cell: pd.Series, base: pd.Series) -> np.ndarray:
    """cell − baseline for every seed present in both, in seed order."""
    joined = pd.concat({"cell": cell, "base": base}, axis=1, join="inner").sort_index()
    return (joined["cell"] - joined["base"]).to_numpy(dtype=float)


def _no_comparison(n: int) -> dict[str, Any]:
    empty = dict.fromkeys(
        ("diff", "diff_ci_low", "diff_ci_high", "p_value", "p_wilcoxon", "d_z"), math.nan
    )
    return {**empty, "boot_low": math.nan, "boot_high": math.nan, "n_pairs": n}


def _paired_stats(d: np.ndarray, confidence: float, n_boot: int, rng_seed: int) -> dict[str, Any]:
    """Paired comparison from the per-seed differences d (cell − baseline)."""
    level = _level_stats(d, confidence)
    out = _no_comparison(len(d))
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


def _verdict(row: Mapping[str, Any], *, baseline: str, goal: str, alpha: float) -> str:
    if row["cell"] == baseline:
        return "baseline"
    k = int(row["n_pairs"])
    if k == 0:
        return "missing"
    if k == 1:
        return "n/a (one seed)"
    if math.isnan(row["p_value"]) and row["diff"] != 0:
        return "n/a (identical differences)"
    if row["p_holm"] < alpha:
        improved = row["diff"] > 0 if goal == "maximize" else row["diff"] < 0
        return "better" if improved else "worse"
    return f"no detectable difference at n = {k}"


def _fmt(x: float, *, signed: bool = False) -> str:
    if math.isnan(x):
        return "n/a"
    sign = "+" if signed else ""
    return f"{x:{sign}.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:{sign}.3g}"


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "p_holm n/a"
    return "p_holm < 0.001" if p < 0.001 else f"p_holm = {p:.3f}"
