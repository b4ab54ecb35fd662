"""Opening the Optuna study behind a study file, and what is recorded with the study itself:
the recipe's fingerprint, the spec, the MLflow run tree."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ablate.errors import SpecError, StorageError
from ablate.spec import Recipe
from ablate.study._optuna import open_storage
from ablate.study._queue import Queue
from ablate.study_file import Study, build_study
from ablate.track import RunTree, flatten
from ablate.urls import mask_password, sqlite_path, without_password

_FINGERPRINT, _SPEC, _FILE, _MLFLOW = "fingerprint", "spec", "study_file", "mlflow"
_PLAN = "plan"  # the claims and the seeds, and whether they were fixed before any result


def default_storage_url(results: Path, name: str) -> str:
    return f"sqlite:///{(results / name / 'optuna.db').resolve()}"


def recipe_fingerprint(study: Study) -> dict[str, Any]:
    """What must not change between two runs of one study: the base recipe, the metric and
    the sweep's cells (its grid, variants or search space). Seeds may be added."""
    # keys at their default are left out, so adding a sweep key to ablate changes no stored
    # study's fingerprint (grid, variants and search were always written)
    sweep = study.spec.sweep.model_dump(mode="json", exclude={"seeds"})
    for key in _LATER_SWEEP_KEYS:
        if not sweep.get(key):
            sweep.pop(key, None)
    return {
        "base": flatten(study.spec.base.model_dump(mode="json")),
        "metric": study.spec.metric.model_dump(mode="json"),
        "sweep": flatten(sweep),
    }


_LATER_SWEEP_KEYS = ("tricks", "design")
_UNSET = "\0unset"


def _shown(value: Any) -> str:
    return "unset" if value == _UNSET else repr(value)


def _changes(stored: Mapping[str, Any], mine: Mapping[str, Any]) -> list[str]:
    """`section.key: old -> new` for each difference (a section a study stored before this
    check existed is not compared)."""
    changes = []
    defaults = {"base": flatten(Recipe().model_dump(mode="json"))}
    for section, values in mine.items():
        before = stored.get(section)
        if before is None:
            continue
        for key in sorted(set(before) | set(values)):
            old, new = before.get(key, _UNSET), values.get(key, _UNSET)
            if old == _UNSET and new == defaults.get(section, {}).get(key, _UNSET):
                continue  # a key added by a later release, at its default: the same recipe
            if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
                changes.append(f"{section}.{key}: {_shown(old)} -> {_shown(new)}")
    return changes


def create_or_load(study: Study, storage_url: str, tracking_uri: str | None = None) -> Queue:
    """The queue of this study file's Optuna study; refuses one run with another recipe or
    another sweep, and, once a trial has a result, other seeds or claims (`study_plan`)."""
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
    elif changes := _changes(stored, mine):
        more = f" and {len(changes) - 5} more" if len(changes) > 5 else ""
        raise SpecError(
            f"{study.path}: study {study.spec.name!r} in {mask_password(storage_url)} was run "
            f"with another recipe or sweep ({'; '.join(changes[:5])}{more}); a study's recipe "
            "and cells are fixed (its seeds and claims too, once a trial has a result): give "
            "this one a new name (--set name=...) or delete its results folder to start over"
        )
    else:
        if stored != mine:  # a study stored before the sweep was part of its fingerprint
            ostudy.set_user_attr(_FINGERPRINT, mine)
    queue = Queue(ostudy, storage_url, tracking_uri or _tracking_of(ostudy))
    _check_plan(study, queue, storage_url)
    if ostudy.user_attrs.get(_SPEC) != (spec := study.spec.model_dump(mode="json")):
        ostudy.set_user_attr(_SPEC, spec)  # every worker opens the study with it
    return queue


def study_plan(study: Study) -> dict[str, Any]:
    """What is fixed once any trial has a result: the declared claims and the seeds (a list,
    or the adaptive rule). Raising a fixed seed count after a look at the results, or
    choosing claims after seeing them, inflates the chance of a false finding."""
    return {
        "claims": [c.model_dump(mode="json") for c in study.spec.claims],
        "seeds": study.spec.sweep.model_dump(mode="json")["seeds"],
    }


