"""What a trial is, typed: the one `TrialRecord` the worker writes and status, report and CLI
read. Only this module knows how a record is kept in Optuna's trial attributes and states.

A trial's life: enqueued (WAITING) with its cell, seed, overrides and attempt; claimed
(RUNNING) with its MLflow run and device; ended with an `Outcome` and, when it trained, its
results. Optuna has no state for "diverged", so a diverged trial is stored PRUNED (Optuna's
ended-but-not-failed state, which nothing in ablate prunes for) and a killed one FAIL with its
outcome named in the attributes; readers see only the `Outcome`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from optuna.trial import TrialState

from ablate.machine import Machine
from ablate.study._optuna import StoredTrial

MAX_RETRIES = 2  # a crashing trial is tried at most 1 + MAX_RETRIES times per `ablate run`
# A try lost with its worker (kill -9, preemption, a machine gone) is not the trial's fault and
# uses none of those retries; a pair whose worker is lost more than MAX_LOST times gives up, so
# a trial that takes its machine down each time cannot loop for ever.
MAX_LOST = 5

# attribute keys; the names predate this module and stay, so older studies read the same
_CELL, _SEED, _OVERRIDES, _ATTEMPT, _SAMPLED = "cell", "seed", "overrides", "attempt", "search"
_LOST, _MACHINE = "lost", "machine"
_RUN, _DEVICE, _OUTCOME, _ERROR, _TRACEBACK = (
    "mlflow_run_id",
    "device",
    "outcome",
    "error",
    "traceback",
)
_HISTORY, _FINAL, _BEST, _GRADIENTS, _STEPS, _DURATION = (
    "history",
    "final",
    "best",
    "gradients",
    "total_steps",
    "duration_s",
)
RESULT_KEYS = (_HISTORY, _FINAL, _BEST, _GRADIENTS, _TRACEBACK)  # the bulk of what a trial stores


class Outcome(enum.Enum):
    """How an ended trial ended."""

    COMPLETE = "complete"  # trained to the end with a finite metric
    DIVERGED = "diverged"  # the loss turned NaN/inf: a result of the recipe, counted, not retried
    FAILED = "failed"  # raised an error, or ended without a finite metric
    KILLED = "killed"  # stopped from outside: Ctrl-C, or its worker declared dead

    @property
    def done(self) -> bool:
        """Whether the (cell, seed) needs no further try."""
        return self in (Outcome.COMPLETE, Outcome.DIVERGED)


_STORED = {
    Outcome.COMPLETE: TrialState.COMPLETE,
    Outcome.DIVERGED: TrialState.PRUNED,
    Outcome.FAILED: TrialState.FAIL,
    Outcome.KILLED: TrialState.FAIL,
}
# the `state` column of trials.csv and the status table
_LABELS = {
    Outcome.COMPLETE: "COMPLETE",
    Outcome.DIVERGED: "DIVERGED",
    Outcome.FAILED: "FAIL",
    Outcome.KILLED: "KILLED",
}
PENDING_STATES = (TrialState.WAITING, TrialState.RUNNING)


@dataclass(frozen=True)
class TrialResult:
    """What a trained trial measured: per-epoch history, final and best `val/` metrics, and
    the machine they were measured on (they reproduce bit for bit only on its like)."""

    history: Sequence[Mapping[str, float]] = ()
    final: Mapping[str, float] = field(default_factory=dict)
    best: Mapping[str, float] = field(default_factory=dict)
    gradients: Sequence[Sequence[Any]] = ()  # [iteration, {layer: mean |grad|}]
    total_steps: int = 0
    duration_s: float = math.nan
    # the worker's that finished it (a try resumed from a checkpoint trained its first part
    # where that was written); None from a version of ablate that did not record it
    machine: Machine | None = None


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a study, in any state."""

    trial_id: int
    number: int
    cell: str
    seed: int
    attempt: int  # the try number: 1, then 2 for its first retry, …
    overrides: Mapping[str, Any]  # applied to the base recipe
    sampled: bool  # its values come from the design at claim time (a search trial)
    params: Mapping[str, Any]  # the values Optuna holds for it (a search trial's)
    outcome: Outcome | None  # None while WAITING or RUNNING
    running: bool
    value: float | None
    result: TrialResult
    error: str = ""
    mlflow_run_id: str = ""
    device: str = ""
    started: datetime | None = None
    ended: datetime | None = None
    lost: int = 0  # earlier tries of this (cell, seed) lost with their worker

    @property
    def key(self) -> tuple[str, int]:
        return self.cell, self.seed

    @property
    def state(self) -> str:
        """COMPLETE, DIVERGED, FAIL, KILLED, RUNNING or WAITING."""
        if self.outcome is not None:
            return _LABELS[self.outcome]
        return "RUNNING" if self.running else "WAITING"

    @property
    def pending(self) -> bool:
        return self.outcome is None

    @property
    def done(self) -> bool:
        return self.outcome is not None and self.outcome.done

    @property
    def complete(self) -> bool:
        """Trained to the end with a finite metric (not diverged)."""
        return self.outcome is Outcome.COMPLETE

    def next_try(self) -> tuple[int, int] | None:
        """The (attempt, lost) to enqueue this ended try's retry with; None when it has no
        try left: a crash uses one of MAX_RETRIES, a lost worker one of MAX_LOST."""
        if self.outcome is Outcome.KILLED:
            lost = self.lost + 1
            return (self.attempt + 1, lost) if lost <= MAX_LOST else None
        crashes = self.attempt - self.lost  # the earlier tries not lost failed
        return (self.attempt + 1, self.lost) if crashes <= MAX_RETRIES else None

    @property
    def gave_up(self) -> bool:
        """Ended without a result and without a try left."""
        return self.outcome is not None and not self.done and self.next_try() is None


