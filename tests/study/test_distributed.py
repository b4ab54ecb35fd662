"""Several worker processes on one study, on SQLite and on PostgreSQL: every (cell, seed) is
trained exactly once, also when a worker is SIGKILLed or `ablate run` is interrupted mid-trial."""

import multiprocessing as mp
import os
import random
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
from rich.console import Console

from ablate.design import Pair
from ablate.study import Locations, Outcome, Queue, TrialRecord, load_existing, start_study
from ablate.study._optuna import open_storage
from ablate.study_file import load_study
from tests.study.test_run_cli import STUDY

pytestmark = pytest.mark.slow

CellSeed = tuple[str, int]
T = TypeVar("T")

FAST = "base.train.epochs=1"
SLOW = "base.train.epochs=40"  # a trial lasts a second or two: long enough to stop it midway
SHORT_HEARTBEAT = {"ABLATE_HEARTBEAT_S": "1", "ABLATE_GRACE_S": "3"}  # dead after 3 s, not 60
# Where the grace period itself is not under test: long enough that a live worker whose
# heartbeat is delayed on a loaded 2-core machine is not declared dead (its pair would use up
# its retries and the run would end with a failed trial)
KILL_HEARTBEAT = {"ABLATE_HEARTBEAT_S": "1", "ABLATE_GRACE_S": "8"}


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
    start_study(study, where, Console(quiet=True))
    return {(p.cell, p.seed) for p in study.design.pairs(None)}


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
        time.sleep(0.25)  # each poll opens the storage: faster polling takes the workers' CPU
    proc.kill()
    pytest.fail(f"gave up waiting; {log}:\n{(root / log).read_text()}")


def _running_with_run(queue: Queue) -> TrialRecord | None:
    """A RUNNING trial whose MLflow run exists already (its worker is past claiming it)."""
    for record in queue.records():
        if record.running and record.mlflow_run_id:
            return record
    return None


def _trial_runs(root: Path) -> dict[str, Any]:
    """MLflow's trial-level runs of the study, by run id."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return {r.info.run_id: r for r in runs if r.data.tags["ablate.level"] == "trial"}


def _tree_statuses(root: Path) -> dict[str, set[str]]:
    """The statuses of the study run and of the cell runs."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    statuses: dict[str, set[str]] = {}
    for r in client.search_runs([experiment.experiment_id], max_results=1000):
        if r.data.tags["ablate.level"] != "trial":
            statuses.setdefault(r.data.tags["ablate.level"], set()).add(r.info.status)
    return statuses


def _assert_every_pair_done_once(
    pairs: set[CellSeed], trials: list[TrialRecord], runs: dict[str, Any]
) -> None:
    """One COMPLETE trial and one FINISHED MLflow run per (cell, seed); nothing left pending
    or RUNNING in MLflow; every COMPLETE trial points at its FINISHED run."""
    assert not [t.number for t in trials if t.pending]
    complete = [t for t in trials if t.outcome is Outcome.COMPLETE]
    assert Counter(t.key for t in complete) == Counter(pairs)
    finished = [r for r in runs.values() if r.info.status == "FINISHED"]
    assert Counter(
        (r.data.tags["ablate.cell"], int(r.data.tags["ablate.seed"])) for r in finished
    ) == Counter(pairs)
    assert {runs[t.mlflow_run_id].info.status for t in complete} == {"FINISHED"}
    assert {r.info.status for r in runs.values()} <= {"FINISHED", "KILLED"}


def _claim_all(url: str, claimed: Any) -> None:
    """A worker that only claims: every WAITING trial it wins, until none is left."""
    queue = Queue(optuna.load_study(study_name="race", storage=open_storage(url)), url)
    ids = []
    while (trial_id := queue.pop()) is not None:
        ids.append(trial_id)
    claimed.put(ids)


