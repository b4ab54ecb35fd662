"""The trial queue: every (cell, seed) enqueued once as a fixed trial; workers pop them.

Grid cells are *enqueued* rather than sampled: Optuna's GridSampler repeats or skips points when
workers run in parallel. Popping a WAITING trial is one atomic state change in the storage, so
two workers never train the same trial. `Queue` is also what a design sees of the running study
(`ablate.design.QueueView`).
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from ablate.design import Design, Pair, Range, SamplerPlan
from ablate.errors import store_error
from ablate.study import _record
from ablate.study._optuna import Store
from ablate.study._record import Outcome, TrialRecord, TrialResult
from ablate.track import end_if_running, running_runs_of_trial

SETTLE_S = 30.0  # a round recorded this long ago with trials still missing: its process died
SETTLE_POLL_S = 1.0  # how often an idle worker looks again while another enqueues a round
CLAIMED_AT = "claimed_at"  # beside a round's decision: when its process recorded it


@dataclass(frozen=True)
class QueueState:
    total: int  # (cell, seed) pairs in the design
    done: int  # COMPLETE or diverged
    pending: int  # already WAITING or RUNNING
    enqueued: int  # added by this call


def _claimed_at(decision: Any) -> float:
    """When a round's decision was recorded (0 when unknown: settled long ago). Studies run
    before rounds were the queue's kept it as a bare time (adaptive) or `chosen_at`."""
    if isinstance(decision, int | float):
        return float(decision)
    if isinstance(decision, Mapping):
        return float(decision.get(CLAIMED_AT, decision.get("chosen_at", 0.0)))
    return 0.0


