"""Per-cell summaries: the metric over each cell's COMPLETE seeds, its paired comparison with the
baseline, what that comparison could detect (MDE), its health and divergence rate; and per-class
IoU differences from the baseline."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from ablate.design import Comparison
from ablate.names import metric_info
from ablate.report._health import CellHealth, cell_health, never_learned
from ablate.report._paired import (
    Level,
    Paired,
    holm,
    level_stats,
    mean_difference,
    paired_differences,
    paired_stats,
)
from ablate.report._power import mde, mde_interval, seeds_needed
from ablate.report._seeds import cell_order, empty_series, require_columns, seed_values
from ablate.report._verdict import Kind, Verdict, verdict_of
from ablate.study import Outcome

_OPTIONAL = {"optional": True}  # a column only studies that have it get (field metadata)


@dataclass(frozen=True)
class SummaryRow:
    """One cell of summary.csv, typed: its swept values, its metric over seeds, its diverged
    seeds, its paired comparison, its health checks and the verdict built from them. The
    columns of summary.csv are these fields in order, nested ones flattened (`columns`)."""

    cell: str
    values: Mapping[str, Any] = field(default_factory=dict)  # swept key -> the cell's value
    level: Level = field(default_factory=Level)
    diverged: int = 0  # seeds whose loss turned NaN/inf (counted, not in `level`)
    divergence_rate: float = math.nan  # of the seeds that ended, the share that diverged
    paired: Paired = field(default_factory=Paired)
    checks: CellHealth = field(default_factory=CellHealth)
    verdict: Verdict = field(default_factory=lambda: Verdict(Kind.MISSING))
    # the cell it is compared with, where a design names one ("" for the baseline)
    reference: str = field(default="", metadata=_OPTIONAL)
    # on the held-out test split: the mean, and the mean paired difference from `reference`
    # with its paired t-interval
    test_mean: float = field(default=math.nan, metadata=_OPTIONAL)
    test_diff: float = field(default=math.nan, metadata=_OPTIONAL)
    test_diff_ci_low: float = field(default=math.nan, metadata=_OPTIONAL)
    test_diff_ci_high: float = field(default=math.nan, metadata=_OPTIONAL)
    # adaptive seeds: the seeds its sequential test used, and why it stopped
    seeds_used: float = field(default=math.nan, metadata=_OPTIONAL)
    stopped: str = field(default="", metadata=_OPTIONAL)

    def columns(self) -> dict[str, Any]:
        """The row as summary.csv writes it (every optional column too): field by field, a
        nested record's fields in its place, the verdict as its text."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "values":
                out.update(value)
            elif isinstance(value, Verdict):
                out[f.name] = value.text
            elif is_dataclass(value) and not isinstance(value, type):
                out.update(asdict(value))
            else:
                out[f.name] = value
        return out


# the columns a study has only when it needs them (plain fields), and those every summary has
# after the cell and its swept keys, in order
_OPTIONAL_COLUMNS = tuple(f.name for f in fields(SummaryRow) if f.metadata.get("optional"))
SUMMARY_STATS = tuple(
    c for c in SummaryRow("").columns() if c != "cell" and c not in _OPTIONAL_COLUMNS
)


@dataclass(frozen=True)
class Summary:
    """summary.csv, typed: a row per cell in the comparison's order. The report's text, the
    console and MLflow read these rows; `frame` is the table written to summary.csv and drawn
    by the plots. `optional` names the optional columns this study has (a design with
    references, a held-out test split, adaptive seeds)."""

    rows: tuple[SummaryRow, ...]
    keys: tuple[str, ...]
    metric: str
    baseline: str
    optional: frozenset[str] = frozenset()

    def __iter__(self) -> Iterator[SummaryRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, cell: str) -> SummaryRow | None:
        return next((row for row in self.rows if row.cell == cell), None)

    def only(self, cells: Sequence[str]) -> Summary:
        """The rows of `cells`, in the summary's order."""
        wanted = set(cells)
        return replace(self, rows=tuple(row for row in self.rows if row.cell in wanted))

    def frame(self) -> pd.DataFrame:
        """The table summary.csv holds: cell, one column per swept key, `SUMMARY_STATS`,
        then the optional columns this study has."""
        optional = [c for c in _OPTIONAL_COLUMNS if c in self.optional]
        columns = ["cell", *self.keys, *SUMMARY_STATS, *optional]
        return pd.DataFrame([row.columns() for row in self.rows], columns=columns)


