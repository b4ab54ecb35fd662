"""A worker declared dead while it was still training (a stalled machine): its late result is
dropped, the re-queued trial stands, and the (cell, seed) completes exactly once."""

import functools
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from rich.console import Console

from ablate.design import Pair
from ablate.study import Locations, Outcome, Queue, TrialResult, create_or_load, run_study
from ablate.study._events import Warned
from ablate.study_file import Study, build_study
from ablate.train import EpochResult, FitResult
from tests.study.fakes import calls_of, count_call, fit_two_epochs, work_here


def _fit_declared_dead_at_first(
    study: Study,
    url: str,
    calls: Path,
    recipe: Any,
    seed: int,
    device: Any,
    on_epoch: Any = None,
    checkpoint: Any = None,
) -> FitResult:
    """Its first call is declared dead meanwhile by another process's sweep."""
    n = count_call(calls)
    if n == 1:
        other = create_or_load(study, url)
        (running,) = [r for r in other.records() if r.running]
        assert other.end(running.trial_id, Outcome.KILLED, error="worker lost (no heartbeat)")
        assert other.retry(other.record(running.trial_id))
    epoch = EpochResult(1, {"val/mIoU": 0.5 + n}, [])
    return FitResult([epoch], False, 0.01, {"val/mIoU": 0.5 + n})


def test_a_worker_declared_dead_mid_trial_drops_its_result_and_the_retry_stands(
    tmp_path: Path,
) -> None:
    study = build_study(
        {
            "name": "stalled",
            "base": {"data": {"num_classes": 4, "image_size": [32, 32]}},
            "sweep": {"grid": {"loss.aux.weight": [0.0]}, "seeds": [0]},
        },
        tmp_path / "stalled.yaml",
    )
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    calls = tmp_path / "calls"
    fit = functools.partial(_fit_declared_dead_at_first, study, url, calls)
    where = Locations.resolve(tmp_path / "results", "stalled", url, None)
    outcome = run_study(study, where, None, 1, Console(quiet=True), train=fit)

    assert outcome.failed == [] and calls_of(calls) == 2
    first, retry = create_or_load(study, url).records()
    assert first.key == retry.key == ("aux.weight=0", 0)
    assert first.outcome == Outcome.KILLED and first.value is None
    assert first.error == "worker lost (no heartbeat)"
    assert retry.outcome == Outcome.COMPLETE and retry.value == 2.5
    assert retry.attempt == 2
    client = MlflowClient(where.tracking_uri)
    assert client.get_run(first.mlflow_run_id).info.status == "KILLED"
    assert client.get_run(retry.mlflow_run_id).info.status == "FINISHED"


