"""Opening the Optuna study behind a study file, with heartbeats so dead workers are noticed."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial

from ablate.spec import SpecError, Study
from ablate.track import RunTree, flatten

HEARTBEAT_S = 10  # a running trial records a heartbeat this often ...
GRACE_S = 60  # ... and is declared dead (then re-queued) after this long without one


def _seconds(name: str, default: int) -> int:
    """An interval from the environment (ABLATE_HEARTBEAT_S, ABLATE_GRACE_S), read when a
    storage is opened so tests can shorten it; the default otherwise."""
    return int(os.environ.get(name, default))


def default_storage_url(results: Path, name: str) -> str:
    return f"sqlite:///{(results / name / 'optuna.db').resolve()}"


def open_storage(url: str) -> RDBStorage:
    from ablate.study._queue import requeue_stale  # the callback re-queues a dead worker's trial

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            url,
            engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
            heartbeat_interval=_seconds("ABLATE_HEARTBEAT_S", HEARTBEAT_S),
            grace_period=_seconds("ABLATE_GRACE_S", GRACE_S),
            heartbeat_stale_trial_callback=requeue_stale,
        )


def recipe_fingerprint(study: Study) -> dict[str, Any]:
    """What must not change between two runs of one study: the base recipe and the metric."""
    return {
        "base": flatten(study.spec.base.model_dump(mode="json")),
        "metric": study.spec.metric.model_dump(mode="json"),
    }


def create_or_load(study: Study, storage_url: str) -> optuna.Study:
    """The Optuna study of this study file; refuses one that was run with another recipe."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_url)
    ostudy = optuna.create_study(
        study_name=study.spec.name,
        storage=storage,
        direction=study.spec.metric.goal,
        load_if_exists=True,
    )
    stored = ostudy.user_attrs.get("fingerprint")
    mine = recipe_fingerprint(study)
    if stored is None:
        ostudy.set_user_attr("fingerprint", mine)
        ostudy.set_user_attr("spec", study.spec.model_dump(mode="json"))
        ostudy.set_user_attr("baseline", study.baseline)
        ostudy.set_user_attr("study_file", str(study.path.resolve()))
    elif json.dumps(stored, sort_keys=True) != json.dumps(mine, sort_keys=True):
        changed = sorted(
            k
            for k in set(stored["base"]) | set(mine["base"])
            if stored["base"].get(k) != mine["base"].get(k)
        )
        if stored["metric"] != mine["metric"]:
            changed.append("metric")
        details = ", ".join(
            f"{k}: {stored['base'].get(k)!r} -> {mine['base'].get(k)!r}" for k in changed[:5]
        )
        raise SpecError(
            f"{study.path}: study {study.spec.name!r} in {storage_url} was run with another "
            f"recipe ({details}); give this one a new name (--set name=...) or delete its "
            "results folder to start over"
        )
    else:
        ostudy.set_user_attr("spec", study.spec.model_dump(mode="json"))
    return ostudy


def load_existing(name: str, storage_url: str) -> optuna.Study:
    """A study that must already exist (for `status`, `report`, `worker`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage_url.startswith("sqlite:///") and not Path(storage_url[10:]).exists():
        raise SpecError(
            f"no study {name!r}: {storage_url[10:]} does not exist; start it with `ablate run` "
            "(or pass --results/--storage where it ran)"
        )
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage_url))
    except KeyError:
        raise SpecError(f"no study {name!r} in {storage_url}; start it with `ablate run`") from None


def trial_key(trial: FrozenTrial) -> tuple[str, int] | None:
    """(cell, seed) of a trial ablate enqueued; None for anything else."""
    attrs = trial.user_attrs
    if "cell" not in attrs or "seed" not in attrs:
        return None
    return str(attrs["cell"]), int(attrs["seed"])


def record_run_tree(ostudy: optuna.Study, tree: RunTree) -> None:
    """Record the MLflow run tree with the study, for `run_tree_of` on any machine."""
    ostudy.set_user_attr(
        "mlflow",
        {
            "tracking_uri": tree.tracking_uri,
            "experiment_id": tree.experiment_id,
            "study_run_id": tree.study_run_id,
            "cell_run_ids": dict(tree.cell_run_ids),
        },
    )


def run_tree_of(ostudy: optuna.Study, tracking_uri: str | None = None) -> RunTree | None:
    """The MLflow run tree `ablate run` recorded with the study, if any."""
    attrs = ostudy.user_attrs.get("mlflow")
    if attrs is None:
        return None
    return RunTree(
        tracking_uri or attrs["tracking_uri"],
        attrs["experiment_id"],
        attrs["study_run_id"],
        attrs["cell_run_ids"],
    )
