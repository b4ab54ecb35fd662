"""Bringing MLflow back in line with the trial records after a stop.

A trial's outcome is written twice: to its Optuna trial (the record every count and the report
read, so it is written first) and to its MLflow run. A process killed between the two writes
(kill -9, a lost machine) leaves an ended trial whose run stays RUNNING forever, or a run whose
trial never learnt its id. `reconcile` runs at every `run`, `worker` and `report` start and
ends those runs from the records: a COMPLETE trial's run FINISHED with the epochs it had not
yet sent, a failed or killed one's FAILED or KILLED with its error, an unrecorded one KILLED.
Runs of trials still RUNNING are left to their worker or, if it is dead, to the heartbeat sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from ablate.errors import StorageError, store_error
from ablate.study._queue import Queue
from ablate.study._record import Outcome, TrialRecord
from ablate.track import RunTree, close_run, running_trial_runs
from ablate.urls import mask_password

_RUN_STATUS = {
    Outcome.COMPLETE: "FINISHED",
    Outcome.DIVERGED: "FAILED",
    Outcome.FAILED: "FAILED",
    Outcome.KILLED: "KILLED",
}


@dataclass(frozen=True)
class Reconciled:
    finished: int  # runs of COMPLETE trials ended FINISHED, with their missing metrics
    ended: int  # runs of failed, diverged, killed or unrecorded trials ended

    def __str__(self) -> str:
        return (
            f"MLflow: ended {self.finished + self.ended} run(s) a stopped process left RUNNING "
            f"({self.finished} finished from their trial records, {self.ended} failed or killed)"
        )

    def __bool__(self) -> bool:
        return bool(self.finished or self.ended)


def _close(tree: RunTree, run_id: str, record: TrialRecord) -> None:
    assert record.outcome is not None
    tags = {"ablate.reconciled": "ended from its trial record after a stop"}
    if record.outcome is not Outcome.COMPLETE:
        tags["ablate.outcome"] = record.outcome.value
    if record.error:
        tags["ablate.error"] = record.error
    history = [dict(epoch) for epoch in record.result.history]  # rounded to 6 digits ...
    if history:
        history[-1].update(record.result.final)  # ... but not the final values the report uses
    close_run(tree.tracking_uri, run_id, _RUN_STATUS[record.outcome], history, tags)


def reconcile(queue: Queue, tree: RunTree) -> Reconciled:
    """End every trial run left RUNNING whose trial has ended or was never told of it."""
    running = running_trial_runs(tree)
    if not running:
        return Reconciled(0, 0)
    records = queue.records()
    by_run = {r.mlflow_run_id: r for r in records if r.mlflow_run_id}
    by_number = {r.number: r for r in records}
    finished = ended = 0
    for run_id, number in running.items():
        record = by_run.get(run_id)
        if record is None:  # stopped between creating the run and recording it
            trial = by_number.get(number) if number is not None else None
            if trial is not None and trial.running:
                continue  # its worker may be about to record it
            tags = {"ablate.error": "stopped before its trial recorded this run"}
            close_run(tree.tracking_uri, run_id, "KILLED", tags=tags)
            ended += 1
        elif record.outcome is None:
            continue  # running: its worker ends it, or the sweep once the worker is dead
        else:
            _close(tree, run_id, record)
            finished += record.outcome is Outcome.COMPLETE
            ended += record.outcome is not Outcome.COMPLETE
    return Reconciled(finished, ended)


def reconcile_and_say(queue: Queue, tree: RunTree, console: Console) -> None:
    """`reconcile`, saying what it ended (nothing when there was nothing to end). A tracking
    store that fails meanwhile (its database deleted or gone away after the workers made
    every run they needed) raises `StorageError`, one line: MLflow's errors are no database
    client's the CLI knows, and the records are what counts, so nothing is lost."""
    try:
        reconciled = reconcile(queue, tree)
    except Exception as exc:
        if not type(exc).__module__.startswith("mlflow"):  # MLflow wraps its stores' errors
            raise
        raise StorageError(
            f"the MLflow tracking store cannot end the trial runs left RUNNING "
            f"({store_error(exc)}); every finished trial is kept in the study's storage, and "
            f"the next start ends those runs from it. Tracking URI: "
            f"{mask_password(tree.tracking_uri)}; fix it and run the same command again"
        ) from None
    if reconciled:
        console.print(str(reconciled), highlight=False)