def test_a_sweep_losing_the_race_to_the_worker_leaves_the_completed_trial_untouched(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    queue = Queue(optuna.create_study(storage=url), url)
    queue.enqueue(Pair("c", 0, {}))
    trial_id = queue.pop()
    assert trial_id is not None
    assert queue.end(trial_id, Outcome.COMPLETE, 0.7, TrialResult(final={"val/mIoU": 0.7}))
    # the sweep, a moment late, must write nothing: neither outcome nor error
    assert not queue.end(trial_id, Outcome.KILLED, error="worker lost")
    record = queue.record(trial_id)
    assert record.outcome == Outcome.COMPLETE and record.value == 0.7
    assert record.error == "" and record.result.final == {"val/mIoU": 0.7}


# --------------------------------------------------------------------------- faults of the stores


def _one_trial_study(tmp_path: Path, name: str) -> Any:
    return build_study(
        {
            "name": name,
            "base": {"data": {"num_classes": 4, "image_size": [32, 32]}},
            "sweep": {"grid": {"loss.aux.weight": [0.0]}, "seeds": [0, 1]},
        },
        tmp_path / f"{name}.yaml",
    )


def test_a_full_disk_while_saving_model_pt_loses_the_file_not_the_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from ablate import track

    study = _one_trial_study(tmp_path, "full_disk")

    def no_space(self: Any, obj: object, name: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(track.TrialRun, "log_torch", no_space)
    where = Locations.resolve(tmp_path / "results", "full_disk", None, None)
    seen = work_here(study, where, fit_two_epochs)

    records = create_or_load(study, where.storage_url).records()
    assert [(r.outcome, r.attempt) for r in records] == [(Outcome.COMPLETE, 1)] * 2  # no retry
    assert sorted(r.value for r in records) == [0.2, 1.2]
    assert [len(r.result.history) for r in records] == [2, 2]
    warned = [e.message for e in seen if isinstance(e, Warned)]
    assert len(warned) == 2 and all("model.pt not saved" in w for w in warned)
    assert all("No space left on device" in w for w in warned)
    client = MlflowClient(where.tracking_uri)
    for r in records:
        run = client.get_run(r.mlflow_run_id)
        assert run.info.status == "FINISHED" and run.data.metrics["val/mIoU"] == r.value


def test_mlflow_failing_mid_trial_keeps_the_metrics_and_sends_them_when_it_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ablate import track

    study = _one_trial_study(tmp_path, "flaky")
    monkeypatch.setattr(track, "FLUSH_S", 0.0)  # every epoch is sent at once
    real_flush = track.TrialRun.flush
    calls: list[int] = []

    def flaky(self: Any) -> None:
        calls.append(1)
        if len(calls) == 1:  # the first epoch of the first trial: the store is away
            raise RuntimeError("database is locked")
        real_flush(self)

    monkeypatch.setattr(track.TrialRun, "flush", flaky)
    where = Locations.resolve(tmp_path / "results", "flaky", None, None)
    seen = work_here(study, where, fit_two_epochs)

    warned = [e.message for e in seen if isinstance(e, Warned)]
    assert len(warned) == 1 and "database is locked" in warned[0]
    records = create_or_load(study, where.storage_url).records()
    client = MlflowClient(where.tracking_uri)
    assert len(records) == 2
    for r in records:
        assert r.outcome is Outcome.COMPLETE
        history = client.get_metric_history(r.mlflow_run_id, "val/mIoU")
        assert sorted(m.step for m in history) == [1, 2]  # the held-back epoch arrived once
        assert client.get_run(r.mlflow_run_id).info.status == "FINISHED"


def test_a_tracking_store_that_cannot_take_a_run_stops_the_worker_and_requeues_the_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ablate import track
    from ablate.errors import StorageError

    study = _one_trial_study(tmp_path, "readonly")
    trained: list[int] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("attempt to write a readonly database")

    monkeypatch.setattr(track.TrialRun, "__init__", refuse)
    where = Locations.resolve(tmp_path / "results", "readonly", None, None)
    with pytest.raises(StorageError) as stopped:
        work_here(study, where, lambda *a, **k: trained.append(1))

    message = str(stopped.value)
    assert "attempt to write a readonly database" in message
    assert "was re-queued" in message and where.tracking_uri in message
    assert trained == []
    records = create_or_load(study, where.storage_url).records()
    killed = [r for r in records if r.outcome is Outcome.KILLED]
    assert len(killed) == 1 and "cannot take a new run" in killed[0].error
    assert [r.state for r in records if r.key == killed[0].key] == ["KILLED", "WAITING"]


def _fit_with_weights(*args: Any, **kwargs: Any) -> FitResult:
    import dataclasses

    weights = {"background": 0.25, "disc": 1.5, "box": 0.0}
    return dataclasses.replace(fit_two_epochs(*args, **kwargs), class_weights=weights)


def test_balanced_class_weights_are_logged_on_the_trial_run(tmp_path: Path) -> None:
    study = _one_trial_study(tmp_path, "weights")
    where = Locations.resolve(tmp_path / "results", "weights", None, None)
    outcome = run_study(study, where, None, 1, Console(quiet=True), train=_fit_with_weights)
    assert outcome.failed == []
    client = MlflowClient(where.tracking_uri)
    for r in create_or_load(study, where.storage_url).records():
        params = client.get_run(r.mlflow_run_id).data.params
        assert params["loss.ce.class_weight/disc"] == "1.5"
        assert params["loss.ce.class_weight/box"] == "0"
