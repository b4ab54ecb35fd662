"""Several worker processes on one study, on SQLite and on PostgreSQL: every (cell, seed) is
trained exactly once, also when a worker is SIGKILLed or `ablate run` is interrupted mid-trial."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from ablate.spec import load_study
from ablate.study import Locations, design_pairs, run_study
from ablate.study import _run as study_run
from ablate.study._queue import Pair, enqueue, pop_waiting
from ablate.study._storage import open_storage, trial_key
from tests.study.test_run_cli import STUDY

pytestmark = pytest.mark.slow

CellSeed = tuple[str, int]
T = TypeVar("T")

FAST = "base.train.epochs=1"
SLOW = "base.train.epochs=40"  # a trial lasts a second or two: long enough to stop it midway
SHORT_HEARTBEAT = {"ABLATE_HEARTBEAT_S": "1", "ABLATE_GRACE_S": "3"}  # dead after 3 s, not 60


@pytest.fixture()
def study_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(STUDY)
    return tmp_path


def _start_without_training(root: Path, url: str, *overrides: str) -> set[CellSeed]:
    """Everything `ablate run` does before its workers start (the Optuna study with every
    (cell, seed) enqueued, the MLflow study and cell runs), and no training. The design's pairs."""
    study = load_study(root / "tiny.yaml", overrides)
    where = Locations.resolve(root / "results", study.spec.name, url, None)
    with pytest.MonkeyPatch.context() as patch:
        # the pool builds the run tree (while its workers start), then would train: build only
        patch.setattr(study_run, "run_workers", lambda *args: args[-1]())
        run_study(study, where, None, 1, Console(quiet=True))
    return {(p.cell, p.seed) for p in design_pairs(study)}


def _ablate(
    root: Path, log: str, *args: str, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[bytes]:
    """`ablate ARGS` as a child process in `root`, its output in root/LOG."""
    with (root / log).open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ablate", *args],
            cwd=root,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            **popen,
        )


def _finish(proc: subprocess.Popen[bytes], root: Path, log: str, timeout: float = 240) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{log} still running after {timeout} s:\n{(root / log).read_text()}")


def _wait_for(
    find: Callable[[], T | None], proc: subprocess.Popen[bytes], root: Path, log: str
) -> T:
    """Poll `find` until it returns something, while `proc` runs."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = find()
        if found is not None:
            return found
        if proc.poll() is not None:
            pytest.fail(f"{log} exited ({proc.returncode}) too early:\n{(root / log).read_text()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"gave up waiting; {log}:\n{(root / log).read_text()}")


def _running_with_run(ostudy: optuna.Study) -> FrozenTrial | None:
    """A RUNNING trial whose MLflow run exists already (its worker is past claiming it)."""
    for trial in ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "mlflow_run_id" in trial.user_attrs:
            return trial
    return None


def _trial_runs(root: Path) -> dict[str, Any]:
    """MLflow's trial-level runs of the study, by run id."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return {r.info.run_id: r for r in runs if r.data.tags["ablate.level"] == "trial"}


def _assert_every_pair_done_once(
    pairs: set[CellSeed], trials: list[FrozenTrial], runs: dict[str, Any]
) -> None:
    """One COMPLETE trial and one FINISHED MLflow run per (cell, seed); nothing left pending
    or RUNNING in MLflow; every COMPLETE trial points at its FINISHED run."""
    assert not [t.number for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert Counter(trial_key(t) for t in complete) == Counter(pairs)
    finished = [r for r in runs.values() if r.info.status == "FINISHED"]
    assert Counter(
        (r.data.tags["ablate.cell"], int(r.data.tags["ablate.seed"])) for r in finished
    ) == Counter(pairs)
    assert {runs[t.user_attrs["mlflow_run_id"]].info.status for t in complete} == {"FINISHED"}
    assert {r.info.status for r in runs.values()} <= {"FINISHED", "KILLED"}


def _claim_all(url: str, claimed: Any) -> None:
    """A worker that only claims: every WAITING trial it wins, until none is left."""
    ostudy = optuna.load_study(study_name="race", storage=open_storage(url))
    ids = []
    while (trial_id := pop_waiting(ostudy)) is not None:
        ids.append(trial_id)
    claimed.put(ids)


def test_four_processes_popping_at_once_never_claim_one_trial_twice(storage_url: str) -> None:
    ostudy = optuna.create_study(study_name="race", storage=open_storage(storage_url))
    for seed in range(200):
        enqueue(ostudy, Pair("cell", seed, {}), attempt=1)
    ctx = mp.get_context("spawn")
    claimed = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(storage_url, claimed)) for _ in range(4)]
    for proc in procs:
        proc.start()
    ids = [i for _ in procs for i in claimed.get(timeout=240)]
    for proc in procs:
        proc.join()
    assert sorted(ids) == [t._trial_id for t in ostudy.get_trials()]  # each exactly once
    assert {t.state for t in ostudy.get_trials()} == {TrialState.RUNNING}