# Outcome of one (cell, seed), best first: a seed retried after a crash counts by its best try.
_OUTCOME_RANK = {Outcome.COMPLETE: 0, Outcome.DIVERGED: 1, Outcome.FAILED: 2}
_IOU_PREFIX = "val/iou/"


def build_summary(
    trials: pd.DataFrame,
    comparison: Comparison,
    *,
    metric: str,
    goal: Literal["maximize", "minimize"],
    keys: Sequence[str],
    history: pd.DataFrame | None = None,
    effect: float | None = None,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    rng_seed: int = 0,
) -> Summary:
    """One row per cell of `comparison.cells` (a cell with no completed trial still gets one,
    n = 0, so a report shows it as missing): the metric over its COMPLETE seeds and its paired
    comparison with the baseline, or with the cell `comparison.references` names.

    A verdict of "better" or "worse" needs p_holm < 1 - confidence (0.05 by default), or with
    adaptive seeds the sequential test's decision (`comparison.sequential`); a cell whose
    models collapsed or diverged, or whose curves still rose (from `history`, the long
    per-evaluation table), is "inconclusive" instead of "no detectable difference".

    `mde` is the difference the paired t-test detects with 80 % power at the corrected level
    α/m (m the cells tested: Holm's first, strictest step), from the cell's seed spread;
    `seeds_needed`, with `effect` (the smallest difference that matters, in display units such
    as IoU points), is how many seeds would detect it. The baseline row carries its own n as
    n_pairs and NaN in every comparison column.
    """
    require_columns(trials, ["number", "outcome", "cell", "seed", metric, *keys])
    if goal not in ("maximize", "minimize"):
        raise ValueError(f"goal must be 'maximize' or 'minimize', not {goal!r}")
    baseline = comparison.baseline
    order = cell_order(trials, comparison.cells)
    values = seed_values(trials, metric)
    if baseline not in order and baseline not in set(trials["cell"]):
        raise ValueError(f"baseline cell {baseline!r} is not among the cells {order}")
    against = {cell: baseline for cell in order if cell != baseline} | dict(comparison.references)
    key_values = _key_values(trials, keys)
    outcomes = _outcome_counts(trials)
    health = cell_health(
        trials,
        history if history is not None else pd.DataFrame(),
        metric=metric,
        goal=goal,
        cells=order,
        against=against,
        baseline=baseline,
    )

    tests = _test_values(order, trials, metric, against, confidence)
    rows, sds = [], []
    for cell in order:
        own = values.get(cell, empty_series())
        if cell == baseline:
            paired, sd = Paired(n_pairs=len(own)), math.nan
        else:
            base = values.get(against[cell], empty_series())
            base = base.drop(list(comparison.selected_on.get(cell, ())), errors="ignore")
            paired, sd = paired_stats(own, base, confidence, n_boot, rng_seed)
        diverged, rate = _divergence(outcomes, cell)
        test = (tests or {}).get(cell, _TestSplit())
        decision = comparison.sequential.get(cell)
        rows.append(
            SummaryRow(
                cell,
                key_values.get(cell, dict.fromkeys(keys)),
                level_stats(own.to_numpy(), confidence),
                diverged,
                rate,
                paired,
                health[cell],
                reference=against.get(cell, "") if comparison.references else "",
                test_mean=test.mean,
                test_diff=test.diff.mean,
                test_diff_ci_low=test.diff.ci_low,
                test_diff_ci_high=test.diff.ci_high,
                seeds_used=decision.n if decision else math.nan,
                stopped=decision.reason if decision else "",
            )
        )
        sds.append(sd)
    alpha = 1.0 - confidence
    rows = _corrected(
        rows, sds, baseline, alpha, effect / metric_info(metric).scale if effect else None
    )
    by_cell = {row.cell: row for row in rows}
    rows = [
        replace(
            row,
            verdict=verdict_of(
                row,
                by_cell.get(against.get(row.cell, baseline)),
                comparison=comparison,
                goal=goal,
                alpha=alpha,
                metric=metric,
            ),
        )
        for row in rows
    ]
    optional = {"reference"} if comparison.references else set()
    if tests is not None:
        optional |= {"test_mean", "test_diff", "test_diff_ci_low", "test_diff_ci_high"}
    if comparison.sequential:
        optional |= {"seeds_used", "stopped"}
    return Summary(tuple(rows), tuple(keys), metric, baseline, frozenset(optional))