def make_sampler(plan: SamplerPlan) -> optuna.samplers.BaseSampler:
    """Samplers are not stored with the study: each claimed trial builds its own. TPE lies
    about running trials (constant liar) so parallel workers do not all sample one point; it
    is univariate, since the baseline's trials carry no values, which would leave a
    multivariate TPE an empty joint space."""
    if plan.name == "random":
        return optuna.samplers.RandomSampler(seed=plan.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
        return optuna.samplers.TPESampler(
            n_startup_trials=plan.startup, seed=plan.seed, constant_liar=True
        )


class Queue:
    """A study's trials as records, and every change the engine makes to them."""

    def __init__(
        self, ostudy: optuna.Study, storage_url: str, tracking_uri: str | None = None
    ) -> None:
        self.store = Store(ostudy, storage_url)
        self.ostudy = ostudy
        self.storage_url = storage_url
        self.tracking_uri = tracking_uri  # where killed trials' runs are ended

    # -- reading

    @property
    def attrs(self) -> Mapping[str, Any]:
        return self.store.attrs

    def records(self, *, results: bool = True) -> list[TrialRecord]:
        """Every trial's record; with `results` False without its history, final and best
        metrics and gradients (their `result` empty), which are most of what is stored: for
        what needs only where each trial stands (`ablate status`)."""
        skip = () if results else _record.RESULT_KEYS
        return _record.records(self.store.trials(skip_attrs=skip))

    def record(self, trial_id: int) -> TrialRecord:
        found = _record.from_trial(self.store.trial(trial_id))
        assert found is not None, f"trial {trial_id} was not enqueued by ablate"
        return found

    def by_pair(self) -> dict[tuple[str, int], list[TrialRecord]]:
        pairs: dict[tuple[str, int], list[TrialRecord]] = defaultdict(list)
        for r in self.records():
            pairs[r.key].append(r)
        return pairs

    def waiting(self) -> int:
        return self.store.count((TrialState.WAITING,)).get(TrialState.WAITING, 0)

    # -- enqueuing

    def enqueue(self, pair: Pair, attempt: int = 1, lost: int = 0) -> None:
        attrs = _record.enqueued(pair.cell, pair.seed, pair.overrides, attempt, pair.sampled, lost)
        self.store.enqueue(pair.params, attrs)

    def sync(self, pairs: Sequence[Pair]) -> QueueState:
        """Enqueue every (cell, seed) that is neither done nor pending; a pair whose tries all
        failed is enqueued again (a new `ablate run` gives it fresh tries)."""
        existing = self.by_pair()
        done = pending = enqueued = 0
        for pair in pairs:
            tries = existing.get((pair.cell, pair.seed), [])
            if any(r.done for r in tries):
                done += 1
            elif any(r.pending for r in tries):
                pending += 1
            else:
                self.enqueue(pair)
                enqueued += 1
        return QueueState(len(pairs), done, pending, enqueued)

    def advance(self, design: Design) -> bool:
        """With nothing left to claim: enqueue the round the design's records call for
        (`Design.next_round`), once. The round's decision is recorded under its key first,
        which exactly one process can do; the others wait while its trials are being
        enqueued, up to SETTLE_S after it was recorded (past that its process died, and the
        next `ablate run` enqueues what is missing). True when a round was enqueued here or
        is being enqueued elsewhere (look again), False when there is nothing to add."""
        round_ = design.next_round(self.records(), self.attrs)
        if round_ is None:
            return False
        if round_.key not in self.attrs:
            decision = {**round_.decision, CLAIMED_AT: time.time()}
            if self.store.add_study_attr_once(round_.key, decision):
                self.sync(round_.pairs)
                return True
            # another process recorded it first: its decision stands
            round_ = design.next_round(self.records(), self.attrs)
            if round_ is None:
                return False
        queued = {r.key for r in self.records()}
        if all((p.cell, p.seed) in queued for p in round_.pairs):
            return False
        if time.time() - _claimed_at(self.attrs.get(round_.key)) > SETTLE_S:
            return False
        time.sleep(SETTLE_POLL_S)
        return True

    def sample(
        self, record: TrialRecord, space: Mapping[str, Range], plan: SamplerPlan
    ) -> dict[str, Any]:
        """Values for a claimed trial from the plan's sampler, recorded as its Optuna params
        (fixed ones, enqueued with the trial, are returned as they are)."""
        self.ostudy.sampler = make_sampler(plan)
        trial = self.store.trial_for_sampling(record.trial_id)
        values: dict[str, Any] = {}
        for key, r in space.items():
            if r.kind == "int":
                values[key] = trial.suggest_int(key, int(r.low), int(r.high), log=r.log)
            else:
                values[key] = trial.suggest_float(key, float(r.low), float(r.high), log=r.log)
        return values

    # -- a trial's life

    def pop(self) -> int | None:
        return self.store.pop_waiting()

    def started(self, trial_id: int, mlflow_run_id: str, device: str) -> None:
        self.store.set_trial_attrs(trial_id, _record.started(mlflow_run_id, device))

    def set_overrides(self, trial_id: int, overrides: Mapping[str, Any]) -> None:
        """Record the values a claimed trial was given by its design (a sampled trial)."""
        self.store.set_trial_attrs(trial_id, _record.sampled(overrides))

    def end(
        self,
        trial_id: int,
        outcome: Outcome,
        value: float | None = None,
        result: TrialResult | None = None,
        error: str = "",
        traceback: str = "",
    ) -> bool:
        """End a RUNNING trial with its outcome; False (nothing written) when another process
        ended it first. Used by the worker, the stale sweep and Ctrl-C alike, so an error meant
        for a dead worker never lands on a trial its worker has just completed."""
        state, attrs = _record.ended(outcome, result, error, traceback)
        return self.store.finish(trial_id, state, value, attrs)

    def retry(self, record: TrialRecord) -> bool:
        """After a failed or lost try: enqueue the next try unless the pair has none left
        (`TrialRecord.next_try`). A sampled trial is retried with the values it was given."""
        following = record.next_try()
        if following is None:
            return False
        pair = Pair(record.cell, record.seed, record.overrides, record.sampled, record.params)
        self.enqueue(pair, *following)
        return True

    def kill_run(self, record: TrialRecord) -> None:
        """End the MLflow run of a trial that did not finish as KILLED, if still running.
        Best effort: the queue must go on even when the tracking store cannot be reached."""
        if not self.tracking_uri:
            return
        try:
            # no run id recorded: its worker created the run but stopped (the storage went
            # away) before recording it, and the run is found by its trial number
            runs = (
                [record.mlflow_run_id]
                if record.mlflow_run_id
                else running_runs_of_trial(self.tracking_uri, self.ostudy.study_name, record.number)
            )
            for run_id in runs:
                end_if_running(self.tracking_uri, run_id, "KILLED")
        except Exception as exc:
            warnings.warn(
                f"could not end the MLflow run of trial #{record.number} as KILLED: "
                f"{store_error(exc)}",
                stacklevel=2,
            )

    def abandon(self, trial_id: int, reason: str) -> None:
        """A worker stops mid-trial (Ctrl-C, SIGTERM: a preempted or cancelled job): the trial,
        if still running, ends KILLED with `reason`, so does its MLflow run, and the pair is
        re-queued as a lost try, so the workers still running (on other machines, or a
        requeued job) train it, from its checkpoint, without a new `ablate run`."""
        if self.end(trial_id, Outcome.KILLED, error=reason):
            record = self.record(trial_id)
            self.retry(record)
            self.kill_run(record)

    def sweep_stale(self) -> None:
        """Kill and re-queue the trials of dead workers (no heartbeat for the grace period).
        Not Optuna's `fail_stale_trials`: its read-then-write lets two sweeping workers on
        SQLite both win one trial and re-queue it twice. Only the process whose `end` wins
        re-queues, so the trial is enqueued again exactly once."""
        for trial_id in self.store.stale_trial_ids():
            if self.end(trial_id, Outcome.KILLED, error="worker lost (no heartbeat)"):
                record = self.record(trial_id)
                self.retry(record)
                self.kill_run(record)

    def wait_for_pending(self, poll_s: float = 0.25) -> bool:
        """With nothing left to pop: sweep dead workers' trials; True while any trial is
        pending."""
        self.sweep_stale()
        states = self.store.count(_record.PENDING_STATES)
        if TrialState.WAITING in states:
            return True
        if TrialState.RUNNING in states:
            time.sleep(poll_s)
            return True
        return False
