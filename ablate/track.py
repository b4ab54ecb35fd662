"""Everything MLflow: the study run, one run per cell, one nested run per (cell, seed).

Only `MlflowClient` with explicit run ids is used — never the fluent "active run", which is
process-global state and wrong in worker processes.

What the MLflow UI shows:

- The experiment is tagged `mlflow.experimentKind = custom_model_development` (the
  "Machine learning" type of MLflow 3's experiment-type selector), so MLflow 3 UIs that read the
  tag open it on the training runs, not the GenAI traces. The 3.17 UI ignores the tag and
  follows a global switch (its sidebar's "GenAI | Model training", default GenAI, kept per
  browser) or `?workflowType=machine_learning` in the URL, which `runs_url` adds.
- A cell run holds, as params, the value of each swept key it sets, under its dotted path
  (`loss.aux.weight`), so the runs table compares cells by column once the column is picked;
  the seeds it plans are the tag `ablate.seeds` (a tag: params cannot change, and a study may
  gain seeds). The report adds its aggregates over seeds (`ablate.report.publish`).
- A trial run is named `seed <seed> · <cell>`: the runs table cuts long names short, and
  under its cell's row the seed is what tells it apart.
- Step axis: every metric of a trial shares one, the optimisation-step count. A metric measured
  at an evaluation (`val/...`, `test/...`, the epoch means `train/loss`, `train/lr`, ...) is
  logged at the number of steps trained before it; a per-step series (`train/aux_weight`,
  `train/grad/<layer>`) at the step's own index t, counted from 0 (the t of α_t = f(t/T)).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.urls import POOL_KEPT, pool_extra, scheme, sqlite_path

_LEVEL, _STUDY, _CELL = "ablate.level", "ablate.study", "ablate.cell"
_SEEDS = "ablate.seeds"  # a cell run's planned seed count
_PARENT = "mlflow.parentRunId"
_NUMBER = "ablate.trial_number"
# MLflow 3's experiment type; "custom_model_development" is the UI's "Machine learning"
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
_BATCH = 100  # MLflow accepts at most 100 params (1000 metrics) in one log_batch call
FLUSH_S = 5.0  # a trial's metrics reach MLflow at least this often
_CONCURRENT_FROM = 8  # cells from which their runs are updated by several threads at once


@functools.lru_cache(maxsize=16)
def _client(tracking_uri: str) -> Any:
    """One client per tracking URI and process: building one resolves the store and the
    registry each time (~1 ms), while the store behind it is shared anyway (MLflow caches it
    per URI); the client itself holds no run state, so sharing it changes nothing else."""
    return _import_mlflow()(tracking_uri=tracking_uri)


def _import_mlflow() -> Any:
    """MLflow's client class, imported on first use: `import mlflow` costs ~1.3 s of CPU."""
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    # a SQL tracking store: see urls.POOL_KEPT
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", str(POOL_KEPT))
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW", str(pool_extra()))
    from mlflow import MlflowClient

    # after the import, which sets MLflow's loggers to INFO: MLflow announces every database
    # migration at INFO, and the user needs none of it
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # a failing database is logged there with its whole traceback; ablate reports the cause
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    return MlflowClient


def default_tracking_uri(results: Path) -> str:
    return f"sqlite:///{(results / 'mlflow.db').resolve()}"


@dataclass(frozen=True)
class RunTree:
    """Where a study's runs live; created once by `ablate run`, read by every worker."""

    tracking_uri: str
    experiment_id: str
    study_run_id: str
    cell_run_ids: Mapping[str, str]


def _now_ms() -> int:
    return int(time.time() * 1000)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"loss": {"aux": {"weight": 0.4}}} -> {"loss.aux.weight": 0.4}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass(frozen=True)
class CellInfo:
    """What a cell run shows in the runs table: the value of each swept key it sets (dotted
    path -> value; empty for a search cell, sampled later) and the seeds it plans."""

    params: Mapping[str, Any]
    seeds: int


