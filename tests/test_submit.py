"""`ablate submit`: what it refuses before writing anything, and two jobs through submitit's local
executor on PostgreSQL (Optuna and MLflow), one preempted mid-trial and requeued."""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from ablate.cli import app
from ablate.study import Outcome, load_existing
from ablate.submit import WorkerCommand, job_state, jobs_file, parse_time, read_jobs
from tests.postgres import new_database
from tests.study.test_distributed import _ablate, _assert_every_pair_done_once, _finish
from tests.study.test_run_cli import STUDY

pytest.importorskip(
    "submitit", reason="`ablate submit` needs the slurm extra: pip install -e '.[slurm]'"
)

STORAGE = "postgresql://ablate@db.example/ablate"  # never reached: refused before
TRACKING = "http://mlflow.example:5000"


@pytest.fixture()
def study_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(STUDY)
    return tmp_path


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("240", 240), ("4:00:00", 240), ("0:30:01", 31), ("1-12:00:00", 2160), ("0:00:05", 1)],
)
def test_a_time_limit_is_read_in_whole_minutes_rounded_up(text: str, minutes: int) -> None:
    assert parse_time(text) == minutes


REFUSED = {
    "sqlite storage": (
        ["--storage", "sqlite:///results/tiny/optuna.db"],
        "--storage sqlite:///results/tiny/optuna.db: jobs on other machines cannot share an "
        "SQLite study",
    ),
    "sqlite tracking": (
        ["--tracking-uri", "sqlite:///results/mlflow.db"],
        "--tracking-uri sqlite:///results/mlflow.db: an SQLite or file tracking store",
    ),
    "file tracking": (
        ["--tracking-uri", "file:///shared/mlruns"],
        "--tracking-uri file:///shared/mlruns: an SQLite or file tracking store",
    ),
    "path tracking": (["--tracking-uri", "./mlruns"], "--tracking-uri ./mlruns: an SQLite"),
    "localhost on slurm, password masked": (
        ["--executor", "slurm", "--storage", "postgresql://ablate:s3cret@localhost/ablate"],
        "--storage postgresql://ablate:***@localhost/ablate: on a compute node localhost is "
        "the node itself",
    ),
    "pair without =": (["--slurm", "cpus_per_task"], "--slurm 'cpus_per_task': expected key=value"),
    "unknown key": (["--slurm", "partiton=gpu"], "'partiton' is not a Slurm parameter of submitit"),
    "key with its own option": (["--slurm", "time=1:00:00"], "use --time for it"),
    "time in hours": (["--time", "4h"], "--time '4h': give H:MM:SS"),
    "minutes over 59": (["--time", "1:60:00"], "minutes and seconds go up to 59"),
    "executor": (["--executor", "slrum"], "--executor 'slrum' (did you mean 'slurm'?)"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_submit_refuses_with_exit_2_and_one_message_writing_nothing(
    study_dir: Path, case: str
) -> None:
    bad, expected = REFUSED[case]
    args = ["submit", "tiny.yaml", "--executor", "local", "--time", "10"]
    args += ["--storage", STORAGE, "--tracking-uri", TRACKING, *bad]  # later ones win
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())  # the console may wrap a long message
    assert flat.count("error:") == 1 and "Traceback" not in flat, result.output
    assert expected in flat
    assert "s3cret" not in flat
    assert sorted(p.name for p in study_dir.iterdir()) == ["tiny.yaml"]


def test_a_jobs_worker_gets_its_urls_from_the_environment_not_its_command_line() -> None:
    """`ps` shows a command line to every user of the node."""
    storage, tracking = "postgresql://a:pw1@db/x", "postgresql://a:pw2@db/y"
    command = WorkerCommand(
        "tiny", storage, tracking, Path("/c"), Path("/w"), "cuda:0,cuda:1", None
    )
    assert not any("pw" in arg for arg in command.argv())
    assert command.argv()[3:] == [
        *("worker", "tiny", "--checkpoint-dir", "/c", "--devices", "cuda:0,cuda:1")
    ]
    assert command.env() == {"ABLATE_STORAGE": storage, "ABLATE_TRACKING_URI": tracking}


# --------------------------------------------------------------------------- end to end

EVALS = 20  # one per epoch: a trial lasts seconds, long enough to preempt one midway
EPOCHS = f"base.train.epochs={EVALS}"


def _evaluations_in(checkpoint: Path) -> int:
    """How far a running trial is: the evaluations its checkpoint holds (0 without one)."""
    try:
        return len(torch.load(checkpoint, map_location="cpu", weights_only=False)["history"])
    except (OSError, EOFError, RuntimeError, KeyError):  # none yet, or being replaced
        return 0


def _task_of(controller: int) -> int | None:
    """The process a local job runs its callable in: its controller's child."""
    try:
        children = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _wait(what: str, found: Any, poll_s: float = 0.25, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(poll_s)
    pytest.fail(f"gave up waiting for {what}")


def _trial_runs(tracking: str) -> tuple[Any, dict[str, Any]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    return experiment, {r.info.run_id: r for r in runs if r.data.tags["ablate.level"] == "trial"}


@pytest.mark.slow
def test_two_local_jobs_on_postgresql_one_preempted_mid_trial_train_every_pair_once(
    study_dir: Path,
) -> None:
    """SIGUSR2 to one job (what Slurm sends ahead of preemption or the time limit, and what
    submitit's own LocalJob._interrupt sends): its trial ends KILLED and is re-queued, the job
    is requeued, and the (cell, seed) is trained from its checkpoint, without `ablate run`."""
    with new_database() as storage, new_database() as tracking:
        submit = _ablate(
            study_dir,
            "submit.log",
            *("submit", "tiny.yaml", "--executor", "local", "--jobs", "2", "--gpus-per-job", "0"),
            *("--time", "30", "--storage", storage, "--tracking-uri", tracking, "--set", EPOCHS),
            start_new_session=True,  # its jobs stay in its process group: cleaned up below
        )
        try:
            _run_and_preempt(study_dir, storage, tracking, submit)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(submit.pid, signal.SIGKILL)  # whatever is left of the jobs


def _run_and_preempt(
    root: Path, storage: str, tracking: str, submit: subprocess.Popen[bytes]
) -> None:
    assert _finish(submit, root, "submit.log") == 0, (root / "submit.log").read_text()
    jobs = read_jobs(jobs_file(root / "results", "tiny"))
    assert [j.executor for j in jobs] == ["local", "local"]
    queue = load_existing("tiny", storage)
    ckpt = root / "results" / "tiny" / "ckpt"

    def both_partway_with_checkpoints() -> bool:
        """Whichever trial job 0 runs, it has a checkpoint to resume from and a quarter of its
        training left when the signal comes. Read from the checkpoint files alone (one per
        running trial, deleted when it completes): a cheap poll, not to miss the moment."""
        done = [_evaluations_in(f) for f in ckpt.glob("*.pt")]
        return len(done) == 2 and all(1 <= n <= EVALS * 3 // 4 for n in done)

    _wait("both jobs partway through a trial", both_partway_with_checkpoints, poll_s=0.05)
    task = _task_of(int(jobs[0].job_id))
    assert task is not None
    os.kill(task, signal.SIGUSR2)

    _wait("both jobs to end", lambda: all(job_state(j) != "RUNNING" for j in jobs))
    assert [job_state(j) for j in jobs] == ["COMPLETED", "COMPLETED"]
    log = Path(jobs[0].folder) / f"{jobs[0].job_id}_0_log.out"  # submitit logs INFO there
    assert f"Requeued job {jobs[0].job_id}" in log.read_text()

    trials = queue.records()
    killed = [t for t in trials if t.outcome is Outcome.KILLED]
    assert [t.error for t in killed] == ["interrupted (SIGTERM)"], log.read_text()
    retry = [t for t in trials if t.key == killed[0].key and t is not killed[0]]
    assert [(t.state, t.attempt) for t in retry] == [("COMPLETE", 2)]

    experiment, runs = _trial_runs(tracking)
    pairs = {(c, s) for c in ("aux.weight=0", "aux.weight=0.4") for s in (0, 1)}
    _assert_every_pair_done_once(pairs, trials, runs)
    assert runs[killed[0].mlflow_run_id].info.status == "KILLED"
    assert "ablate.resumed_at_evaluation" in runs[retry[0].mlflow_run_id].data.tags
    artifacts = Path(experiment.artifact_location.removeprefix("file://"))
    assert artifacts.is_relative_to(root / "results" / "mlartifacts")

    status = CliRunner().invoke(app, ["status", "tiny", "--storage", storage])
    assert status.exit_code == 0, status.output
    for job in jobs:
        assert any(job.job_id in line and "COMPLETED" in line for line in status.output.split("\n"))
