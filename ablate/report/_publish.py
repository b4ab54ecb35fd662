"""Putting a written report into MLflow: cell aggregates on the cell runs, files on the study
run."""

from __future__ import annotations

import math

from ablate.names import metric_info
from ablate.report._build import Report
from ablate.report._summary import SummaryRow
from ablate.study_file import Study
from ablate.track import RunTree, log_cell_aggregates, log_study_artifacts

# summary columns in the metric's unit, shown scaled and named with it; then plain numbers
_IN_UNIT = ("mean", "std", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "mde")
_PLAIN = ("n", "p_value", "p_holm")
_UNIT_NAMES = {"%": "pct"}  # MLflow's metric names take no "%"


def aggregate_names(metric: str) -> dict[str, str]:
    """Summary column -> the name of its metric on a cell run: `<metric>/<column>_<unit>` for
    a value in the metric's display unit (`val/mIoU/mean_pct` = 43.2 for a mean mIoU of
    0.432, in % points like the report; `val/loss/mean_nats`; no suffix for a metric without a
    unit), `<metric>/<column>` for the seed count and the p-values."""
    unit = metric_info(metric).unit
    suffix = f"_{_UNIT_NAMES.get(unit, unit)}" if unit else ""
    return {
        **{k: f"{metric}/{k}{suffix}" for k in _IN_UNIT},
        **{k: f"{metric}/{k}" for k in _PLAIN},
    }


def cell_aggregates(row: SummaryRow, metric: str) -> dict[str, float]:
    """A summary row's values as a cell run's metrics (`aggregate_names`), values in the
    metric's unit scaled to its display unit; NaN values left out."""
    scale = metric_info(metric).scale
    columns = row.columns()
    values = {}
    for column, name in aggregate_names(metric).items():
        if not math.isnan(value := float(columns[column])):
            values[name] = value * scale if column in _IN_UNIT else value
    return values


def publish(report: Report, study: Study, tree: RunTree) -> None:
    """Cell runs get the study metric's aggregates over seeds (`cell_aggregates`: mean, std,
    CI, the difference from the baseline with its CI, the MDE, p-values); the study run gets
    the report's files, the claims' verdicts as tags (`claim_tags`) and ends FINISHED once
    every (cell, seed) is done."""
    metric = study.spec.metric.name
    aggregates = {}
    finished = []
    for row in report.rows:
        aggregates[row.cell] = cell_aggregates(row, metric)
        planned = report.planned.get(row.cell, len(study.spec.sweep.seed_list))
        if row.level.n + row.diverged >= planned:
            finished.append(row.cell)
    log_cell_aggregates(tree, aggregates, finished)
    log_study_artifacts(
        tree,
        report.files,
        report.folder,
        finished=len(finished) == len(aggregates),
        tags={**report.provenance.as_tags(), **claim_tags(report)},
    )


def claim_tags(report: Report) -> dict[str, str]:
    """Each declared claim's verdict as a study-run tag, `ablate.claim.<i>` = "supported",
    "not supported" or "inconclusive: …" (claims.csv, logged beside it, has the numbers)."""
    return {f"ablate.claim.{c.claim.index}": c.text for c in report.claims}
