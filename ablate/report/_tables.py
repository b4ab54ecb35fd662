"""A study's trial records as the long tables the statistics and plots read: the trials table
(trials.csv, plus each trial's `Outcome`), the per-epoch history, the gradient-flow samples and
the auxiliary weight's schedule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ablate.study import Outcome, TrialRecord
from ablate.study_file import Study
from ablate.urls import mask_secrets

# trials.csv's first columns; `outcome` (the trial's `Outcome`, None while pending) is what the
# statistics read, `state` its name for people; only `state` is written
TRIAL_COLUMNS = ("number", "state", "outcome", "cell", "seed")


def trials_table(records: Sequence[TrialRecord], study: Study) -> pd.DataFrame:
    """One row per trial ablate enqueued: its state, cell, seed, swept values and results."""
    keys = study.keys
    rows: list[dict[str, Any]] = []
    for r in records:
        row: dict[str, Any] = {
            "number": r.number,
            "state": r.state,
            "outcome": r.outcome,
            "cell": r.cell,
            "seed": r.seed,
        }
        row.update({k: r.overrides.get(k) for k in keys})
        row.update(r.result.final)
        row.update({f"best/{k}": v for k, v in r.result.best.items()})
        row["duration_s"] = r.result.duration_s
        row["mlflow_run_id"] = r.mlflow_run_id
        row["error"] = mask_secrets(r.error) if r.error else r.error
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else [*TRIAL_COLUMNS, *keys])


def history_table(records: Sequence[TrialRecord]) -> pd.DataFrame:
    """Per-epoch metrics of every COMPLETE trial, long: cell, seed, epoch, metric columns."""
    rows = []
    for r in records:
        if r.outcome is Outcome.COMPLETE:
            for epoch, metrics in enumerate(r.result.history, start=1):
                rows.append({"cell": r.cell, "seed": r.seed, "epoch": epoch, **metrics})
    return pd.DataFrame(rows)


def gradient_table(records: Sequence[TrialRecord]) -> pd.DataFrame:
    """Gradient-flow samples of every COMPLETE trial, long: cell, seed, progress, layer, value."""
    rows = []
    for r in records:
        total = r.result.total_steps
        if r.outcome is not Outcome.COMPLETE or not total:
            continue
        for iteration, layers in r.result.gradients:
            rows += [
                {
                    "cell": r.cell,
                    "seed": r.seed,
                    "progress": iteration / total,
                    "layer": layer,
                    "value": value,
                }
                for layer, value in layers.items()
            ]
    return pd.DataFrame(rows, columns=["cell", "seed", "progress", "layer", "value"])


def aux_weight_series(study: Study, cells: Sequence[str], points: int = 101) -> pd.DataFrame:
    """α_t against training progress for each of `cells` whose recipe is known up front,
    computed from the recipes (exactly what `fit` uses), long: cell, progress, weight. Empty
    when no cell's schedule moves the weight."""
    known = [study.recipes[c].loss.aux for c in cells if c in study.recipes]
    if all(aux.schedule == "constant" for aux in known):  # nothing moves: no torch to import
        return pd.DataFrame(columns=["cell", "progress", "weight"])
    from ablate.losses.aux import aux_weight_at

    rows = []
    for cell in cells:
        if cell not in study.recipes:
            continue
        aux = study.recipes[cell].loss.aux
        for i in range(points):
            t = i / (points - 1)
            weight = aux_weight_at(aux.schedule, aux.weight, t, until=aux.until, gamma=aux.gamma)
            rows.append({"cell": cell, "progress": t, "weight": weight})
    frame = pd.DataFrame(rows, columns=["cell", "progress", "weight"])
    moving = frame.groupby("cell")["weight"].nunique() > 1
    return frame if moving.any() else frame.iloc[0:0]
