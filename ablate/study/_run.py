"""`ablate run`: create or resume a study, drain its queue with workers, write the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState
from rich.console import Console

from ablate.spec import Study
from ablate.study._pool import plan_devices, run_workers
from ablate.study._queue import DONE, Pair, sync_queue
from ablate.study._search import (
    CONFIRMATION,
    choose_confirmation,
    confirmation_pairs,
    search_pairs,
)
from ablate.study._storage import (
    create_or_load,
    default_storage_url,
    record_run_tree,
    trial_key,
)
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


def design_pairs(study: Study, ostudy: optuna.Study | None = None) -> list[Pair]:
    """Every (cell, seed) the study trains: the grid and variants on every seed; for a search,
    each configuration once, the baseline on every seed and, once chosen (which needs the
    storage, `ostudy`), the confirmed configurations on the other seeds."""
    if study.search is None:
        return [Pair(c.name, s, c.overrides) for c in study.cells for s in study.spec.sweep.seeds]
    confirmation = confirmation_pairs(study, ostudy) if ostudy is not None else []
    return search_pairs(study) + confirmation


def planned_seeds(study: Study, ostudy: optuna.Study) -> dict[str, int]:
    """How many seeds each cell is to train on (a search's cells differ from one another)."""
    planned: dict[str, int] = {}
    for pair in design_pairs(study, ostudy):
        planned[pair.cell] = planned.get(pair.cell, 0) + 1
    return planned


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
    choose_confirmation(study, ostudy)  # a search that ended in an earlier run
    queued = sync_queue(ostudy, design_pairs(study, ostudy))

    def build_tree() -> RunTree:
        tree = prepare(study, where)
        record_run_tree(ostudy, tree)
        return tree

    chosen = CONFIRMATION in ostudy.user_attrs
    later = 0 if chosen else max(0, study.n_trials - queued.total)  # a search's confirmation
    to_train = queued.enqueued + queued.pending + later
    total = queued.total + later
    if to_train == 0:
        build_tree()  # the report is logged to the study run
        console.print(f"All {total} trials of {study.spec.name!r} are complete; nothing to train.")
    else:
        plan = plan_devices(devices, workers)[: max(1, to_train)]
        console.print(
            f"{study.spec.name}: {total} trials ({study.describe()}), {queued.done} "
            f"already done, {to_train} to train on {len(plan)} worker(s): "
            f"{', '.join(d for d, _ in plan)}"
        )
        config = WorkerConfig(study, where.storage_url, where.tracking_uri, "cpu", 1, 0)
        run_workers(config, plan, to_train, console, build_tree)

    by_pair: dict[tuple[str, int], set[TrialState]] = {}
    for t in ostudy.get_trials(deepcopy=False):
        key = trial_key(t)
        if key is not None:
            by_pair.setdefault(key, set()).add(t.state)
    pairs = design_pairs(study, ostudy)
    failed = [
        (p.cell, p.seed) for p in pairs if not by_pair.get((p.cell, p.seed), set()) & set(DONE)
    ]
    return RunOutcome(len(pairs), to_train, failed)
