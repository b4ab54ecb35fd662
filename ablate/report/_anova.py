"""Two-key grids: the metric tabulated over (row key, column key) and a two-way ANOVA with
interaction, the seed as a block, asking whether the effect of one key depends on the other."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

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
    """Two-way ANOVA with interaction over every COMPLETE result of a two-key grid.

    Does the effect of one key depend on the other? The model is
    y_ijk = mu + a_i + b_j + (ab)_ij [+ s_k] + e_ijk with rows i, columns j and seeds k as
    replicates. With `block_seed` (the default) the seed is also a block: it fixes the
    initialisation and the data order of every cell, so results sharing a seed share noise (why
    `summarize` pairs by seed), and a block term s_k takes that shared part out of the error,
    as in a randomised complete block design with factorial treatments (Montgomery, Design and
    Analysis of Experiments, ch. 5, "Blocking in a factorial design"). It costs error degrees
    of freedom and assumes the seed effect is additive. Without it the seeds are plain
    replicates (a completely randomised design).

    The model is fitted by least squares (statsmodels) on every observed result, so a seed
    missing from one pair costs that one result, not the seed's whole row. Sums of squares are
    Type III with sum-to-zero contrasts: each term is tested after every other, its levels
    weighted equally; on a balanced grid they equal the textbook closed forms. Where a term
    cannot be tested, F and p are NaN and `note` says why: a pair with no result at all (the
    interaction is then not estimable), no error degrees of freedom, one level of a key, or no
    residual variance.

    Returns a flat dict: `F_<term>`, `p_<term>`, `df_<term>`, `ss_<term>` for the terms
    "row", "col" and "interaction"; `ss_seed`, `df_seed` (0 without blocking), `ss_error`,
    `df_error`; `n_rows`, `n_cols`, `n_seeds` (distinct seeds), `n_results`, `n_dropped`
    (always 0: kept for readers of older reports), `blocked` and `note` ("" when all went well).
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
        "n_seeds": int(values["seed"].nunique()),
        "n_results": len(values),
        "n_dropped": 0,
        "blocked": block_seed,
        "note": "",
    }
    filled = set(zip(values["i"], values["j"], strict=True))
    empty = [
        f"{row_key}={rows[i]}, {col_key}={cols[j]}"
        for i in range(len(rows))
        for j in range(len(cols))
        if (i, j) not in filled
    ]
    if empty or not len(values):
        result["note"] = "no completed seed for " + ("; ".join(empty) or "any pair")
        return result
    notes = []
    if min(len(rows), len(cols)) < 2:
        notes.append("a key with one level has no effect to test")
    if max(len(rows), len(cols)) > 1:
        fitted = _anova(values, rows=len(rows) > 1, cols=len(cols) > 1, block_seed=block_seed)
        if block_seed and not fitted["blocked"]:
            notes.append("no seed has results in two pairs: the seed is not a block here")
        result.update(fitted)
        if result["df_error"] == 0:
            notes.append("no error degrees of freedom (one result per pair)")
        elif not result["ss_error"] > _NO_VARIANCE * result["ss_total"]:
            notes.append("no residual variance: F is undefined")
        del result["ss_total"]
    missing = len(rows) * len(cols) * result["n_seeds"] - len(values)
    if missing > 0 and not notes:
        notes.append(f"unbalanced: {missing} (pair, seed) result(s) missing, all others used")
    result["note"] = "; ".join(notes)
    return result


def _grid_values(
    trials: pd.DataFrame, metric: str, row_key: str, col_key: str
) -> tuple[list[Any], list[Any], pd.DataFrame]:
    """The row and column levels and one row (i, j, cell, seed, value) per COMPLETE seed.

    Levels are the key values of every trial (any state), in order of first appearance; i and
    j index them. Raises if two cells fall on the same (row, col) pair.
    """
    require_columns(trials, ["number", "outcome", "cell", "seed", metric, row_key, col_key])
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


def _anova(values: pd.DataFrame, *, rows: bool, cols: bool, block_seed: bool) -> dict[str, Any]:
    """Type III ANOVA of `value` on row i × column j (+ seed block) by least squares; a key
    with one level (`rows` or `cols` False) leaves its terms out. A seed block that the design
    cannot separate from the pairs (no seed spans two pairs) is dropped: `blocked` says which."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    names = {"row": "C(i, Sum)", "col": "C(j, Sum)", "interaction": "C(i, Sum):C(j, Sum)"}
    used = {"row": rows, "col": cols, "interaction": rows and cols}
    data = values.astype({"i": int, "j": int})
    terms = [names[t] for t in ("row", "col", "interaction") if used[t]]
    blocked = block_seed and values["seed"].nunique() > 1
    for block in (True, False) if blocked else (False,):
        formula = "value ~ " + " + ".join([*terms, *(["C(seed, Sum)"] if block else [])])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rank deficiency is checked just below
            fit = smf.ols(formula, data=data).fit()
        if fit.model.exog.shape[1] == int(fit.model.rank):
            break
    out: dict[str, Any] = {
        "blocked": block,
        "ss_seed": 0.0,
        "df_seed": 0,
        "ss_error": float(fit.ssr),
        "df_error": round(fit.df_resid),
        "ss_total": float(fit.centered_tss),
    }
    if out["df_error"] == 0:  # a saturated model: nothing to test, no F table to read
        return out
    testable = out["ss_error"] > _NO_VARIANCE * out["ss_total"]
    with warnings.catch_warnings():  # no error df: statsmodels divides by zero, we report NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        table = anova_lm(fit, typ=3)
    if block:
        out["ss_seed"] = float(table.loc["C(seed, Sum)", "sum_sq"])
        out["df_seed"] = int(table.loc["C(seed, Sum)", "df"])
    for term, name in names.items():
        if not used[term]:
            continue
        out[f"ss_{term}"] = float(table.loc[name, "sum_sq"])
        out[f"df_{term}"] = int(table.loc[name, "df"])
        if testable:
            out[f"F_{term}"] = float(table.loc[name, "F"])
            out[f"p_{term}"] = float(table.loc[name, "PR(>F)"])
    return out