def test_four_processes_popping_at_once_never_claim_one_trial_twice(storage_url: str) -> None:
    ostudy = optuna.create_study(study_name="race", storage=open_storage(storage_url))
    queue = Queue(ostudy, storage_url)
    for seed in range(200):
        queue.enqueue(Pair("cell", seed, {}), attempt=1)
    ctx = mp.get_context("spawn")
    claimed = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(storage_url, claimed)) for _ in range(4)]
    for proc in procs:
        proc.start()
    ids = [i for _ in procs for i in claimed.get(timeout=240)]
    for proc in procs:
        proc.join()
    records = queue.records()
    assert len(records) == len(ostudy.get_trials()) == 200
    assert sorted(ids) == [r.trial_id for r in records]  # each exactly once
    assert {r.state for r in records} == {"RUNNING"}


def test_three_worker_processes_train_every_pair_exactly_once(
    study_dir: Path, storage_url: str
) -> None:
    pairs = _start_without_training(study_dir, storage_url, FAST, "sweep.seeds=[0,1,2,3]")
    worker = ["worker", "tiny", "--storage", storage_url, "--workers", "1"]
    procs = {f"worker{i}.log": _ablate(study_dir, f"worker{i}.log", *worker) for i in range(3)}
    for log, proc in procs.items():
        assert _finish(proc, study_dir, log) == 0, (study_dir / log).read_text()

    queue = load_existing("tiny", storage_url)
    trials = queue.records()
    # no pair claimed twice, none retried
    assert len(trials) == len(queue.ostudy.get_trials()) == len(pairs) == 8
    runs = _trial_runs(study_dir)
    assert len(runs) == len(pairs)
    _assert_every_pair_done_once(pairs, trials, runs)


def test_a_sigkilled_workers_trial_is_failed_requeued_and_trained_by_another_worker(
    study_dir: Path, storage_url: str
) -> None:
    pairs = _start_without_training(study_dir, storage_url, SLOW)
    queue = load_existing("tiny", storage_url)
    worker = ["worker", "tiny", "--storage", storage_url, "--workers", "1"]
    # its own process group: the machine dies with `ablate worker` and its worker process
    victim = _ablate(study_dir, "victim.log", *worker, env=SHORT_HEARTBEAT, start_new_session=True)
    doomed = _wait_for(lambda: _running_with_run(queue), victim, study_dir, "victim.log")
    _kill_group(victim)
    assert queue.record(doomed.trial_id).state == "RUNNING"  # killed mid-trial

    rescuer = _ablate(study_dir, "rescuer.log", *worker, env=SHORT_HEARTBEAT)
    assert _finish(rescuer, study_dir, "rescuer.log") == 0, (study_dir / "rescuer.log").read_text()

    trials = queue.records()
    killed = queue.record(doomed.trial_id)
    assert killed.outcome is Outcome.KILLED and killed.state == "KILLED"
    assert killed.error == "worker lost (no heartbeat)"
    retries = [t for t in trials if t.key == killed.key and t.trial_id != killed.trial_id]
    assert [(t.state, t.attempt) for t in retries] == [("COMPLETE", 2)]
    runs = _trial_runs(study_dir)
    assert runs[killed.mlflow_run_id].info.status == "KILLED"
    assert len(trials) == len(pairs) + 1
    _assert_every_pair_done_once(pairs, trials, runs)


