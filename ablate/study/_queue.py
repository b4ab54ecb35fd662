"""The trial queue: every (cell, seed) enqueued once as a fixed trial; workers pop them.

Grid cells are *enqueued* rather than sampled: Optuna's GridSampler repeats or skips points when
workers run in parallel. Popping a WAITING trial is one atomic state change in the storage, so
two workers never train the same trial.
"""

from __future__ import annotations

import json
import random
import time
import warnings
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import optuna
import sqlalchemy
from optuna.storages._rdb.models import (
    TrialHeartbeatModel,
    TrialModel,
    TrialUserAttributeModel,
    TrialValueModel,
)
from optuna.trial import FrozenTrial, TrialState

from ablate.study._storage import trial_key
from ablate.track import end_if_running

MAX_RETRIES = 2  # a crashing trial is tried at most 1 + MAX_RETRIES times per `ablate run`
DONE = (TrialState.COMPLETE, TrialState.PRUNED)  # PRUNED = diverged: an outcome, not retried
PENDING = (TrialState.WAITING, TrialState.RUNNING)


@dataclass(frozen=True)
class QueueState:
    total: int  # (cell, seed) pairs in the design
    done: int  # COMPLETE or diverged
    pending: int  # already WAITING or RUNNING
    enqueued: int  # added by this call
    failed: int  # pairs whose tries are used up


def _by_pair(trials: list[FrozenTrial]) -> dict[tuple[str, int], list[FrozenTrial]]:
    pairs: dict[tuple[str, int], list[FrozenTrial]] = defaultdict(list)
    for t in trials:
        key = trial_key(t)
        if key is not None:
            pairs[key].append(t)
    return pairs


@dataclass(frozen=True)
class Pair:
    """One (cell, seed) of the design and what its trial applies to the base recipe. `params`
    is None for a grid or variant cell; for a search cell it holds the values fixed in advance
    (none for a configuration the sampler is still to choose)."""

    cell: str
    seed: int
    overrides: Mapping[str, Any]
    params: Mapping[str, Any] | None = None


def enqueue(ostudy: optuna.Study, pair: Pair, attempt: int) -> None:
    attrs = {"cell": pair.cell, "seed": pair.seed, "overrides": dict(pair.overrides)}
    if pair.params is not None:
        attrs["search"] = True
    ostudy.enqueue_trial(dict(pair.params or {}), user_attrs={**attrs, "attempt": attempt})


def sync_queue(ostudy: optuna.Study, pairs: list[Pair], retry_failed: bool = True) -> QueueState:
    """Enqueue every (cell, seed) that is neither done nor pending. A pair whose last try
    FAILed is enqueued again when `retry_failed` (a new `ablate run` gives it fresh tries)."""
    existing = _by_pair(ostudy.get_trials(deepcopy=False))
    done = pending = enqueued = failed = 0
    for pair in pairs:
        tries = existing.get((pair.cell, pair.seed), [])
        states = {t.state for t in tries}
        if states & set(DONE):
            done += 1
        elif states & set(PENDING):
            pending += 1
        elif tries and not retry_failed:
            failed += 1
        else:
            enqueue(ostudy, pair, attempt=1)
            enqueued += 1
    return QueueState(len(pairs), done, pending, enqueued, failed)


def engine_of(ostudy: optuna.Study) -> Any:
    """The SQLAlchemy engine of the study's RDBStorage (behind Optuna's cache), for the few
    statements below that Optuna has no atomic or batched call for."""
    storage: Any = getattr(ostudy._storage, "_backend", ostudy._storage)
    return storage.engine


def _change_state(conn: Any, trial_id: int, old: TrialState, new: TrialState) -> bool:
    """Change a trial's state from `old` to `new` in one conditional UPDATE; True when this
    statement made the change. Optuna's `set_trial_state_values` reads the state, then writes
    it, and SQLite ignores its FOR UPDATE: two workers both "won" one trial (11 double claims
    in 300 pops with 4 processes). A single UPDATE ... WHERE state = old cannot be won twice on
    any database."""
    trials = TrialModel.__table__
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # Optuna stores naive UTC
    stamp = "datetime_start" if new == TrialState.RUNNING else "datetime_complete"
    changed = conn.execute(
        sqlalchemy.update(trials)
        .where(trials.c.trial_id == trial_id, trials.c.state == old)
        .values({trials.c.state: new, trials.c[stamp]: now})
    ).rowcount
    return bool(changed == 1)


def _claim(ostudy: optuna.Study, trial_id: int) -> bool:
    """WAITING -> RUNNING for this process, with the first heartbeat in the same transaction,
    so a worker that dies right after claiming leaves a trial the heartbeat sweep will find."""
    with engine_of(ostudy).begin() as conn:
        if not _change_state(conn, trial_id, TrialState.WAITING, TrialState.RUNNING):
            return False
        conn.execute(sqlalchemy.insert(TrialHeartbeatModel.__table__).values(trial_id=trial_id))
    return True


def _write_attrs(conn: Any, trial_id: int, attrs: Mapping[str, Any]) -> None:
    table = TrialUserAttributeModel.__table__
    rows = [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]
    if rows:
        conn.execute(
            sqlalchemy.delete(table).where(table.c.trial_id == trial_id, table.c.key.in_(attrs))
        )
        conn.execute(sqlalchemy.insert(table), rows)


