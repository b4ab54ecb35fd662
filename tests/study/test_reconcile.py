"""After a stop between a trial's two writes (its Optuna record, then its MLflow run), the next
start ends the run from the record: FINISHED with the epochs it had not sent, or KILLED. A
tracking store lost meanwhile stops the command with one line, the records kept."""

import functools
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from rich.console import Console

from ablate.errors import StorageError
from ablate.study import (
    Locations,
    Outcome,
    Queue,
    TrialResult,
    create_or_load,
    reconcile,
    reconcile_and_say,
    run_study,
    start_study,
)
from ablate.study_file import build_study, load_study
from ablate.track import RunTree, TrialRun
from ablate.train import FitResult
from tests.study.fakes import fit_two_epochs
from tests.study.test_run_cli import STUDY

HISTORY = [
    {"train/loss": 1.5, "val/mIoU": 0.30, "train/aux_weight": 0.4},
    {"train/loss": 1.1, "val/mIoU": 0.42, "train/aux_weight": 0.4},  # rounded
]


@pytest.fixture()
def started(tmp_path: Path) -> tuple[Queue, RunTree]:
    """`ablate run` up to its workers: the queue with every pair, the MLflow run tree."""
    (tmp_path / "tiny.yaml").write_text(STUDY)
    study = load_study(tmp_path / "tiny.yaml")
    where = Locations.resolve(tmp_path / "results", "tiny", None, None)
    started = start_study(study, where, Console(quiet=True))
    return started.queue, started.tree


def _claim(queue: Queue, tree: RunTree, record_run: bool = True) -> tuple[int, TrialRun]:
    """A worker's first steps on a trial: the claim and its MLflow run (recorded or not)."""
    trial_id = queue.pop()
    assert trial_id is not None
    record = queue.record(trial_id)
    run = TrialRun(tree, "tiny", record.cell, record.seed, record.number)
    if record_run:
        queue.started(trial_id, run.run_id, "cpu")
    return trial_id, run


def test_a_complete_trial_s_running_run_ends_finished_with_the_epochs_it_never_sent(
    started: tuple[Queue, RunTree],
) -> None:
    queue, tree = started
    trial_id, run = _claim(queue, tree)
    run.log_metrics({"val/mIoU": 0.30}, step=1)
    run.flush()  # epoch 1 reached MLflow; epoch 2 was held back when the process died
    final = {"val/mIoU": 0.4200004321}  # the history holds it rounded
    result = TrialResult(history=HISTORY, final=final, best=final)
    assert queue.end(trial_id, Outcome.COMPLETE, 0.4200004321, result)

    done = reconcile(queue, tree)

    assert (done.finished, done.ended) == (1, 0)
    client = MlflowClient(tree.tracking_uri)
    stored = client.get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    history = client.get_metric_history(run.run_id, "val/mIoU")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.30), (2, 0.4200004321)]  # once
    assert [m.step for m in client.get_metric_history(run.run_id, "train/loss")] == [1, 2]
    assert client.get_metric_history(run.run_id, "train/aux_weight") == []  # per iteration
    assert not reconcile(queue, tree)  # nothing left to do


def test_a_killed_trial_s_run_ends_killed_with_its_error_and_a_running_one_is_left_alone(
    started: tuple[Queue, RunTree],
) -> None:
    queue, tree = started
    killed_id, killed_run = _claim(queue, tree)
    assert queue.end(killed_id, Outcome.KILLED, error="interrupted (SIGTERM)")
    _, live_run = _claim(queue, tree)  # a worker still training it

    done = reconcile(queue, tree)

    assert (done.finished, done.ended) == (0, 1)
    client = MlflowClient(tree.tracking_uri)
    stored = client.get_run(killed_run.run_id)
    assert stored.info.status == "KILLED"
    assert stored.data.tags["ablate.error"] == "interrupted (SIGTERM)"
    assert client.get_run(live_run.run_id).info.status == "RUNNING"


