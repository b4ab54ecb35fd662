"""The trial queue: every (cell, seed) enqueued once as a fixed trial; workers pop them.

Grid cells are *enqueued* rather than sampled: Optuna's GridSampler repeats or skips points when
workers run in parallel. Popping a WAITING trial is one atomic state change in the storage, so
two workers never train the same trial.
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ablate.study._storage import trial_key

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


def enqueue(
    ostudy: optuna.Study, cell: str, seed: int, overrides: dict[str, Any], attempt: int
) -> None:
    ostudy.enqueue_trial(
        {}, user_attrs={"cell": cell, "seed": seed, "overrides": overrides, "attempt": attempt}
    )


def sync_queue(
    ostudy: optuna.Study, pairs: list[tuple[str, int, dict[str, Any]]], retry_failed: bool = True
) -> QueueState:
    """Enqueue every (cell, seed) that is neither done nor pending. A pair whose last try
    FAILed is enqueued again when `retry_failed` (a new `ablate run` gives it fresh tries)."""
    existing = _by_pair(ostudy.get_trials(deepcopy=False))
    done = pending = enqueued = failed = 0
    for cell, seed, overrides in pairs:
        tries = existing.get((cell, seed), [])
        states = {t.state for t in tries}
        if states & set(DONE):
            done += 1
        elif states & set(PENDING):
            pending += 1
        elif tries and not retry_failed:
            failed += 1
        else:
            enqueue(ostudy, cell, seed, overrides, attempt=1)
            enqueued += 1
    return QueueState(len(pairs), done, pending, enqueued, failed)


def pop_waiting(ostudy: optuna.Study) -> int | None:
    """Claim one WAITING trial (oldest first) for this process; its trial id, or None."""
    storage = ostudy._storage
    for trial in ostudy.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
                return int(trial._trial_id)
        except RuntimeError:  # another worker won the race and the trial is no longer WAITING
            continue
    return None


def retry_or_give_up(ostudy: optuna.Study, trial: FrozenTrial) -> bool:
    """After a failed try: enqueue the next try unless the retries are used up."""
    attempt = int(trial.user_attrs.get("attempt", 1))
    key = trial_key(trial)
    if key is None or attempt > MAX_RETRIES:
        return False
    enqueue(ostudy, key[0], key[1], dict(trial.user_attrs.get("overrides", {})), attempt + 1)
    return True


def requeue_stale(ostudy: optuna.Study, trial: FrozenTrial) -> None:
    """Heartbeat callback: a worker died mid-trial. Called in exactly one process (the one whose
    `fail_stale_trials` won the state change), so the trial is enqueued again exactly once."""
    ostudy._storage.set_trial_user_attr(trial._trial_id, "error", "worker lost (no heartbeat)")
    retry_or_give_up(ostudy, trial)


def wait_for_pending(ostudy: optuna.Study, poll_s: float = 2.0) -> bool:
    """With nothing left to pop: sweep dead workers' trials; True while any trial is pending."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(ostudy)
    states = {t.state for t in ostudy.get_trials(deepcopy=False, states=PENDING)}
    if TrialState.WAITING in states:
        return True
    if TrialState.RUNNING in states:
        time.sleep(poll_s)
        return True
    return False