def from_trial(trial: StoredTrial) -> TrialRecord | None:
    """The record of a trial ablate enqueued; None for any other trial in the study."""
    attrs = trial.user_attrs
    if _CELL not in attrs or _SEED not in attrs:
        return None
    return TrialRecord(
        trial_id=trial.trial_id,
        number=trial.number,
        cell=str(attrs[_CELL]),
        seed=int(attrs[_SEED]),
        attempt=int(attrs.get(_ATTEMPT, 1)),
        lost=int(attrs.get(_LOST, 0)),
        overrides=dict(attrs.get(_OVERRIDES, {})),
        sampled=bool(attrs.get(_SAMPLED, False)),
        params=dict(trial.params),
        outcome=_outcome(trial),
        running=trial.state == TrialState.RUNNING,
        value=trial.value,
        result=TrialResult(
            history=list(attrs.get(_HISTORY, [])),
            final=dict(attrs.get(_FINAL, {})),
            best=dict(attrs.get(_BEST, {})),
            gradients=list(attrs.get(_GRADIENTS, [])),
            total_steps=int(attrs.get(_STEPS) or 0),
            duration_s=float(attrs.get(_DURATION, math.nan)),
            machine=Machine.from_dict(attrs[_MACHINE]) if _MACHINE in attrs else None,
        ),
        error=str(attrs.get(_ERROR, "")),
        mlflow_run_id=str(attrs.get(_RUN, "")),
        device=str(attrs.get(_DEVICE, "")),
        started=trial.datetime_start,
        ended=trial.datetime_complete,
    )


def _outcome(trial: StoredTrial) -> Outcome | None:
    if trial.state in PENDING_STATES:
        return None
    named = trial.user_attrs.get(_OUTCOME)
    if trial.state == TrialState.COMPLETE:
        return Outcome.COMPLETE
    if trial.state == TrialState.PRUNED:  # older studies also stored "no-value" here
        return Outcome.DIVERGED if named == "diverged" else Outcome.FAILED
    return Outcome.KILLED if named == Outcome.KILLED.value else Outcome.FAILED


def records(trials: Sequence[StoredTrial]) -> list[TrialRecord]:
    """The records of the trials ablate enqueued, in trial order."""
    found = (from_trial(t) for t in trials)
    return [r for r in found if r is not None]


# -- writing: what the engine stores at each step of a trial's life


def enqueued(
    cell: str,
    seed: int,
    overrides: Mapping[str, Any],
    attempt: int,
    sampled: bool,
    lost: int = 0,
) -> dict[str, Any]:
    """The attributes a trial is enqueued with."""
    attrs = {_CELL: cell, _SEED: seed, _OVERRIDES: dict(overrides), _ATTEMPT: attempt}
    if lost:
        attrs[_LOST] = lost
    if sampled:
        attrs[_SAMPLED] = True
    return attrs


def started(mlflow_run_id: str, device: str) -> dict[str, Any]:
    """The attributes a worker adds when it starts a trial."""
    return {_RUN: mlflow_run_id, _DEVICE: device}


def sampled(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of a trial whose values were sampled when it was claimed."""
    return {_OVERRIDES: dict(overrides)}


def ended(
    outcome: Outcome,
    result: TrialResult | None = None,
    error: str = "",
    traceback: str = "",
) -> tuple[TrialState, dict[str, Any]]:
    """The Optuna state and attributes an ended trial is stored with."""
    attrs: dict[str, Any] = {_OUTCOME: outcome.value}
    if error:
        attrs[_ERROR] = error
    if traceback:
        attrs[_TRACEBACK] = traceback
    if result is not None:
        attrs.update(
            {
                _HISTORY: [dict(h) for h in result.history],
                _DURATION: round(result.duration_s, 3),
                _FINAL: dict(result.final),
                _BEST: dict(result.best),
                _GRADIENTS: [list(g) for g in result.gradients],
                _STEPS: result.total_steps,
            }
        )
        if result.machine is not None:
            attrs[_MACHINE] = result.machine.as_dict()
    return _STORED[outcome], attrs
