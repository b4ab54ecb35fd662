"""Per-cell summaries: the metric over each cell's COMPLETE seeds, its paired comparison with the
baseline, what that comparison could detect (MDE), its health and divergence rate; and per-class
IoU differences from the baseline."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from ablate.names import metric_info
from ablate.report._health import cell_health, never_learned
from ablate.report._paired import (
    cohens_d_av,
    holm,
    level_stats,
    mean_difference,
    no_comparison,
    paired_differences,
    paired_stats,
)
from ablate.report._power import mde, seeds_needed
from ablate.report._seeds import cell_order, empty_series, require_columns, seed_values
from ablate.report._verdict import verdict_of

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
    "d_av",
    "mde",
    "seeds_needed",
    "collapsed",
    "late_gain",
    "converged",
    "health",
    "verdict",
)

# Outcome of one (cell, seed), best first: a seed retried after a crash counts by its best try.
_OUTCOME_RANK = {"COMPLETE": 0, "DIVERGED": 1, "FAIL": 2}
_IOU_PREFIX = "val/iou/"


def summarize(
    trials: pd.DataFrame,
    *,
    metric: str,
    goal: Literal["maximize", "minimize"],
    baseline: str,
    keys: Sequence[str],
    cells: Sequence[str] | None = None,
    history: pd.DataFrame | None = None,
    effect: float | None = None,
    references: Mapping[str, str] | None = None,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """One row per cell: the metric over its COMPLETE seeds and its paired comparison with baseline.

    `references` maps a cell to the cell it is compared with instead of the baseline (a
    cumulative design: the row above); then a `reference` column names each row's.

    Cells follow `cells` when given (a listed cell with no completed trial still gets a row, with
    n = 0 and NaNs, so a report can show it as missing), else their first appearance in `trials`.
    A verdict of "better" or "worse" needs p_holm < 1 - confidence (0.05 by default); a cell
    whose models collapsed or diverged, or whose curves still rose (from `history`, the long
    per-evaluation table), is "inconclusive" instead of "no detectable difference".

    `mde` is the difference the paired t-test detects with 80 % power at the corrected level
    α/m (m the cells tested: Holm's first, strictest step), from the cell's seed spread;
    `seeds_needed`, with `effect` (the smallest difference that matters, in display units such
    as IoU points), is how many seeds would detect it. The baseline row carries its own n as
    n_pairs and NaN in every comparison column.
    """
    require_columns(trials, ["number", "state", "cell", "seed", metric, *keys])
    if goal not in ("maximize", "minimize"):
        raise ValueError(f"goal must be 'maximize' or 'minimize', not {goal!r}")
    order = cell_order(trials, cells)
    values = seed_values(trials, metric)
    if baseline not in order and baseline not in set(trials["cell"]):
        raise ValueError(f"baseline cell {baseline!r} is not among the cells {order}")
    against = {cell: baseline for cell in order if cell != baseline} | dict(references or {})
    key_values = _key_values(trials, keys)
    outcomes = _outcome_counts(trials)
    health = cell_health(
        trials,
        history if history is not None else pd.DataFrame(),
        metric=metric,
        goal=goal,
        cells=order,
    )

    rows = []
    for cell in order:
        own = values.get(cell, empty_series())
        row: dict[str, Any] = {"cell": cell}
        row.update(key_values.get(cell, dict.fromkeys(keys)))
        row.update(level_stats(own.to_numpy(), confidence))
        row.update(_divergence(outcomes, cell))
        if cell == baseline:
            row.update(no_comparison(len(own)))
        else:
            base = values.get(against[cell], empty_series())
            diffs = paired_differences(own, base)
            row.update(paired_stats(diffs, confidence, n_boot, rng_seed))
            paired = pd.concat({"c": own, "b": base}, axis=1, join="inner")
            row["d_av"] = cohens_d_av(diffs, paired["c"].to_numpy(), paired["b"].to_numpy())
            row["_sd"] = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan
        row.update(health[cell])
        rows.append(row)

    summary = pd.DataFrame(rows, columns=["cell", *keys, *SUMMARY_STATS, "_sd"])
    compared = (summary["cell"] != baseline).to_numpy()
    p_holm = np.full(len(summary), np.nan)
    p_holm[compared] = holm(summary.loc[compared, "p_value"].to_numpy(dtype=float))
    summary["p_holm"] = p_holm
    alpha = 1.0 - confidence
    tested = max(1, int(summary.loc[compared, "p_value"].notna().sum()))
    sds = summary["_sd"].to_numpy(dtype=float)
    n_pairs = summary["n_pairs"].to_numpy()
    summary["mde"] = [
        mde(sd, int(k), alpha / tested) if c else math.nan
        for sd, k, c in zip(sds, n_pairs, compared, strict=True)
    ]
    scale = metric_info(metric).scale
    summary["seeds_needed"] = [
        seeds_needed(effect / scale, sd, alpha / tested) if c and effect else math.nan
        for sd, c in zip(sds, compared, strict=True)
    ]
    summary = summary.drop(columns="_sd")
    by_cell = {row["cell"]: row for row in summary.to_dict("records")}
    summary["verdict"] = [
        verdict_of(
            row,
            by_cell.get(against.get(row["cell"], baseline)),
            baseline=baseline,
            goal=goal,
            alpha=alpha,
            metric=metric,
            reference=against.get(row["cell"]),
        )
        for row in summary.to_dict("records")
    ]
    if references:
        summary["reference"] = [against.get(cell, "") for cell in summary["cell"]]
    _add_test(summary, trials, metric, against)
    return summary


def _add_test(
    summary: pd.DataFrame, trials: pd.DataFrame, metric: str, against: Mapping[str, str]
) -> None:
    """`test_mean` and `test_diff` (mean paired difference from the cell's reference, the
    baseline unless `against` says otherwise) of the metric on the held-out test split, where
    the trials measured one. Verdicts stay on `metric`: the test split is where a choice made
    on validation is checked, not made."""
    test = "test/" + metric.removeprefix("val/")
    if not metric.startswith("val/") or test not in trials.columns:
        return
    values = seed_values(trials, test)
    means, diffs = [], []
    for cell in summary["cell"]:
        own = values.get(cell, empty_series())
        means.append(float(own.mean()) if len(own) else np.nan)
        if cell not in against:
            diffs.append(np.nan)
            continue
        paired = paired_differences(own, values.get(against[cell], empty_series()))
        diffs.append(float(np.mean(paired)) if len(paired) else np.nan)
    summary["test_mean"] = means
    summary["test_diff"] = diffs


def per_class_diff(
    trials: pd.DataFrame,
    *,
    baseline: str,
    class_columns: Sequence[str],
    cells: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Long table (cell, class, diff, ci_low, ci_high, n_pairs, p_value, p_holm, never_learned)
    of per-class IoU minus baseline.

    Shows *where* a trick helps: a small mIoU change can hide a large gain on thin or rare
    classes. Pairs are by seed over seeds where both cells have a finite value for that class
    (a class absent from a validation set has a NaN IoU). `p_value` is the paired t-test and
    `p_holm` corrects it over the classes of one cell (testing 19 classes at 0.05 would flag one
    by chance). `never_learned` marks a class with IoU 0 in every COMPLETE trial of the study,
    whose difference of 0 is no evidence of anything. Non-baseline cells only.
    """
    require_columns(trials, ["number", "state", "cell", "seed", *class_columns])
    order = [cell for cell in cell_order(trials, cells) if cell != baseline]
    unlearned = set(never_learned(trials[["number", "state", "cell", "seed", *class_columns]]))
    rows = []
    for column in class_columns:
        values = seed_values(trials, column)
        base = values.get(baseline, empty_series())
        name = column.removeprefix(_IOU_PREFIX)
        for cell in order:
            diffs = paired_differences(values.get(cell, empty_series()), base)
            row = mean_difference(diffs, confidence)
            rows.append(
                {
                    "cell": cell,
                    "class": name,
                    "diff": row["estimate"],
                    "ci_low": row["ci_low"],
                    "ci_high": row["ci_high"],
                    "n_pairs": row["n"],
                    "p_value": row["p_value"] if name not in unlearned else math.nan,
                    "never_learned": name in unlearned,
                }
            )
    columns = [*_PER_CLASS_COLUMNS]
    table = pd.DataFrame(rows, columns=[c for c in columns if c != "p_holm"])
    table["p_holm"] = np.nan
    for _, group in table.groupby("cell", sort=False):
        table.loc[group.index, "p_holm"] = holm(group["p_value"].to_numpy(dtype=float))
    table = table[columns]
    # Group by cell, classes in the order given, so a reader scans one cell at a time.
    table["_cell_pos"] = table["cell"].map({cell: i for i, cell in enumerate(order)})
    table = table.sort_values("_cell_pos", kind="stable").drop(columns="_cell_pos")
    return table.reset_index(drop=True)


_PER_CLASS_COLUMNS = (
    "cell",
    "class",
    "diff",
    "ci_low",
    "ci_high",
    "n_pairs",
    "p_value",
    "p_holm",
    "never_learned",
)


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
