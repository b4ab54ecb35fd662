"""A worker declared dead while it was still training (a stalled machine): its late result is
dropped, the re-queued trial stands, and the (cell, seed) completes exactly once."""

from pathlib import Path
from typing import Any

import optuna
import pytest
from rich.console import Console

from ablate.design import Pair
from ablate.spec import build_study
from ablate.study import Locations, Outcome, Queue, TrialResult, create_or_load, run_study
from ablate.study import _worker as worker_module
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
            (running,) = [r for r in other.records() if r.running]
            assert other.end(running.trial_id, Outcome.KILLED, error="worker lost (no heartbeat)")
            assert other.retry(other.record(running.trial_id))
        epoch = EpochResult(1, {"val/mIoU": 0.5 + len(calls)}, [])
        return FitResult([epoch], False, 0.01, {"val/mIoU": 0.5 + len(calls)})

    monkeypatch.setattr(worker_module, "fit", fit)
    where = Locations.resolve(tmp_path / "results", "stalled", url, None)
    outcome = run_study(study, where, None, 1, Console(quiet=True))

    assert outcome.failed == [] and len(calls) == 2
    first, retry = create_or_load(study, url).records()
    assert first.key == retry.key == ("aux.weight=0", 0)
    assert first.outcome == Outcome.KILLED and first.value is None
    assert first.error == "worker lost (no heartbeat)"
    assert retry.outcome == Outcome.COMPLETE and retry.value == 2.5
    assert retry.attempt == 2
    client = _client(where.tracking_uri)
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