def test_a_run_its_trial_never_recorded_ends_killed_once_the_trial_is_not_running(
    started: tuple[Queue, RunTree],
) -> None:
    queue, tree = started
    trial_id, orphan = _claim(queue, tree, record_run=False)
    assert not reconcile(queue, tree)  # its worker may be about to record it
    assert queue.end(trial_id, Outcome.KILLED, error="worker lost (no heartbeat)")

    assert reconcile(queue, tree).ended == 1
    stored = MlflowClient(tree.tracking_uri).get_run(orphan.run_id)
    assert stored.info.status == "KILLED"
    assert stored.data.tags["ablate.error"] == "stopped before its trial recorded this run"


def test_a_diverged_trial_s_run_ends_failed_and_says_diverged(
    started: tuple[Queue, RunTree],
) -> None:
    queue, tree = started
    trial_id, run = _claim(queue, tree)
    assert queue.end(trial_id, Outcome.DIVERGED, result=TrialResult(history=HISTORY[:1]))

    assert reconcile(queue, tree).ended == 1
    client = MlflowClient(tree.tracking_uri)
    stored = client.get_run(run.run_id)
    assert (stored.info.status, stored.data.tags["ablate.outcome"]) == ("FAILED", "diverged")
    assert [m.value for m in client.get_metric_history(run.run_id, "val/mIoU")] == [0.30]


def test_a_run_whose_id_never_reached_its_trial_ends_killed_when_the_trial_is_swept(
    started: tuple[Queue, RunTree],
) -> None:
    """The storage went away between creating the run and recording its id: the trial is
    killed later (the heartbeat sweep, a stop), and its run must not stay RUNNING for good."""
    queue, tree = started
    trial_id, orphan = _claim(queue, tree, record_run=False)
    _, other = _claim(queue, tree)  # another trial's run, recorded and still training

    queue.abandon(trial_id, "worker lost (no heartbeat)")

    client = MlflowClient(tree.tracking_uri)
    assert client.get_run(orphan.run_id).info.status == "KILLED"
    assert client.get_run(other.run_id).info.status == "RUNNING"


def test_a_deleted_tracking_database_fails_the_reconcile_with_one_line_keeping_the_record(
    started: tuple[Queue, RunTree],
) -> None:
    queue, tree = started
    trial_id, _ = _claim(queue, tree)
    result = TrialResult(history=HISTORY, final={"val/mIoU": 0.42}, best={"val/mIoU": 0.42})
    assert queue.end(trial_id, Outcome.COMPLETE, 0.42, result)
    db = tree.tracking_uri.removeprefix("sqlite:///")
    Path(db).unlink()

    with pytest.raises(StorageError) as stopped:
        reconcile_and_say(queue, tree, Console(quiet=True))

    message = str(stopped.value)
    assert "tracking store cannot end the trial runs left RUNNING" in message
    assert db in message and "\n" not in message
    assert queue.record(trial_id).outcome is Outcome.COMPLETE


def _fit_deleting_the_tracking_db(
    db: Path, recipe: Any, seed: int, device: Any, on_epoch: Any = None, checkpoint: Any = None
) -> FitResult:
    """The study's last trial, its MLflow run made: the tracking database is deleted while it
    trains, so no worker asks for another run and the end of `run_study` meets it first."""
    db.unlink()
    return fit_two_epochs(recipe, seed, device, on_epoch=on_epoch, checkpoint=checkpoint)


def test_a_tracking_database_deleted_after_the_last_run_was_made_stops_run_study_with_one_line(
    tmp_path: Path,
) -> None:
    study = build_study(
        {
            "name": "late",
            "base": {"data": {"num_classes": 4, "image_size": [32, 32]}},
            "sweep": {"grid": {"loss.aux.weight": [0.0]}, "seeds": [0]},
        },
        tmp_path / "late.yaml",
    )
    where = Locations.resolve(tmp_path / "results", "late", None, None)
    fit = functools.partial(_fit_deleting_the_tracking_db, tmp_path / "results" / "mlflow.db")

    with pytest.raises(StorageError) as stopped:
        run_study(study, where, None, 1, Console(quiet=True), train=fit)

    assert "tracking store cannot end the trial runs left RUNNING" in str(stopped.value)
    (record,) = create_or_load(study, where.storage_url).records()
    assert record.outcome is Outcome.COMPLETE  # what was trained is kept
