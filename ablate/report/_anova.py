"""Two-key grids: the metric tabulated over (row key, column key) and a two-way ANOVA with
interaction, the seed as a block, asking whether the effect of one key depends on the other."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ablate.report._seeds import complete_rows, require_columns

ANOVA_TERMS = ("row", "col", "interaction")
# Residual SS below this share of the total SS counts as none (rounding, not noise): F undefined.
_NO_VARIANCE = 1e-12


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


def _grid_values(
    trials: pd.DataFrame, metric: str, row_key: str, col_key: str
) -> tuple[list[Any], list[Any], pd.DataFrame]:
    """The row and column levels and one row (i, j, cell, seed, value) per COMPLETE seed.

    Levels are the key values of every trial (any state), in order of first appearance; i and
    j index them. Raises if two cells fall on the same (row, col) pair.
    """
    require_columns(trials, ["number", "state", "cell", "seed", metric, row_key, col_key])
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
    values = complete_rows(coded, metric)[["i", "j", "cell", "seed", "value"]]
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
