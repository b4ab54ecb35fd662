"""The study engine: the Optuna study behind a study file, its queue of typed trial records,
workers, resume and retries. Importing it imports Optuna, never torch or MLflow."""

from ablate.study._events import EpochDone, Event, TrialEnded, TrialStarted, WorkerExited
from ablate.study._optuna import storage_fault
from ablate.study._pool import plan_devices, run_workers
from ablate.study._queue import Queue, QueueState
from ablate.study._reconcile import Reconciled, reconcile, reconcile_and_say
from ablate.study._record import MAX_LOST, MAX_RETRIES, Outcome, TrialRecord, TrialResult
from ablate.study._run import (
    Locations,
    RunOutcome,
    Started,
    default_checkpoints,
    join_study,
    planned_seeds,
    prepare,
    run_study,
    start_study,
)
from ablate.study._storage import (
    create_or_load,
    default_storage_url,
    load_existing,
    planned_before,
    record_run_tree,
    run_tree_of,
    stored_study,
)
from ablate.study._worker_config import WorkerConfig

__all__ = [
    "MAX_LOST",
    "MAX_RETRIES",
    "EpochDone",
    "Event",
    "Locations",
    "Outcome",
    "Queue",
    "QueueState",
    "Reconciled",
    "RunOutcome",
    "Started",
    "TrialEnded",
    "TrialRecord",
    "TrialResult",
    "TrialStarted",
    "WorkerConfig",
    "WorkerExited",
    "create_or_load",
    "default_checkpoints",
    "default_storage_url",
    "join_study",
    "load_existing",
    "plan_devices",
    "planned_before",
    "planned_seeds",
    "prepare",
    "reconcile",
    "reconcile_and_say",
    "record_run_tree",
    "run_study",
    "run_tree_of",
    "run_workers",
    "start_study",
    "storage_fault",
    "stored_study",
]