def planned_before(queue: Queue) -> bool | None:
    """Whether the study's plan (`study_plan`) was recorded before any trial had a result;
    None for a study that has no plan recorded (one begun before plans were stored, or read
    without `create_or_load`)."""
    stored = queue.attrs.get(_PLAN)
    return None if stored is None else bool(stored.get("planned_before", False))


def _check_plan(study: Study, queue: Queue, storage_url: str) -> None:
    """Record the study's plan with whether any trial had a result then (`planned_before`),
    or refuse another plan once one has: a changed claim or seed list is one line naming
    each change and the remedies (a new study name, adaptive seeds declared up front)."""
    mine = study_plan(study)
    stored = queue.attrs.get(_PLAN)
    if stored is not None and {k: stored.get(k) for k in mine} == mine:
        return
    results = sum(1 for r in queue.records(results=False) if r.done)
    if stored is None or not results:
        before = stored.get("planned_before", True) if stored is not None else not results
        queue.ostudy.set_user_attr(_PLAN, {**mine, "planned_before": before})
        return
    changes = [
        f"{key}: {_shown(stored.get(key, _UNSET))} -> {_shown(mine[key])}"
        for key in mine
        if json.dumps(stored.get(key), sort_keys=True) != json.dumps(mine[key], sort_keys=True)
    ]
    raise SpecError(
        f"{study.path}: study {study.spec.name!r} in {mask_password(storage_url)} has "
        f"{results} trial result(s) under another plan ({'; '.join(changes)}); claims and "
        "seeds are fixed once a result is in (seeds raised after a look, or claims chosen "
        "after one, make false findings likelier than the tests say): run the new plan as "
        "a new study (--set name=...), or declare adaptive seeds up front (sweep.seeds: "
        "{start: 3, max: 10, step: 2}), whose sequential test allows for its looks"
    )


def load_existing(name: str, storage_url: str, *, read_only: bool = False) -> Queue:
    """A study that must already exist (for `status`, `report`, `worker`); `read_only` for a
    command that only reads it (`status`, `report`), which skips Optuna's table creation and
    schema-version check (see `open_storage`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if (file := sqlite_path(storage_url)) is not None and not file.exists():
        raise SpecError(
            f"no study {name!r}: {file} does not exist; start it with `ablate run` "
            "(or pass --results/--storage where it ran)"
        )
    try:
        storage = open_storage(storage_url, read_only=read_only)
        ostudy = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise SpecError(f"no study {name!r} in {storage_url}; start it with `ablate run`") from None
    return Queue(ostudy, storage_url, _tracking_of(ostudy))


def holds_trials(name: str, storage_url: str) -> bool:
    """Whether the storage has study `name` with at least one trial; an SQLite file that is
    not there is not created."""
    file = sqlite_path(storage_url)
    if file is not None and not file.exists():
        return False
    try:
        queue = load_existing(name, storage_url, read_only=True)
    except SpecError:  # no such study there
        return False
    except StorageError:  # not readable as it is: opening it for the run says why
        return True
    return bool(queue.store.count((*TrialState,)))


def stored_study(queue: Queue, fallback: str) -> Study:
    """The study as it was run: its spec saved with the Optuna study, its file named."""
    return build_study(queue.attrs[_SPEC], Path(queue.attrs.get(_FILE, fallback)))


def _tracking_of(ostudy: optuna.Study) -> str | None:
    return ostudy.user_attrs.get(_MLFLOW, {}).get("tracking_uri")


def record_run_tree(queue: Queue, tree: RunTree) -> None:
    """Record the MLflow run tree with the study, for `run_tree_of` on any machine. The
    tracking URI is stored without its password: every reader of the study would see it;
    workers take theirs from `--tracking-uri`, ABLATE_TRACKING_URI or the driver's own
    variables."""
    queue.ostudy.set_user_attr(
        _MLFLOW,
        {
            "tracking_uri": without_password(tree.tracking_uri),
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