def ensure_run_tree(
    tracking_uri: str,
    study_name: str,
    cells: Iterable[str],
    artifact_root: Path | None,
    study_params: Mapping[str, Any],
    cell_info: Mapping[str, CellInfo] | None = None,
) -> RunTree:
    """Find or create the experiment, the study run and every cell run (idempotent); each cell
    run holds its `cell_info`."""
    client = _client(tracking_uri)
    experiment_id = _experiment(client, study_name, artifact_root)
    runs = client.search_runs(
        [experiment_id], f"tags.`{_STUDY}` = '{study_name}'", max_results=5000
    )
    study_runs = [r for r in runs if r.data.tags.get(_LEVEL) == "study"]
    if study_runs:
        study_run_id = study_runs[0].info.run_id
    else:
        run = client.create_run(
            experiment_id, tags={_LEVEL: "study", _STUDY: study_name}, run_name=study_name
        )
        study_run_id = run.info.run_id
        log_params(tracking_uri, study_run_id, study_params, client=client)
    found = {
        r.data.tags[_CELL]: r
        for r in runs
        if r.data.tags.get(_LEVEL) == "cell" and r.data.tags.get(_PARENT) == study_run_id
    }
    cell_runs = {cell: r.info.run_id for cell, r in found.items()}
    tags = {_LEVEL: "cell", _STUDY: study_name, _PARENT: study_run_id}
    for cell in cells:
        info = (cell_info or {}).get(cell)
        if cell not in found:
            run = client.create_run(experiment_id, tags={**tags, _CELL: cell}, run_name=cell)
            cell_runs[cell] = run.info.run_id
        if info is not None:
            _show_cell(client, cell_runs[cell], info, found.get(cell))
    return RunTree(tracking_uri, experiment_id, study_run_id, cell_runs)


def _experiment(client: Any, name: str, artifact_root: Path | None) -> str:
    """The study's experiment id, created with the "Machine learning" kind if new."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = (artifact_root / name).resolve().as_uri() if artifact_root else None
        kind = dict([EXPERIMENT_KIND])
        return str(client.create_experiment(name, artifact_location=location, tags=kind))
    if EXPERIMENT_KIND[0] not in experiment.tags:  # made by an older ablate
        client.set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND)
    return str(experiment.experiment_id)


def _show_cell(client: Any, run_id: str, info: CellInfo, stored: Any) -> None:
    """Put the swept values (params: they never change for a cell) and the planned seeds (a
    tag: more may be added) on a cell run; `stored` is the run as found, None when new."""
    params = dict(info.params)
    if stored is not None:  # an older ablate's run may lack them
        params = {k: v for k, v in params.items() if k not in stored.data.params}
    if params:
        log_params("", run_id, params, client=client)
    if stored is None or stored.data.tags.get(_SEEDS) != str(info.seeds):
        client.set_tag(run_id, _SEEDS, str(info.seeds))


def experiment_ids(tracking_uri: str) -> dict[str, str]:
    """Experiment name → id of every ablate study in a tracking store."""
    client = _client(tracking_uri)
    return {e.name: e.experiment_id for e in client.search_experiments() if e.name != "Default"}


def runs_url(ui: str, experiment_id: str) -> str:
    """The runs table of an experiment in the MLflow UI at `ui` (http://host:port), in the
    "Machine learning" view: a bare experiment URL opens MLflow 3.17's GenAI overview."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def log_params(
    tracking_uri: str, run_id: str, params: Mapping[str, Any], client: Any = None
) -> None:
    from mlflow.entities import Param

    client = client or _client(tracking_uri)
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), _BATCH):
        client.log_batch(run_id, params=items[i : i + _BATCH])


def trial_run_name(cell: str, seed: int) -> str:
    """A trial run's name in the runs table, seed first (`seed 1 · aux.weight=0.4`): a long
    name is cut short there, and nested under its cell the seed is what differs."""
    return f"seed {seed} · {cell}"


