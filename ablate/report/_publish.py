"""Putting a written report into MLflow: cell aggregates on the cell runs, files on the study
run."""

from __future__ import annotations

import math

import optuna

from ablate.report._build import Report
from ablate.spec import Study
from ablate.track import RunTree, log_cell_aggregates, log_study_artifacts

_AGGREGATES = ("n", "mean", "std", "ci_low", "ci_high", "diff", "p_value", "p_holm")


def run_tree_of(ostudy: optuna.Study, tracking_uri: str | None = None) -> RunTree | None:
    """The MLflow run tree `ablate run` recorded with the study, if any."""
    attrs = ostudy.user_attrs.get("mlflow")
    if attrs is None:
        return None
    return RunTree(
        tracking_uri or attrs["tracking_uri"],
        attrs["experiment_id"],
        attrs["study_run_id"],
        attrs["cell_run_ids"],
    )


def publish(report: Report, study: Study, tree: RunTree) -> None:
    """Cell runs get `<metric>/mean`, `/std`, CI, diff and p-values; the study run gets the
    report's files and ends FINISHED once every (cell, seed) is done."""
    metric = study.spec.metric.name
    seeds = len(study.spec.sweep.seeds)
    aggregates = {}
    finished = []
    for _, row in report.summary.iterrows():
        values = {f"{metric}/{k}": float(row[k]) for k in _AGGREGATES if k in row}
        aggregates[str(row["cell"])] = {k: v for k, v in values.items() if not math.isnan(v)}
        if int(row["n"]) + int(row.get("diverged", 0)) >= seeds:
            finished.append(str(row["cell"]))
    log_cell_aggregates(tree, aggregates, finished)
    log_study_artifacts(
        tree, report.files, report.folder, finished=len(finished) == len(aggregates)
    )
