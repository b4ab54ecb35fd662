"""`ablate run`: create or resume a study, drain its queue with workers, write the report."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from ablate.errors import SpecError, disk_refused
from ablate.study._locks import study_lock, tracking_lock
from ablate.study._optuna import cause_of, storage_fault
from ablate.study._pool import plan_devices, run_workers
from ablate.study._queue import Queue, QueueState
from ablate.study._reconcile import reconcile_and_say
from ablate.study._storage import (
    create_or_load,
    default_storage_url,
    holds_trials,
    record_run_tree,
)
from ablate.study._worker_config import fit_trial
from ablate.study_file import Study
from ablate.track import (
    CellInfo,
    RunTree,
    default_tracking_uri,
    delete_study_runs,
    ensure_run_tree,
    flatten,
    set_tree_status,
    study_trial_runs,
)
from ablate.urls import mask_password, scheme, sqlite_path

if TYPE_CHECKING:
    from ablate.train import FitResult


@dataclass(frozen=True)
class Locations:
    """Where a study's state lives; defaults under the results folder."""

    results: Path
    storage_url: str
    tracking_uri: str
    checkpoints: Path  # running trials' checkpoints, one file per (cell, seed)

    @classmethod
    def resolve(
        cls,
        results: Path,
        name: str,
        storage: str | None,
        tracking: str | None,
        checkpoints: Path | None = None,
    ) -> Locations:
        return cls(
            results,
            storage or default_storage_url(results, name),
            tracking or default_tracking_uri(results),
            checkpoints or default_checkpoints(results, name),
        )


def default_checkpoints(results: Path, name: str) -> Path:
    return results / name / "ckpt"


@dataclass(frozen=True)
class RunOutcome:
    total: int
    trained: int
    failed: list[tuple[str, int]]  # (cell, seed) pairs whose every try failed
    # pairs with a try still waiting or running when this run's workers stopped (a worker on
    # another machine has it, or every local worker died): not failed, not done
    unfinished: list[tuple[str, int]] = field(default_factory=list)


def planned_seeds(study: Study, queue: Queue) -> dict[str, int]:
    """How many seeds each cell is to train on (a search's cells differ from one another)."""
    planned: dict[str, int] = {}
    for pair in study.design.pairs(queue):
        planned[pair.cell] = planned.get(pair.cell, 0) + 1
    return planned


def prepare(study: Study, where: Locations, queue: Queue, console: Console) -> RunTree:
    """Create the MLflow experiment, the study run and the cell runs (idempotent), and record
    them with the study so workers on any machine find them."""
    (where.results / study.spec.name).mkdir(parents=True, exist_ok=True)  # after the storage opened
    seeds = planned_seeds(study, queue)
    with tracking_lock(where.tracking_uri):
        try:
            tree = _run_tree(study, where, seeds)
        except Exception as exc:
            if storage_fault(exc) == "disk":  # MLflow's SQLite file on a full disk
                uri = where.tracking_uri
                where_ = sqlite_path(uri) or mask_password(uri)
                raise disk_refused(
                    where_, cause_of(exc), "free space or make it writable"
                ) from None
            raise
    record_run_tree(queue, tree)
    reconcile_and_say(queue, tree, console)
    return tree


def _run_tree(study: Study, where: Locations, seeds: dict[str, int]) -> RunTree:
    """The run tree; each cell run shows the swept values it sets (as trials.csv does) and the
    seeds it plans."""
    return ensure_run_tree(
        where.tracking_uri,
        study.spec.name,
        [c.name for c in study.cells],
        _artifact_root(where),
        {
            **flatten(study.spec.base.model_dump(mode="json")),
            "study_file": str(study.path),
            "seeds": study.spec.sweep.seeds
            if isinstance(study.spec.sweep.seeds, list)
            else study.spec.sweep.seeds.model_dump(),
            "cells": len(study.cells),
            "metric": study.spec.metric.name,
        },
        {c.name: CellInfo(c.overrides, seeds.get(c.name, 0)) for c in study.cells},
    )


_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")  # SQLAlchemy's MLflow stores


def _artifact_root(where: Locations) -> Path | None:
    """Where a new experiment keeps its artifacts: results/mlartifacts when the tracking store is
    a database, which keeps none itself (MLflow's default there is ./mlruns of the working
    directory, outside the results); an MLflow server's own place otherwise."""
    return where.results / "mlartifacts" if scheme(where.tracking_uri) in _DATABASES else None


def _train(
    study: Study,
    where: Locations,
    tree: RunTree,
    plan: Sequence[tuple[str, int]],
    total: int,
    console: Console,
    train: Callable[..., FitResult],
) -> None:
    """Run the workers with the study and cell runs RUNNING; a stop ends them KILLED (the
    report ends them FINISHED once their trials are done)."""
    set_tree_status(tree, "RUNNING")
    try:
        run_workers(
            study,
            where.storage_url,
            tree,
            plan,
            total,
            console,
            where.checkpoints,
            train=train,
        )
    except BaseException:
        with contextlib.suppress(Exception):  # best effort: the tracking store may be the cause
            set_tree_status(tree, "KILLED")
        raise


