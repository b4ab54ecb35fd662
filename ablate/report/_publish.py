"""Putting a written report into MLflow: cell aggregates on the cell runs, files on the study
run."""

from __future__ import annotations

import math

from ablate.report._build import Report
from ablate.spec import Study
from ablate.track import RunTree, log_cell_aggregates, log_study_artifacts

_AGGREGATES = ("n", "mean", "std", "ci_low", "ci_high", "diff", "p_value", "p_holm")


def publish(report: Report, study: Study, tree: RunTree) -> None:
    """Cell runs get `<metric>/mean`, `/std`, CI, diff and p-values; the study run gets the
    report's files and ends FINISHED once every (cell, seed) is done."""
    metric = study.spec.metric.name
    aggregates = {}
    finished = []
    for _, row in report.summary.iterrows():
        values = {f"{metric}/{k}": float(row[k]) for k in _AGGREGATES if k in row}
        aggregates[str(row["cell"])] = {k: v for k, v in values.items() if not math.isnan(v)}
        planned = report.planned.get(str(row["cell"]), len(study.spec.sweep.seeds))
        if int(row["n"]) + int(row.get("diverged", 0)) >= planned:
            finished.append(str(row["cell"]))
    log_cell_aggregates(tree, aggregates, finished)
    log_study_artifacts(
        tree, report.files, report.folder, finished=len(finished) == len(aggregates)
    )
