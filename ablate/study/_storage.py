"""Opening the Optuna study behind a study file, and what is recorded with the study itself:
the recipe's fingerprint, the spec, the MLflow run tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna

from ablate.errors import SpecError
from ablate.spec import Study, build_study
from ablate.study._optuna import open_storage
from ablate.study._queue import Queue
from ablate.track import RunTree, flatten

_FINGERPRINT, _SPEC, _FILE, _MLFLOW = "fingerprint", "spec", "study_file", "mlflow"


def default_storage_url(results: Path, name: str) -> str:
    return f"sqlite:///{(results / name / 'optuna.db').resolve()}"


def recipe_fingerprint(study: Study) -> dict[str, Any]:
    """What must not change between two runs of one study: the base recipe and the metric."""
    return {
        "base": flatten(study.spec.base.model_dump(mode="json")),
        "metric": study.spec.metric.model_dump(mode="json"),
    }


def create_or_load(study: Study, storage_url: str, tracking_uri: str | None = None) -> Queue:
    """The queue of this study file's Optuna study; refuses one run with another recipe."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ostudy = optuna.create_study(
        study_name=study.spec.name,
        storage=open_storage(storage_url),
        direction=study.spec.metric.goal,
        load_if_exists=True,
    )
    stored = ostudy.user_attrs.get(_FINGERPRINT)
    mine = recipe_fingerprint(study)
    if stored is None:
        ostudy.set_user_attr(_FINGERPRINT, mine)
        ostudy.set_user_attr(_SPEC, study.spec.model_dump(mode="json"))
        ostudy.set_user_attr(_FILE, str(study.path.resolve()))
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
    elif ostudy.user_attrs.get(_SPEC) != (spec := study.spec.model_dump(mode="json")):
        ostudy.set_user_attr(_SPEC, spec)  # e.g. more seeds; every worker opens the study too
    return Queue(ostudy, storage_url, tracking_uri or _tracking_of(ostudy))


def load_existing(name: str, storage_url: str) -> Queue:
    """A study that must already exist (for `status`, `report`, `worker`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage_url.startswith("sqlite:///") and not Path(storage_url[10:]).exists():
        raise SpecError(
            f"no study {name!r}: {storage_url[10:]} does not exist; start it with `ablate run` "
            "(or pass --results/--storage where it ran)"
        )
    try:
        ostudy = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    except KeyError:
        raise SpecError(f"no study {name!r} in {storage_url}; start it with `ablate run`") from None
    return Queue(ostudy, storage_url, _tracking_of(ostudy))


def stored_study(queue: Queue, fallback: str) -> Study:
    """The study as it was run: its spec saved with the Optuna study, its file named."""
    return build_study(queue.attrs[_SPEC], Path(queue.attrs.get(_FILE, fallback)))


def _tracking_of(ostudy: optuna.Study) -> str | None:
    return ostudy.user_attrs.get(_MLFLOW, {}).get("tracking_uri")


def record_run_tree(queue: Queue, tree: RunTree) -> None:
    """Record the MLflow run tree with the study, for `run_tree_of` on any machine."""
    queue.ostudy.set_user_attr(
        _MLFLOW,
        {
            "tracking_uri": tree.tracking_uri,
            "experiment_id": tree.experiment_id,
            "study_run_id": tree.study_run_id,
            "cell_run_ids": dict(tree.cell_run_ids),
        },
    )
    queue.tracking_uri = tree.tracking_uri


def run_tree_of(queue: Queue, tracking_uri: str | None = None) -> RunTree | None:
    """The MLflow run tree `ablate run` recorded with the study, if any."""
    attrs = queue.attrs.get(_MLFLOW)
    if attrs is None:
        return None
    return RunTree(
        tracking_uri or attrs["tracking_uri"],
        attrs["experiment_id"],
        attrs["study_run_id"],
        attrs["cell_run_ids"],
    )