def _corrected(
    rows: list[SummaryRow], sds: list[float], baseline: str, alpha: float, effect: float | None
) -> list[SummaryRow]:
    """The compared rows with what depends on how many cells are tested: p_holm (Holm over
    the compared cells), the MDE and the seeds `effect` (raw units) needs, both at α/m, and
    the MDE's 1 − α interval from the chi-square interval of the seed spread."""
    compared = [row.cell != baseline for row in rows]
    p_holm = iter(holm([row.paired.p_value for row, c in zip(rows, compared, strict=True) if c]))
    tested = max(
        1,
        sum(
            1 for r, c in zip(rows, compared, strict=True) if c and not math.isnan(r.paired.p_value)
        ),
    )
    level = alpha / tested
    out = []
    for row, c, sd in zip(rows, compared, sds, strict=True):
        if c:
            detectable = mde(sd, row.paired.n_pairs, level)
            low, high = mde_interval(detectable, row.paired.n_pairs, 1.0 - alpha)
            paired = replace(
                row.paired,
                p_holm=float(next(p_holm)),
                mde=detectable,
                mde_low=low,
                mde_high=high,
                seeds_needed=seeds_needed(effect, sd, level) if effect else math.nan,
            )
            row = replace(row, paired=paired)
        out.append(row)
    return out


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
    """summary.csv's table for `trials` compared with `baseline` (`build_summary`'s rows as a
    frame): cells in the order of `cells` when given, else of their first appearance;
    `references` maps a cell to the cell it is compared with instead of the baseline (a
    cumulative design: the row above), and then a `reference` column names each row's."""
    require_columns(trials, ["cell"])
    order = cell_order(trials, cells)
    comparison = Comparison(order, baseline, [], references=dict(references or {}))
    return build_summary(
        trials,
        comparison,
        metric=metric,
        goal=goal,
        keys=keys,
        history=history,
        effect=effect,
        confidence=confidence,
        n_boot=n_boot,
        rng_seed=rng_seed,
    ).frame()


@dataclass(frozen=True)
class _TestSplit:
    """A cell on the held-out test split: its mean over seeds, and its paired difference
    from its reference (mean and t-interval; empty for the baseline)."""

    mean: float = math.nan
    diff: Level = field(default_factory=Level)


def _test_values(
    cells: Sequence[str],
    trials: pd.DataFrame,
    metric: str,
    against: Mapping[str, str],
    confidence: float,
) -> dict[str, _TestSplit] | None:
    """Per cell, the mean of the metric on the held-out test split and its mean paired
    difference from the cell's reference with its Student-t interval (none for the baseline);
    None where the trials measured no test split. Verdicts stay on `metric`: the test split
    is where a choice made on validation is checked, not made."""
    test = "test/" + metric.removeprefix("val/")
    if not metric.startswith("val/") or test not in trials.columns:
        return None
    values = seed_values(trials, test)
    out = {}
    for cell in cells:
        own = values.get(cell, empty_series())
        mean = float(own.mean()) if len(own) else math.nan
        if cell not in against:
            out[cell] = _TestSplit(mean)
            continue
        paired = paired_differences(own, values.get(against[cell], empty_series()))
        out[cell] = _TestSplit(mean, level_stats(paired, confidence))
    return out


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
    require_columns(trials, ["number", "outcome", "cell", "seed", *class_columns])
    order = [cell for cell in cell_order(trials, cells) if cell != baseline]
    unlearned = set(never_learned(trials[["number", "outcome", "cell", "seed", *class_columns]]))
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
    """Per cell, how many seeds ended COMPLETE, DIVERGED and FAILED, each seed counted once."""
    rank = trials["outcome"].map(_OUTCOME_RANK)
    finished, rank = trials[rank.notna()], rank[rank.notna()].astype(int)
    best = rank.groupby([finished["cell"], finished["seed"]]).min()
    counts = best.groupby(level=0).value_counts().unstack(fill_value=0)
    return counts.reindex(columns=list(_OUTCOME_RANK.values()), fill_value=0)


def _divergence(outcomes: pd.DataFrame, cell: str) -> tuple[int, float]:
    """The cell's diverged seeds, and their share of its seeds that ended."""
    if cell not in outcomes.index:
        return 0, math.nan
    counts = outcomes.loc[cell]
    diverged = int(counts[_OUTCOME_RANK[Outcome.DIVERGED]])
    return diverged, diverged / int(counts.sum())