def set_user_attrs(ostudy: optuna.Study, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """Several user attributes of a trial this worker holds, in one transaction: Optuna writes
    each in its own (~4 ms apiece on SQLite, the engine's largest cost per trial)."""
    with engine_of(ostudy).begin() as conn:
        _write_attrs(conn, trial_id, attrs)


def finish(
    ostudy: optuna.Study,
    trial_id: int,
    state: TrialState,
    value: float | None,
    attrs: Mapping[str, Any],
) -> bool:
    """End a RUNNING trial: its attributes, its state and (COMPLETE) its value, in one
    transaction that only goes through while the trial is still RUNNING. False, with nothing
    written, when another process ended it first: its worker, or a heartbeat sweep that took
    the worker for dead. Used by the worker, the sweep and Ctrl-C alike, so an error meant for
    a dead worker never lands on a trial its worker has just completed. Optuna's `tell` reads
    the trial back twice and writes in several transactions: 30-odd statements per trial,
    where this takes four."""
    with engine_of(ostudy).begin() as conn:
        if not _change_state(conn, trial_id, TrialState.RUNNING, state):
            return False
        _write_attrs(conn, trial_id, attrs)
        if value is not None:
            stored, kind = TrialValueModel.value_to_stored_repr(value)
            conn.execute(
                sqlalchemy.insert(TrialValueModel.__table__).values(
                    trial_id=trial_id, objective=0, value=stored, value_type=kind
                )
            )
    return True


def _oldest_waiting(ostudy: optuna.Study, limit: int) -> list[int]:
    """Ids of the `limit` oldest WAITING trials: one indexed query, where `get_trials` would
    read and parse every unfinished trial with its attributes on every pop."""
    trials = TrialModel.__table__
    query = (
        sqlalchemy.select(trials.c.trial_id)
        .where(trials.c.study_id == ostudy._study_id, trials.c.state == TrialState.WAITING)
        .order_by(trials.c.trial_id)
        .limit(limit)
    )
    with engine_of(ostudy).connect() as conn:
        return [int(i) for i in conn.execute(query).scalars()]


def pop_waiting(ostudy: optuna.Study, spread: int = 8) -> int | None:
    """Claim one of the oldest WAITING trials for this process; its trial id, or None. Workers
    try the `spread` oldest in random order, so they rarely race for the same one."""
    while waiting := _oldest_waiting(ostudy, spread):
        for trial_id in random.sample(waiting, len(waiting)):
            if _claim(ostudy, trial_id):
                return trial_id
    return None


def retry_or_give_up(ostudy: optuna.Study, trial: FrozenTrial) -> bool:
    """After a failed try: enqueue the next try unless the retries are used up."""
    attempt = int(trial.user_attrs.get("attempt", 1))
    key = trial_key(trial)
    if key is None or attempt > MAX_RETRIES:
        return False
    overrides = dict(trial.user_attrs.get("overrides", {}))
    params = trial.params if trial.user_attrs.get("search") else None  # retried as sampled
    enqueue(ostudy, Pair(key[0], key[1], overrides, params), attempt + 1)
    return True


def _kill_run(tracking_uri: str | None, trial: FrozenTrial) -> None:
    """End the MLflow run of a trial that did not finish as KILLED, if it has one still running.
    Best effort: the queue must go on even when the tracking store cannot be reached."""
    run_id = trial.user_attrs.get("mlflow_run_id")
    if not tracking_uri or not run_id:
        return
    try:
        end_if_running(tracking_uri, run_id, "KILLED")
    except Exception as exc:
        warnings.warn(f"could not end MLflow run {run_id} as KILLED: {exc}", stacklevel=2)


def requeue_stale(ostudy: optuna.Study, trial: FrozenTrial) -> None:
    """Heartbeat callback: a worker died mid-trial. Called in exactly one process (the one whose
    sweep won the state change), so the trial is enqueued again exactly once; its MLflow run,
    left RUNNING by the dead worker, ends KILLED. `sweep_stale` has failed the trial with its
    error already, in the same transaction that won the state change."""
    retry_or_give_up(ostudy, trial)
    _kill_run(ostudy.user_attrs.get("mlflow", {}).get("tracking_uri"), trial)


def abandon(ostudy: optuna.Study, trial_id: int, reason: str, tracking_uri: str) -> None:
    """A worker stops mid-trial (Ctrl-C): the trial, if still running, ends FAIL with `reason`
    and its MLflow run KILLED; `ablate run` again gives the pair a fresh try."""
    if finish(ostudy, trial_id, TrialState.FAIL, None, {"error": reason}):
        _kill_run(tracking_uri, ostudy._storage.get_trial(trial_id))


def sweep_stale(ostudy: optuna.Study) -> None:
    """Fail and re-queue the trials of dead workers (no heartbeat for the grace period). Not
    Optuna's `fail_stale_trials`: its read-then-write lets two sweeping workers on SQLite both
    win one trial and re-queue it twice."""
    storage: Any = ostudy._storage
    for trial_id in storage._get_stale_trial_ids(ostudy._study_id):
        if finish(ostudy, trial_id, TrialState.FAIL, None, {"error": "worker lost (no heartbeat)"}):
            requeue_stale(ostudy, storage.get_trial(trial_id))


def wait_for_pending(ostudy: optuna.Study, poll_s: float = 0.25) -> bool:
    """With nothing left to pop: sweep dead workers' trials; True while any trial is pending."""
    sweep_stale(ostudy)
    states = {t.state for t in ostudy.get_trials(deepcopy=False, states=PENDING)}
    if TrialState.WAITING in states:
        return True
    if TrialState.RUNNING in states:
        time.sleep(poll_s)
        return True
    return False