@dataclass(frozen=True)
class Started:
    """A study ready for workers: its queue filled, its MLflow runs made."""

    queue: Queue
    tree: RunTree
    queued: QueueState


def start_study(
    study: Study, where: Locations, console: Console, *, start_over: bool = False
) -> Started:
    """Everything before training, for `run` and `submit`: create or resume the Optuna study,
    enqueue every (cell, seed) not done or pending, make the MLflow study and cell runs.
    `start_over`: see `check_not_lost`."""
    with study_lock(where.storage_url, study.spec.name):  # another `ablate run` may be starting
        check_not_lost(study, where, console, start_over)
        queue = create_or_load(study, where.storage_url, where.tracking_uri)
        queue.advance(study.design)  # e.g. a search that ended in an earlier run
        queued = queue.sync(study.design.pairs(queue))
        tree = prepare(study, where, queue, console)  # one study and cell run each
    return Started(queue, tree, queued)


def check_not_lost(study: Study, where: Locations, console: Console, start_over: bool) -> None:
    """Refuse to start a study afresh whose trials the tracking store already holds: its
    Optuna storage was deleted, replaced or is another one than before, and training again
    would train every trial a second time and double its MLflow runs. `start_over` says to
    do it anyway: the study's old MLflow runs are deleted first (MLflow's soft delete)."""
    name = study.spec.name
    runs = study_trial_runs(where.tracking_uri, name)
    if not runs or holds_trials(name, where.storage_url):
        return
    if not start_over:
        many = "1000 or more" if runs >= 1000 else str(runs)
        raise SpecError(
            f"{study.path}: the tracking store {mask_password(where.tracking_uri)} holds "
            f"{many} trial run(s) of study {name!r}, but its Optuna storage "
            f"{mask_password(where.storage_url)} holds none of its trials (deleted, replaced, or "
            "another --storage than before): restore it or pass the --storage it ran with; "
            "`ablate run ... --start-over` trains the study again from nothing and deletes "
            "its old MLflow runs"
        )
    deleted = delete_study_runs(where.tracking_uri, name)
    console.print(
        f"{name}: starting over; deleted the {deleted} MLflow run(s) of its lost storage",
        highlight=False,
    )


def run_study(
    study: Study,
    where: Locations,
    devices: str | None,
    workers: int | None,
    console: Console,
    *,
    train: Callable[..., FitResult] = fit_trial,
    start_over: bool = False,
) -> RunOutcome:
    """Train what is missing; `train` trains each trial (see `WorkerConfig`); `start_over`:
    see `check_not_lost`."""
    started = start_study(study, where, console, start_over=start_over)
    queue, tree, queued = started.queue, started.tree, started.queued
    later = study.design.later(queue)  # e.g. a search's confirmation
    to_train = queued.enqueued + queued.pending + later
    total = queued.total + later
    if to_train == 0:
        console.print(f"All {total} trials of {study.spec.name!r} are complete; nothing to train.")
    else:
        plan = plan_devices(devices, workers)[: max(1, to_train)]
        console.print(
            f"{study.spec.name}: {total} trials ({study.describe()}), {queued.done} "
            f"already done, {to_train} to train on {len(plan)} worker(s): "
            f"{', '.join(d for d, _ in plan)}"
        )
        _train(study, where, tree, plan, to_train, console, train)
        reconcile_and_say(queue, tree, console)  # e.g. a run whose trial a dead worker held
    pairs = study.design.pairs(queue)
    tries = queue.by_pair()
    failed: list[tuple[str, int]] = []
    unfinished: list[tuple[str, int]] = []
    for p in pairs:
        mine = tries.get((p.cell, p.seed), [])
        if any(r.done for r in mine):
            continue
        (unfinished if any(r.pending for r in mine) else failed).append((p.cell, p.seed))
    if failed:
        _end_failed(tree, {cell for cell, _ in failed})
    return RunOutcome(len(pairs), to_train, failed, unfinished)


def _end_failed(tree: RunTree, cells: set[str]) -> None:
    """The study run and the runs of cells with a pair that gave up end FAILED, not RUNNING
    for good; a later run that completes them sets them RUNNING, then its report FINISHED.
    Best effort: the tracking store may be what failed."""
    failed = RunTree(
        tree.tracking_uri,
        tree.experiment_id,
        tree.study_run_id,
        {c: r for c, r in tree.cell_run_ids.items() if c in cells},
    )
    with contextlib.suppress(Exception):
        set_tree_status(failed, "FAILED")


def join_study(
    study: Study,
    queue: Queue,
    tree: RunTree,
    devices: str | None,
    workers: int | None,
    console: Console,
    checkpoints: Path | None = None,
) -> None:
    """`ablate worker`: pull the trials of a study `ablate run` started elsewhere."""
    reconcile_and_say(queue, tree, console)
    plan = plan_devices(devices, workers)
    run_workers(study, queue.storage_url, tree, plan, queue.waiting(), console, checkpoints)
    reconcile_and_say(queue, tree, console)