def _kill_group(leader: subprocess.Popen[bytes]) -> None:
    """SIGKILL to a whole process group (`ablate worker` and the worker processes it started):
    a lost machine. SIGKILL to `ablate worker` alone lets its workers end their trials."""
    os.killpg(leader.pid, signal.SIGKILL)
    leader.wait()
    deadline = time.monotonic() + 10
    while _alive_in_group(leader.pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _alive_in_group(pgid: int) -> list[str]:
    """Command lines of the live processes of a process group (zombies, dead but not yet
    reaped by an init that reaps slowly, do not count)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append((stat.parent / "cmdline").read_bytes().decode(errors="replace"))
        except (OSError, IndexError, ValueError):
            continue
    return alive


STOPS = {
    # Ctrl-C in a terminal: SIGINT to the whole process group
    "ctrl-c": (lambda pid: os.killpg(pid, signal.SIGINT), 130, "interrupted (Ctrl-C)"),
    # Slurm preemption, docker stop, systemd: SIGTERM to `ablate run` alone
    "sigterm": (lambda pid: os.kill(pid, signal.SIGTERM), 143, "interrupted (SIGTERM)"),
    # `kill -INT` to `ablate run` alone: its workers must stop too, not claim on
    "sigint-parent": (lambda pid: os.kill(pid, signal.SIGINT), 130, "interrupted (Ctrl-C)"),
    # a closed terminal, a dropped ssh connection: SIGHUP to the whole process group
    "sighup": (lambda pid: os.killpg(pid, signal.SIGHUP), 129, "interrupted (SIGHUP)"),
}


# a signal's path to the workers does not depend on the storage: every stop runs on SQLite,
# and SIGTERM (what ends the trials through the storage) on PostgreSQL as well; the suite's
# time goes to what can differ
STOP_CASES = [
    ("ctrl-c", "sqlite"),
    ("sigterm", "sqlite"),
    ("sigterm", "postgres"),
    ("sigint-parent", "sqlite"),
    ("sighup", "sqlite"),
]


@pytest.mark.parametrize(("how", "storage_url"), STOP_CASES, indirect=["storage_url"])
def test_a_stopped_ablate_run_kills_its_trials_and_running_again_trains_only_what_is_missing(
    study_dir: Path, storage_url: str, how: str
) -> None:
    send, code, reason = STOPS[how]
    run = ["run", "tiny.yaml", "--storage", storage_url, "--set", SLOW]
    storage = open_storage(storage_url)  # the schema, before `ablate run` opens it
    first = _ablate(study_dir, "first.log", *run, "--workers", "2", start_new_session=True)

    def study() -> Queue | None:
        try:
            return Queue(optuna.load_study(study_name="tiny", storage=storage), storage_url)
        except KeyError:
            return None

    queue = _wait_for(study, first, study_dir, "first.log")

    def started_after_one_was_done() -> TrialRecord | None:
        """A trial that started after one completed: it has a second or two left to run."""
        trials = queue.records()
        done = [t.ended for t in trials if t.outcome is Outcome.COMPLETE]
        first_done = min((d for d in done if d is not None), default=None)
        if first_done is None:
            return None
        for t in trials:
            fresh = t.started is not None and t.started > first_done
            if t.running and t.mlflow_run_id and fresh:
                return t
        return None

    seen = _wait_for(started_after_one_was_done, first, study_dir, "first.log")
    send(first.pid)
    assert _finish(first, study_dir, "first.log", timeout=60) == code
    assert "run the same command again to resume" in (study_dir / "first.log").read_text()
    # no worker outlives it (multiprocessing's resource tracker needs a moment to see EOF)
    deadline = time.monotonic() + 10
    while _alive_in_group(first.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive_in_group(first.pid) == []

    trials = queue.records()
    assert not [t.number for t in trials if t.running]
    interrupted = [t for t in trials if t.outcome in (Outcome.FAILED, Outcome.KILLED)]
    assert seen.number in {t.number for t in interrupted}
    assert {(t.outcome, t.state) for t in interrupted} == {(Outcome.KILLED, "KILLED")}
    assert {t.error for t in interrupted} == {reason}
    runs = _trial_runs(study_dir)
    # a trial stopped between its claim and its MLflow run's creation has no run to end
    with_runs = [t for t in interrupted if t.mlflow_run_id]
    assert seen.number in {t.number for t in with_runs}
    assert {runs[t.mlflow_run_id].info.status for t in with_runs} == {"KILLED"}
    assert _tree_statuses(study_dir) == {"study": {"KILLED"}, "cell": {"KILLED"}}
    done_before = {t.number for t in trials if t.outcome is Outcome.COMPLETE}

    again = _ablate(study_dir, "again.log", *run, "--workers", "1")
    assert _finish(again, study_dir, "again.log") == 0, (study_dir / "again.log").read_text()
    output = (study_dir / "again.log").read_text()
    assert f"{len(done_before)} already done, {4 - len(done_before)} to train" in output

    trials = queue.records()
    complete = {t.number for t in trials if t.outcome is Outcome.COMPLETE}
    assert done_before < complete  # nothing complete was trained again
    pairs = {(c, s) for c in ("aux.weight=0", "aux.weight=0.4") for s in (0, 1)}
    _assert_every_pair_done_once(pairs, trials, _trial_runs(study_dir))
    assert _tree_statuses(study_dir) == {"study": {"FINISHED"}, "cell": {"FINISHED"}}


@pytest.mark.parametrize("storage_url", ["sqlite"], indirect=True)  # a process matter
def test_workers_whose_ablate_run_was_killed_stop_and_end_their_trials_killed(
    study_dir: Path, storage_url: str
) -> None:
    run = ["run", "tiny.yaml", "--storage", storage_url, "--set", SLOW, "--workers", "2"]
    storage = open_storage(storage_url)
    first = _ablate(study_dir, "first.log", *run, start_new_session=True)

    def running() -> TrialRecord | None:
        try:
            queue = Queue(optuna.load_study(study_name="tiny", storage=storage), storage_url)
        except KeyError:
            return None
        return _running_with_run(queue)

    seen = _wait_for(running, first, study_dir, "first.log")
    os.kill(first.pid, signal.SIGKILL)  # the parent alone: its workers are orphaned
    first.wait()
    deadline = time.monotonic() + 30
    while _alive_in_group(first.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive_in_group(first.pid) == []  # they noticed and stopped

    queue = load_existing("tiny", storage_url)
    trials = queue.records()
    assert not [t.number for t in trials if t.running]
    stopped = queue.record(seen.trial_id)
    assert (stopped.outcome, stopped.error) == (Outcome.KILLED, "interrupted (SIGTERM)")
    assert _trial_runs(study_dir)[stopped.mlflow_run_id].info.status == "KILLED"

    again = _ablate(study_dir, "again.log", *run)
    assert _finish(again, study_dir, "again.log") == 0, (study_dir / "again.log").read_text()
    pairs = {(c, s) for c in ("aux.weight=0", "aux.weight=0.4") for s in (0, 1)}
    _assert_every_pair_done_once(pairs, queue.records(), _trial_runs(study_dir))


def test_kill_9_of_everything_at_any_moment_then_run_again_completes_each_pair_once(
    study_dir: Path, storage_url: str
) -> None:
    """Three times: wait for one more trial to complete, then kill -9 the whole process group
    a random moment later (mid-trial, mid-write, between a trial's record and its run). Then
    run to the end: every pair COMPLETE once, its run FINISHED with its final metric."""
    seeds = "sweep.seeds=[0,1,2,3]"
    run = ["run", "tiny.yaml", "--storage", storage_url, "--set", SLOW, "--set", seeds]
    storage = open_storage(storage_url)
    rng = random.Random(12)
    complete = 0
    for round_ in range(3):
        log = f"kill{round_}.log"
        proc = _ablate(
            study_dir, log, *run, "--workers", "2", env=KILL_HEARTBEAT, start_new_session=True
        )

        def one_more(complete: int = complete) -> int | None:
            try:
                queue = Queue(optuna.load_study(study_name="tiny", storage=storage), storage_url)
            except KeyError:
                return None
            n = sum(t.outcome is Outcome.COMPLETE for t in queue.records())
            return n if n > complete else None

        complete = _wait_for(one_more, proc, study_dir, log)
        time.sleep(rng.uniform(0.0, 0.4))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    last = _ablate(study_dir, "last.log", *run, "--workers", "2", env=KILL_HEARTBEAT)
    assert _finish(last, study_dir, "last.log") == 0, (study_dir / "last.log").read_text()

    queue = load_existing("tiny", storage_url)
    trials = queue.records()
    pairs = {(c, s) for c in ("aux.weight=0", "aux.weight=0.4") for s in range(4)}
    runs = _trial_runs(study_dir)
    _assert_every_pair_done_once(pairs, trials, runs)
    for t in trials:
        if t.outcome is Outcome.COMPLETE:
            assert runs[t.mlflow_run_id].data.metrics["val/mIoU"] == pytest.approx(t.value)
    assert _tree_statuses(study_dir) == {"study": {"FINISHED"}, "cell": {"FINISHED"}}


MANY_SEEDS = "sweep.seeds=[" + ",".join(map(str, range(20))) + "]"  # a second to enqueue


def _start_at_once(root: str, url: str, barrier: Any, errors: Any) -> None:
    """One `ablate run` started at the same moment as others: everything before training."""
    try:
        barrier.wait()
        _start_without_training(Path(root), url, MANY_SEEDS)
    except Exception as exc:
        errors.put(f"{type(exc).__name__}: {exc}")


def test_runs_started_at_the_same_moment_create_the_study_and_enqueue_it_once(
    study_dir: Path, storage_url: str
) -> None:
    """Two terminals, a retried job: four `ablate run` of one new study reach the storage at
    once; none fails (no schema-creation race) and each (cell, seed) is enqueued once."""
    ctx = mp.get_context("spawn")
    barrier, errors = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_start_at_once, args=(str(study_dir), storage_url, barrier, errors))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 4
    assert errors.empty(), errors.get()
    trials = load_existing("tiny", storage_url).records()
    assert Counter(t.key for t in trials) == Counter(
        (c, s) for c in ("aux.weight=0", "aux.weight=0.4") for s in range(20)
    )


def test_a_dead_workers_trial_is_requeued_within_the_grace_period_while_others_train(
    study_dir: Path, storage_url: str
) -> None:
    """The README's promise: a dead worker's trial is re-queued about a grace period after
    its last heartbeat, even while the live workers never find the queue empty."""
    pairs = _start_without_training(study_dir, storage_url, SLOW, "sweep.seeds=[0,1,2,3,4,5]")
    queue = load_existing("tiny", storage_url)
    worker = ["worker", "tiny", "--storage", storage_url, "--workers", "1"]
    victim = _ablate(study_dir, "victim.log", *worker, env=SHORT_HEARTBEAT, start_new_session=True)
    busy = _ablate(study_dir, "busy.log", *worker, env=SHORT_HEARTBEAT)

    def both_training() -> bool | None:
        return sum(r.running and bool(r.mlflow_run_id) for r in queue.records()) >= 2 or None

    _wait_for(both_training, busy, study_dir, "busy.log")
    _kill_group(victim)  # the machine dies: `ablate worker` and its worker process at once
    killed_at = time.monotonic()

    def lost() -> list[TrialRecord] | None:
        records = queue.records()
        return records if any(r.error == "worker lost (no heartbeat)" for r in records) else None

    records = _wait_for(lost, busy, study_dir, "busy.log")
    waited = time.monotonic() - killed_at
    # grace 3 s and beats of 1 s: seconds, even on a loaded machine; and while the survivor
    # still had trials waiting (before, the sweep waited for the queue to run dry)
    assert waited < 20
    assert any(r.state == "WAITING" for r in records)
    assert _finish(busy, study_dir, "busy.log") == 0, (study_dir / "busy.log").read_text()
    _assert_every_pair_done_once(pairs, queue.records(), _trial_runs(study_dir))


def test_a_tracking_database_deleted_mid_study_stops_cleanly_keeping_what_was_trained(
    study_dir: Path,
) -> None:
    url = f"sqlite:///{study_dir / 'results' / 'tiny' / 'optuna.db'}"
    run = ["run", "tiny.yaml", "--set", SLOW, "--workers", "2"]
    first = _ablate(study_dir, "first.log", *run)
    storage = open_storage(url)

    def one_complete() -> Queue | None:
        try:
            queue = Queue(optuna.load_study(study_name="tiny", storage=storage), url)
        except KeyError:
            return None
        return queue if any(t.outcome is Outcome.COMPLETE for t in queue.records()) else None

    queue = _wait_for(one_complete, first, study_dir, "first.log")
    (study_dir / "results" / "mlflow.db").unlink()
    assert _finish(first, study_dir, "first.log") == 2
    log = (study_dir / "first.log").read_text()
    # the line names the tracking store: a worker asking for its next run meets the deletion,
    # or, deleted once every run was made, the end of the run (reconciling them) does
    assert "Traceback" not in log and (
        "tracking store cannot take a new run" in log
        or "tracking store cannot end the trial runs left RUNNING" in log
    )
    trials = queue.records()
    assert not [t.number for t in trials if t.running]
    kept = {t.key for t in trials if t.outcome is Outcome.COMPLETE}
    assert kept  # what was trained is kept

    again = _ablate(study_dir, "again.log", *run)
    assert _finish(again, study_dir, "again.log") == 0, (study_dir / "again.log").read_text()
    trials = queue.records()
    complete = [t.key for t in trials if t.outcome is Outcome.COMPLETE]
    assert sorted(complete) == sorted(set(complete)) and len(complete) == 4
    assert kept <= set(complete)


def _fit_alone(root: Path, record: TrialRecord) -> float:
    """The study's metric for a record's (cell, seed), trained here in one plain `fit`."""
    from ablate.spec import apply_overrides
    from ablate.train import fit

    study = load_study(root / "tiny.yaml", (SLOW,))
    recipe = apply_overrides(study.spec.base, record.overrides)
    return float(fit(recipe, record.seed).final["val/mIoU"])


def test_a_killed_trial_continues_from_its_checkpoint_to_the_numbers_of_an_unstopped_one(
    study_dir: Path,
) -> None:
    """kill -9 mid-trial once a checkpoint is written; the next run continues that trial
    from it, and every trial's result equals a plain `fit` of its recipe in this process
    (so also: numbers do not depend on --workers 2 or on being stopped)."""
    url = f"sqlite:///{study_dir / 'results' / 'tiny' / 'optuna.db'}"
    run = ["run", "tiny.yaml", "--set", SLOW, "--workers", "2"]
    first = _ablate(study_dir, "first.log", *run, env=KILL_HEARTBEAT, start_new_session=True)
    ckpt = study_dir / "results" / "tiny" / "ckpt"
    _wait_for(lambda: next(ckpt.glob("*.pt"), None), first, study_dir, "first.log")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    left = sorted(p.name for p in ckpt.glob("*.pt"))
    assert left  # a trial stopped mid-way, its checkpoint kept

    again = _ablate(study_dir, "again.log", *run, env=KILL_HEARTBEAT)
    assert _finish(again, study_dir, "again.log") == 0, (study_dir / "again.log").read_text()
    assert list(ckpt.glob("*.pt")) == []  # deleted once their trials completed
    queue = load_existing("tiny", url)
    complete = [t for t in queue.records() if t.outcome is Outcome.COMPLETE]
    assert len(complete) == 4
    runs = _trial_runs(study_dir)
    resumed = [
        t for t in complete if "ablate.resumed_at_evaluation" in runs[t.mlflow_run_id].data.tags
    ]
    assert resumed  # at least one continued from its checkpoint rather than started over
    for record in complete:
        assert record.value == _fit_alone(study_dir, record), record.key
        assert len(record.result.history) == 40  # the resumed ones too: every evaluation
