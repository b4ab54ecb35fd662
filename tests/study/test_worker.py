"""A worker declared dead while it was still training (a stalled machine): its late result is
dropped, the re-queued trial stands, and the (cell, seed) completes exactly once."""

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from rich.console import Console

from ablate.spec import build_study
from ablate.study import Locations, create_or_load, run_study
from ablate.study import _worker as worker_module
from ablate.study._queue import finish, pop_waiting, requeue_stale
from ablate.study._storage import trial_key
from ablate.track import _client
from ablate.train import EpochResult, FitResult


def test_a_worker_declared_dead_mid_trial_drops_its_result_and_the_retry_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    calls: list[int] = []

    def fit(recipe: Any, seed: int, device: Any, on_epoch: Any = None) -> FitResult:
        calls.append(seed)
        if len(calls) == 1:  # meanwhile, another process's sweep declares this worker dead
            other = create_or_load(study, url)
            (running,) = other.get_trials(states=(TrialState.RUNNING,))
            lost = {"error": "worker lost (no heartbeat)"}
            assert finish(other, running._trial_id, TrialState.FAIL, None, lost)
            requeue_stale(other, other._storage.get_trial(running._trial_id))
        epoch = EpochResult(1, {"val/mIoU": 0.5 + len(calls)}, [])
        return FitResult([epoch], False, 0.01, {"val/mIoU": 0.5 + len(calls)})

    monkeypatch.setattr(worker_module, "fit", fit)
    where = Locations.resolve(tmp_path / "results", "stalled", url, None)
    outcome = run_study(study, where, None, 1, Console(quiet=True))

    assert outcome.failed == [] and len(calls) == 2
    ostudy = create_or_load(study, url)
    first, retry = sorted(ostudy.get_trials(), key=lambda t: t.number)
    assert trial_key(first) == trial_key(retry) == ("aux.weight=0", 0)
    assert first.state == TrialState.FAIL and first.value is None
    assert first.user_attrs["error"] == "worker lost (no heartbeat)"
    assert retry.state == TrialState.COMPLETE and retry.value == 2.5
    assert retry.user_attrs["attempt"] == 2
    client = _client(where.tracking_uri)
    assert client.get_run(first.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert client.get_run(retry.user_attrs["mlflow_run_id"]).info.status == "FINISHED"


def test_a_sweep_losing_the_race_to_the_worker_leaves_the_completed_trial_untouched(
    tmp_path: Path,
) -> None:
    ostudy = optuna.create_study(storage=f"sqlite:///{tmp_path / 'o.db'}")
    ostudy.enqueue_trial({}, user_attrs={"cell": "c", "seed": 0})
    trial_id = pop_waiting(ostudy)
    assert trial_id is not None
    assert finish(ostudy, trial_id, TrialState.COMPLETE, 0.7, {"outcome": "complete"})
    # the sweep, a moment late, must write nothing: neither state nor error
    assert not finish(ostudy, trial_id, TrialState.FAIL, None, {"error": "worker lost"})
    trial = ostudy._storage.get_trial(trial_id)
    assert trial.state == TrialState.COMPLETE and trial.value == 0.7
    assert "error" not in trial.user_attrs and trial.user_attrs["outcome"] == "complete"
