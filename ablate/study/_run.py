"""`ablate run`: create or resume a study, drain its queue with workers, write the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from optuna.trial import TrialState
from rich.console import Console

from ablate.spec import Study
from ablate.study._pool import plan_devices, run_workers
from ablate.study._queue import DONE, sync_queue
from ablate.study._storage import create_or_load, default_storage_url, trial_key
from ablate.study._worker import WorkerConfig
from ablate.track import RunTree, default_tracking_uri, ensure_run_tree, flatten


@dataclass(frozen=True)
class Locations:
    """Where a study's state lives; defaults under the results folder."""

    results: Path
    storage_url: str
    tracking_uri: str

    @classmethod
    def resolve(
        cls, results: Path, name: str, storage: str | None, tracking: str | None
    ) -> Locations:
        return cls(
            results,
            storage or default_storage_url(results, name),
            tracking or default_tracking_uri(results),
        )


@dataclass(frozen=True)
class RunOutcome:
    total: int
    trained: int
    failed: list[tuple[str, int]]  # (cell, seed) pairs whose every try failed


def design_pairs(study: Study) -> list[tuple[str, int, dict[str, object]]]:
    return [(c.name, s, dict(c.overrides)) for c in study.cells for s in study.spec.sweep.seeds]


def prepare(study: Study, where: Locations) -> RunTree:
    """Create the MLflow experiment, the study run and the cell runs (idempotent)."""
    return ensure_run_tree(
        where.tracking_uri,
        study.spec.name,
        [c.name for c in study.cells],
        where.results / "mlartifacts" if where.tracking_uri.startswith("sqlite") else None,
        {
            **flatten(study.spec.base.model_dump(mode="json")),
            "study_file": str(study.path),
            "seeds": study.spec.sweep.seeds,
            "cells": len(study.cells),
            "metric": study.spec.metric.name,
        },
    )


def run_study(
    study: Study,
    where: Locations,
    devices: str | None,
    workers: int | None,
    console: Console,
) -> RunOutcome:
    (where.results / study.spec.name).mkdir(parents=True, exist_ok=True)
    ostudy = create_or_load(study, where.storage_url)
    pairs = design_pairs(study)
    queued = sync_queue(ostudy, pairs)
    tree = prepare(study, where)
    ostudy.set_user_attr(
        "mlflow",
        {
            "tracking_uri": tree.tracking_uri,
            "experiment_id": tree.experiment_id,
            "study_run_id": tree.study_run_id,
            "cell_run_ids": dict(tree.cell_run_ids),
        },
    )
    to_train = queued.enqueued + queued.pending
    if to_train == 0:
        console.print(
            f"All {queued.total} trials of {study.spec.name!r} are complete; nothing to train."
        )
    else:
        plan = plan_devices(devices, workers)[: max(1, to_train)]
        console.print(
            f"{study.spec.name}: {queued.total} trials ({len(study.cells)} cells × "
            f"{len(study.spec.sweep.seeds)} seeds), {queued.done} already done, {to_train} to "
            f"train on {len(plan)} worker(s): {', '.join(d for d, _ in plan)}"
        )
        config = WorkerConfig(study, where.storage_url, tree, "cpu", 1, 0)
        run_workers(config, plan, to_train, console)

    by_pair: dict[tuple[str, int], set[TrialState]] = {}
    for t in ostudy.get_trials(deepcopy=False):
        key = trial_key(t)
        if key is not None:
            by_pair.setdefault(key, set()).add(t.state)
    failed = [
        (cell, seed) for cell, seed, _ in pairs if not by_pair.get((cell, seed), set()) & set(DONE)
    ]
    return RunOutcome(queued.total, to_train, failed)