class TrialRun:
    """The MLflow run of one trial; owns it from creation to its terminal status. `clock`
    is what FLUSH_S is measured with."""

    def __init__(
        self,
        tree: RunTree,
        study_name: str,
        cell: str,
        seed: int,
        number: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = _client(tree.tracking_uri)
        run = self._client.create_run(
            tree.experiment_id,
            tags={
                _LEVEL: "trial",
                _STUDY: study_name,
                _CELL: cell,
                "ablate.seed": str(seed),
                _NUMBER: str(number),
                _PARENT: tree.cell_run_ids[cell],
            },
            run_name=trial_run_name(cell, seed),
        )
        self.run_id: str = run.info.run_id
        self._artifact_uri: str = run.info.artifact_uri
        self._tracking_uri = tree.tracking_uri
        self._artifacts: Any = None
        self._pending: list[Any] = []  # metrics not yet sent
        self._clock = clock
        self._sent = clock()

    def log_params(self, params: Mapping[str, Any]) -> None:
        log_params("", self.run_id, params, client=self._client)

    def log_metrics(
        self,
        metrics: Mapping[str, float],
        step: int,
        series: Mapping[str, Sequence[tuple[int, float]]] | None = None,
    ) -> None:
        """One call per evaluation: every metric of it at `step` (the steps trained so far),
        plus per-step `series` ({key: [(step index, value), ...]}). Sent in one batch once
        FLUSH_S have passed since the last one, and when the run ends: MLflow's SQL store
        spends ~7 ms on any batch besides ~0.13 ms a value, which on sub-second epochs cost
        1-2 % of the training time. A run killed mid-trial loses at most its last FLUSH_S of
        metrics."""
        from mlflow.entities import Metric

        now = _now_ms()
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if not math.isnan(v)]
        for key, points in (series or {}).items():
            batch += [Metric(key, float(v), now, i) for i, v in points]
        self._pending += batch
        if self._clock() - self._sent >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Send the metrics held back by `log_metrics`."""
        while self._pending:  # what fails to be sent stays pending for the next try
            self._client.log_batch(self.run_id, metrics=self._pending[:1000])
            del self._pending[:1000]
        self._sent = self._clock()

    def _log_file(self, write: Callable[[Path], object], name: str) -> None:
        """Write the artifact `name` (a run-relative posix path) with `write(path)`, then store
        it. The artifact repository comes from the URI `create_run` returned: the client's
        `log_artifact` and `log_text` would fetch the whole run again to learn it (~4 ms on
        SQLite, a round trip to a tracking server)."""
        if self._artifacts is None:
            from mlflow.store.artifact.artifact_repository_registry import (
                get_artifact_repository,
            )

            self._artifacts = get_artifact_repository(
                self._artifact_uri, tracking_uri=self._tracking_uri
            )
        folder, _, filename = name.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / filename
            write(path)
            self._artifacts.log_artifact(str(path), folder or None)

    def log_torch(self, obj: object, name: str) -> None:
        """torch.save `obj` as an artifact of this run."""
        import torch

        self._log_file(lambda path: torch.save(obj, path), name)

    def log_text(self, text: str, name: str) -> None:
        self._log_file(lambda path: path.write_text(text, encoding="utf-8"), name)

    def set_tag(self, key: str, value: str) -> None:
        self._client.set_tag(self.run_id, key, value[:5000])

    def end(self, status: str) -> None:
        """Send what is held back, then end the run FINISHED, FAILED or KILLED."""
        self.flush()
        self._client.set_terminated(self.run_id, status=status)


def end_if_running(tracking_uri: str, run_id: str, status: str = "KILLED") -> None:
    """End a run left RUNNING (its worker died or was interrupted) with `status`."""
    client = _client(tracking_uri)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status=status)


def study_trial_runs(tracking_uri: str, study_name: str, limit: int = 1000) -> int:
    """How many trial runs (up to `limit`) the tracking store holds for the study: 0 when it
    has no such experiment yet (an SQLite store that is not there is not created)."""
    if (file := sqlite_path(tracking_uri)) is not None and not file.exists():
        return 0
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name(study_name)
    if experiment is None:
        return 0
    query = f"tags.`{_STUDY}` = '{study_name}' and tags.`{_LEVEL}` = 'trial'"
    return len(client.search_runs([experiment.experiment_id], query, max_results=limit))


def delete_study_runs(tracking_uri: str, study_name: str) -> int:
    """Delete (MLflow's soft delete: the UI's "deleted" view still has them) every run of the
    study, so the next run tree starts empty; how many."""
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name(study_name)
    if experiment is None:
        return 0
    tree = RunTree(tracking_uri, str(experiment.experiment_id), "", {})
    ids = [r.info.run_id for r in _every_run(client, tree, f"tags.`{_STUDY}` = '{study_name}'")]
    for run_id in ids:
        client.delete_run(run_id)
    return len(ids)


def running_runs_of_trial(tracking_uri: str, study_name: str, number: int) -> list[str]:
    """The ids of the study's RUNNING runs tagged with Optuna trial `number`."""
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name(study_name)
    if experiment is None:
        return []
    query = (
        f"attributes.status = 'RUNNING' and tags.`{_STUDY}` = '{study_name}' and "
        f"tags.`{_NUMBER}` = '{number}'"
    )
    return [r.info.run_id for r in client.search_runs([experiment.experiment_id], query)]


def running_trial_runs(tree: RunTree) -> dict[str, int | None]:
    """The study's trial runs still RUNNING: run id -> the trial number tagged on it."""
    query = f"attributes.status = 'RUNNING' and tags.`{_LEVEL}` = 'trial'"
    found: dict[str, int | None] = {}
    for run in _every_run(_client(tree.tracking_uri), tree, query):
        number = run.data.tags.get(_NUMBER, "")
        found[run.info.run_id] = int(number) if number.isdigit() else None
    return found