def test_three_worker_processes_train_every_pair_exactly_once(
    study_dir: Path, storage_url: str
) -> None:
    pairs = _start_without_training(study_dir, storage_url, FAST, "sweep.seeds=[0,1,2,3]")
    worker = ["worker", "tiny", "--storage", storage_url, "--workers", "1"]
    procs = {f"worker{i}.log": _ablate(study_dir, f"worker{i}.log", *worker) for i in range(3)}
    for log, proc in procs.items():
        assert _finish(proc, study_dir, log) == 0, (study_dir / log).read_text()

    trials = optuna.load_study(study_name="tiny", storage=storage_url).get_trials()
    assert len(trials) == len(pairs) == 8  # no pair claimed twice, none retried
    runs = _trial_runs(study_dir)
    assert len(runs) == len(pairs)
    _assert_every_pair_done_once(pairs, trials, runs)


def test_a_sigkilled_workers_trial_is_failed_requeued_and_trained_by_another_worker(
    study_dir: Path, storage_url: str
) -> None:
    pairs = _start_without_training(study_dir, storage_url, SLOW)
    ostudy = optuna.load_study(study_name="tiny", storage=storage_url)
    worker = ["worker", "tiny", "--storage", storage_url, "--workers", "1"]
    victim = _ablate(study_dir, "victim.log", *worker, env=SHORT_HEARTBEAT)
    doomed = _wait_for(lambda: _running_with_run(ostudy), victim, study_dir, "victim.log")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert ostudy.trials[doomed.number].state == TrialState.RUNNING  # killed mid-trial

    rescuer = _ablate(study_dir, "rescuer.log", *worker, env=SHORT_HEARTBEAT)
    assert _finish(rescuer, study_dir, "rescuer.log") == 0, (study_dir / "rescuer.log").read_text()

    trials = ostudy.get_trials()
    killed = trials[doomed.number]
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs["error"] == "worker lost (no heartbeat)"
    retries = [t for t in trials if trial_key(t) == trial_key(killed) and t is not killed]
    assert [(t.state, t.user_attrs["attempt"]) for t in retries] == [(TrialState.COMPLETE, 2)]
    runs = _trial_runs(study_dir)
    assert runs[killed.user_attrs["mlflow_run_id"]].info.status == "KILLED"
    assert len(trials) == len(pairs) + 1
    _assert_every_pair_done_once(pairs, trials, runs)


def test_ctrl_c_stops_ablate_run_with_130_and_running_again_trains_only_what_is_missing(
    study_dir: Path, storage_url: str
) -> None:
    run = ["run", "tiny.yaml", "--storage", storage_url, "--set", SLOW]
    storage = optuna.storages.RDBStorage(storage_url)  # the schema, before `ablate run` opens it
    first = _ablate(study_dir, "first.log", *run, "--workers", "2", start_new_session=True)

    def study() -> optuna.Study | None:
        try:
            return optuna.load_study(study_name="tiny", storage=storage)
        except KeyError:
            return None

    ostudy = _wait_for(study, first, study_dir, "first.log")

    def started_after_one_was_done() -> FrozenTrial | None:
        """A trial that started after one completed: it has a second or two left to run."""
        trials = ostudy.get_trials(deepcopy=False)
        done = [t.datetime_complete for t in trials if t.state == TrialState.COMPLETE]
        first_done = min((d for d in done if d is not None), default=None)
        if first_done is None:
            return None
        for t in trials:
            fresh = t.datetime_start is not None and t.datetime_start > first_done
            if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs and fresh:
                return t
        return None

    seen = _wait_for(started_after_one_was_done, first, study_dir, "first.log")
    os.killpg(first.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    assert _finish(first, study_dir, "first.log", timeout=60) == 130
    assert "run the same command again to resume" in (study_dir / "first.log").read_text()

    trials = ostudy.get_trials()
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert seen.number in {t.number for t in interrupted}
    assert {t.user_attrs["error"] for t in interrupted} == {"interrupted (Ctrl-C)"}
    runs = _trial_runs(study_dir)
    assert {runs[t.user_attrs["mlflow_run_id"]].info.status for t in interrupted} == {"KILLED"}
    done_before = {t.number for t in trials if t.state == TrialState.COMPLETE}

    again = _ablate(study_dir, "again.log", *run, "--workers", "1")
    assert _finish(again, study_dir, "again.log") == 0, (study_dir / "again.log").read_text()
    output = (study_dir / "again.log").read_text()
    assert f"{len(done_before)} already done, {4 - len(done_before)} to train" in output

    trials = ostudy.get_trials()
    complete = {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert done_before < complete  # nothing complete was trained again
    pairs = {(c, s) for c in ("aux.weight=0", "aux.weight=0.4") for s in (0, 1)}
    _assert_every_pair_done_once(pairs, trials, _trial_runs(study_dir))