def _every_run(client: Any, tree: RunTree, query: str) -> Iterator[Any]:
    """The study's runs `query` selects, page after page."""
    token = None
    while True:
        page = client.search_runs([tree.experiment_id], query, max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def close_run(
    tracking_uri: str,
    run_id: str,
    status: str,
    history: Sequence[Mapping[str, float]] = (),
    tags: Mapping[str, str] | None = None,
) -> None:
    """End a run its worker left RUNNING (killed between ending its trial and ending its run):
    the per-evaluation metrics of `history` that never reached MLflow are sent at the step the
    worker logs them at (their `train/iteration`; the evaluation's number where that is
    missing), then `tags`, then `status`. Steps already logged are not sent twice."""
    from mlflow.entities import Metric

    client = _client(tracking_uri)
    now = _now_ms()
    keys = {k for epoch in history for k in epoch if k != "train/aux_weight"}  # per iteration
    steps = [int(e.get("train/iteration", i)) for i, e in enumerate(history, start=1)]
    batch = []
    for key in sorted(keys):
        logged = {m.step for m in client.get_metric_history(run_id, key)}
        batch += [
            Metric(key, float(epoch[key]), now, step)
            for step, epoch in zip(steps, history, strict=True)
            if key in epoch and step not in logged and not math.isnan(epoch[key])
        ]
    for i in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[i : i + 1000])
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, value[:5000])
    client.set_terminated(run_id, status=status)


def set_tree_status(tree: RunTree, status: str) -> None:
    """Set the study run and every cell run to `status`: RUNNING while a study trains, KILLED
    when it was stopped; the report ends them FINISHED when done."""
    client = _client(tree.tracking_uri)
    for run_id in [tree.study_run_id, *tree.cell_run_ids.values()]:
        if status == "RUNNING":
            client.update_run(run_id, status=status)
        else:
            client.set_terminated(run_id, status=status)


def log_cell_aggregates(
    tree: RunTree, aggregates: Mapping[str, Mapping[str, float]], finished: Iterable[str]
) -> None:
    """Each cell run gets its aggregates over seeds as metrics (named and scaled by the
    caller: `ablate.report.publish`), so the UI compares cells; the cells whose every seed is
    done end FINISHED. What a cell run already shows is not sent again: a report of hundreds of
    cells re-run on an unchanged study makes one search, not two calls per cell."""
    from mlflow.entities import Metric

    client = _client(tree.tracking_uri)
    now = _now_ms()
    done = set(finished)
    shown = _cell_runs_shown(client, tree)

    def publish(cell: str) -> None:
        run_id = tree.cell_run_ids[cell]
        status, logged = shown.get(run_id, ("", {}))
        batch = [
            Metric(k, float(v), now, 0)
            for k, v in aggregates[cell].items()
            if not math.isnan(v) and logged.get(k) != float(v)
        ]
        if batch:
            client.log_batch(run_id, metrics=batch)
        if cell in done and status != "FINISHED":
            client.set_terminated(run_id, status="FINISHED")

    cells = [cell for cell in aggregates if cell in tree.cell_run_ids]
    if scheme(tree.tracking_uri) == "sqlite" or len(cells) < _CONCURRENT_FROM:
        for cell in cells:
            publish(cell)
        return
    # a server (a SQL database or MLflow's) answers several calls at once, and a study of
    # hundreds of cells makes two calls per cell (1.5x faster with two threads on PostgreSQL);
    # SQLite takes one writer at a time anyway. MLflow's log_batch holds two connections at
    # once, so threads x 2 must fit in the pool, or they wait on each other until it times out
    with ThreadPoolExecutor(max(1, (POOL_KEPT + pool_extra()) // 2)) as pool:
        list(pool.map(publish, cells))  # list(): a call's error is raised here


def _cell_runs_shown(client: Any, tree: RunTree) -> dict[str, tuple[str, dict[str, float]]]:
    """Each cell run's status and latest metrics: run id -> (status, metrics)."""
    query = f"tags.`{_PARENT}` = '{tree.study_run_id}' and tags.`{_LEVEL}` = 'cell'"
    return {
        run.info.run_id: (run.info.status, dict(run.data.metrics))
        for run in _every_run(client, tree, query)
    }


def log_study_artifacts(
    tree: RunTree,
    files: Iterable[Path],
    folder: Path,
    finished: bool,
    tags: Mapping[str, str] | None = None,
) -> None:
    """The report's files, under `report/` as in the results folder, on the study run, and
    `tags` (the report's provenance) on it, replacing those of an earlier report."""
    from mlflow.entities import RunTag

    client = _client(tree.tracking_uri)
    if tags:  # one call, not one per tag; values cut at MLflow's tag length limit
        batch = [RunTag(key, value[:5000]) for key, value in tags.items()]
        client.log_batch(tree.study_run_id, tags=batch)
    for file in files:
        parent = file.parent.relative_to(folder).as_posix()
        client.log_artifact(
            tree.study_run_id, str(file), "report" if parent == "." else f"report/{parent}"
        )
    if finished:
        client.set_terminated(tree.study_run_id, status="FINISHED")
