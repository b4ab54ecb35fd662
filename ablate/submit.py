"""`ablate submit`: workers started as Slurm jobs (or local ones) through submitit.

Each job runs `ablate worker` on its GPUs against the study's shared storage and tracking store,
as a child process, and ends when the queue is empty. A job told it is about to be preempted or
to reach its time limit (SIGUSR2, submitit's signal) stops its worker as SIGTERM does — the
running trial ends KILLED and is re-queued, to continue from its checkpoint — and submitit
requeues the job. The jobs submitted are listed in `results/<name>/jobs.json` for `ablate status`.

This module is submitit's one adapter in ablate; submitit is the optional `slurm` extra, imported
only where a job is submitted, run or looked at.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import UserError, did_you_mean
from ablate.urls import mask_password

EXECUTORS = ("slurm", "local")
# options of their own: `--slurm time=...` would silently fight `--time`
_OWN_OPTIONS = {
    "time": "--time",
    "timeout_min": "--time",
    "partition": "--partition",
    "gpus_per_node": "--gpus-per-job",
    "num_gpus": "--gpus-per-job",
}
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
STOP_GRACE_S = 60.0  # a worker stopping ends its trial in seconds; Slurm warns 90 s ahead
_PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"  # submitit's name; USR2 unless set


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise UserError(
            "`ablate submit` needs submitit: pip install -e '.[slurm]' (or pip install submitit)"
        ) from None
    return submitit


# --------------------------------------------------------------------------- checking input


def parse_time(text: str) -> int:
    """A Slurm time limit in whole minutes (seconds round up): `90` (minutes), `4:00:00`,
    `1-12:00:00` (days-hours:minutes:seconds)."""
    found = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{1,2}):(\d{1,2})|(\d+)", text.strip())
    if found is None:
        raise UserError(
            f"--time {text!r}: give H:MM:SS (4:00:00), D-H:MM:SS (1-12:00:00) or minutes (240)"
        )
    days, hours, minutes, seconds, only_minutes = found.groups()
    if only_minutes is not None:
        total = int(only_minutes)
    else:
        if int(minutes) > 59 or int(seconds) > 59:
            raise UserError(f"--time {text!r}: minutes and seconds go up to 59")
        total_s = ((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60 + int(seconds)
        total = -(-total_s // 60)
    if total < 1:
        raise UserError(f"--time {text!r}: a job needs at least a minute")
    return total


def _slurm_value(text: str) -> Any:
    """Read as YAML (`8`, `[module load cuda]`, `{account: x}`), except clock times such as
    `1:30`, which YAML 1.1 would read as a number of seconds."""
    if re.fullmatch(r"\d+(:\d+)+", text):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_slurm_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    """`--slurm key=value` as submitit's Slurm parameters (`cpus_per_task=8`, `mem=64G`,
    `account=lab`, `setup=[source venv/bin/activate]`); `slurm_` before a key is optional."""
    valid = _import_submitit().SlurmExecutor._valid_parameters()  # its public list is its docs
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().removeprefix("slurm_")
        if not sep or not key or not value:
            raise UserError(f"--slurm {pair!r}: expected key=value, e.g. --slurm cpus_per_task=8")
        if key in _OWN_OPTIONS:
            raise UserError(f"--slurm {pair!r}: use {_OWN_OPTIONS[key]} for it")
        if key not in valid:
            raise UserError(
                f"--slurm {pair!r}: {key!r} is not a Slurm parameter of submitit"
                f"{did_you_mean(key, valid)}; known: {', '.join(sorted(valid - set(_OWN_OPTIONS)))}"
            )
        found[key] = _slurm_value(value)
    return found


def check_shared_stores(storage: str, tracking_uri: str, executor: str) -> None:
    """Refuse what the jobs' machines cannot reach: an SQLite study, an SQLite or file tracking
    store, and (for Slurm) a database on `localhost`, which on a compute node is the node."""
    if storage.split(":", 1)[0].startswith("sqlite"):
        raise UserError(
            f"--storage {mask_password(storage)}: jobs on other machines cannot share an SQLite "
            "study; give a PostgreSQL URL every node reaches (postgresql://USER@HOST/DB)"
        )
    scheme = tracking_uri.split("://", 1)[0] if "://" in tracking_uri else ""
    if not scheme or scheme.startswith("sqlite") or scheme == "file":
        raise UserError(
            f"--tracking-uri {mask_password(tracking_uri)}: an SQLite or file tracking store is "
            "on one machine's disk, out of the jobs' reach; give an MLflow server "
            "(http://HOST:5000) or a database every node reaches (postgresql://USER@HOST/DB)"
        )
    if executor == "slurm":
        for option, url in (("--storage", storage), ("--tracking-uri", tracking_uri)):
            host = re.match(r"[^:]+://(?:[^@/]*@)?(\[[^\]]*\]|[^:/?]*)", url)
            if host is not None and host.group(1).strip("[]") in _LOCAL_HOSTS:
                raise UserError(
                    f"{option} {mask_password(url)}: on a compute node {host.group(1)} is the "
                    "node itself; give the database or server's host name"
                )


@dataclass(frozen=True)
class JobPlan:
    """What to ask the scheduler for: N jobs, each with its GPUs and time limit."""

    executor: str  # slurm | local
    jobs: int
    gpus_per_job: int
    minutes: int
    partition: str | None = None
    slurm: Mapping[str, Any] = field(default_factory=dict)  # other submitit Slurm parameters

    def parameters(self, name: str) -> dict[str, Any]:
        """submitit AutoExecutor parameters (the `slurm_` ones are ignored by `local`)."""
        found: dict[str, Any] = {
            "name": f"ablate-{name}",
            "timeout_min": self.minutes,
            "gpus_per_node": self.gpus_per_job,
            "tasks_per_node": 1,  # one `ablate worker` per job, which starts one per GPU
            "nodes": 1,
        }
        if self.partition:
            found["slurm_partition"] = self.partition
        found.update({f"slurm_{k}": v for k, v in self.slurm.items()})
        return found

    def devices(self, cpu_workers: int | None) -> tuple[str | None, int | None]:
        """`--devices` and `--workers` of each job's worker: its GPUs are cuda:0… (the
        scheduler sets CUDA_VISIBLE_DEVICES to the job's own), or CPU worker processes."""
        if self.gpus_per_job:
            return ",".join(f"cuda:{i}" for i in range(self.gpus_per_job)), None
        return None, cpu_workers or 1


def job_plan(
    executor: str,
    jobs: int,
    gpus_per_job: int,
    time_limit: str,
    partition: str | None,
    slurm: Sequence[str],
) -> JobPlan:
    """The options checked, before anything is written."""
    if executor not in EXECUTORS:
        raise UserError(
            f"--executor {executor!r}{did_you_mean(executor, EXECUTORS)}: slurm, or local "
            "(this machine; for trying it out)"
        )
    minutes = parse_time(time_limit)
    extra = parse_slurm_pairs(slurm)
    return JobPlan(executor, jobs, gpus_per_job, minutes, partition, extra)


def check_scheduler(executor: str) -> None:
    """Slurm's `sbatch` must be here (a login node); the local executor needs nothing."""
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise UserError(
            "--executor slurm: sbatch is not on this machine's PATH; run `ablate submit` on a "
            "Slurm login node (or --executor local to try it here)"
        )


# --------------------------------------------------------------------------- what a job runs


@dataclass(frozen=True)
class WorkerCommand:
    """`ablate worker` as every job runs it. The URLs reach it through the environment, not its
    command line (where `ps` shows them)."""

    study: str
    storage_url: str
    tracking_uri: str
    checkpoints: Path  # shared by all jobs: a requeued trial continues from its checkpoint
    cwd: Path  # the folder `ablate submit` ran in
    devices: str | None
    workers: int | None

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "ablate", "worker", self.study]
        args += ["--checkpoint-dir", str(self.checkpoints)]
        if self.devices:
            args += ["--devices", self.devices]
        if self.workers:
            args += ["--workers", str(self.workers)]
        return args

    def env(self) -> dict[str, str]:
        return {"ABLATE_STORAGE": self.storage_url, "ABLATE_TRACKING_URI": self.tracking_uri}


def _preemption_signal() -> signal.Signals:
    signame = "SIG" + os.environ.get(_PREEMPT_SIGNAL_ENV, "USR2")
    found = getattr(signal, signame, None)
    return signal.Signals(found) if found is not None else signal.SIGUSR2


def _as_child_of_job() -> Any:
    """What the worker process does before it starts (fork, before exec). It ignores the
    preemption signal: Slurm sends it to every process of the job, and the worker would die of
    it (its default action) without ending its trial; the job's submitit process handles it
    and stops the worker with SIGTERM instead. On Linux it also gets SIGTERM when the job's
    process dies, however it dies, so it never trains on for a job that is gone."""
    preempt = _preemption_signal()
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

    def before_exec() -> None:
        signal.signal(preempt, signal.SIG_IGN)  # SIG_IGN, unlike a handler, survives exec
        if prctl is not None:
            prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return before_exec


def _stop(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM, as Slurm or Ctrl-C would send it: the worker ends its trial KILLED and
    re-queued, then exits (143). SIGKILL after `grace_s`; its trial is then re-queued by the
    other workers' heartbeat sweep. The job's reaper thread collects the exit: this runs in a
    signal handler, maybe while the main thread is inside Popen's own waiting, whose lock a
    second `wait()` here would deadlock on."""
    deadline = time.monotonic() + grace_s
    for stop in (process.terminate, process.kill):
        if process.returncode is None:
            stop()
        while process.returncode is None and time.monotonic() < deadline:
            time.sleep(0.1)
        deadline = math.inf  # after SIGKILL, until it is gone


_EXIT_MEANING = {
    2: " (bad input: the first error line above says which)",
    143: " (stopped by SIGTERM: scancel, or preemption without requeueing)",
    130: " (stopped by SIGINT)",
}


class WorkerJob:
    """The callable each job runs: `ablate worker` until the study's queue is empty. submitit
    calls `checkpoint` on SIGUSR2 (preemption, or the time limit near) as it does for its
    `helpers.Checkpointable`: the worker is stopped and this job submitted again."""

    def __init__(self, command: WorkerCommand, stop_grace_s: float = STOP_GRACE_S) -> None:
        self.command = command
        self.stop_grace_s = stop_grace_s
        self._process: subprocess.Popen[bytes] | None = None  # the running worker, not pickled

    def __getstate__(self) -> dict[str, Any]:
        return {"command": self.command, "stop_grace_s": self.stop_grace_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.command, self.stop_grace_s = state["command"], state["stop_grace_s"]
        self._process = None

    def __call__(self) -> str:
        started = time.monotonic()
        process = subprocess.Popen(
            self.command.argv(),
            cwd=self.command.cwd,
            env={**os.environ, **self.command.env()},
            preexec_fn=_as_child_of_job(),  # safe here: the job's process has one thread
        )
        self._process = process
        # the exit is collected by a thread, so that the main thread only sleeps: submitit's
        # signal handler (`checkpoint`) runs there and waits for the worker itself
        threading.Thread(target=process.wait, daemon=True, name="worker-reaper").start()
        try:
            while process.returncode is None:
                time.sleep(0.5)
        except BaseException:  # submitit's requeue (SystemExit), Ctrl-C, a cancelled local job
            _stop(process, self.stop_grace_s)
            raise
        code = process.returncode
        if code != 0:
            raise RuntimeError(
                f"ablate worker exited with code {code}{_EXIT_MEANING.get(code, '')}; "
                "its output is above in this job's log"
            )
        return f"queue empty after {time.monotonic() - started:.0f} s"

    def checkpoint(self) -> Any:
        """Stop the worker (its trial ends KILLED and re-queued), then what submitit submits
        again: this job as it was submitted."""
        if self._process is not None:
            _stop(self._process, self.stop_grace_s)
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(WorkerJob(self.command, self.stop_grace_s))


# --------------------------------------------------------------------------- submitting


@dataclass(frozen=True)
class SubmittedJob:
    """One job as `jobs.json` keeps it."""

    executor: str
    job_id: str
    folder: str  # submitit's folder: <job_id>_0_log.out|err, the pickled job
    submitted: str  # ISO time


def submitit_folder(results: Path, name: str) -> Path:
    return (results / name / "submitit").resolve()


def jobs_file(results: Path, name: str) -> Path:
    return results / name / "jobs.json"


def submit_jobs(
    plan: JobPlan, command: WorkerCommand, results: Path, name: str
) -> list[SubmittedJob]:
    """Submit the plan's jobs (one Slurm array), and add them to `jobs.json`. The folder of
    submitit's files is readable by its owner alone: a pickled job holds the URLs, passwords
    included when they were given."""
    submitit = _import_submitit()
    folder = submitit_folder(results, name)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    executor = submitit.AutoExecutor(folder=folder, cluster=plan.executor)
    try:
        executor.update_parameters(**plan.parameters(name))
    except (ValueError, TypeError, NameError, AssertionError) as exc:
        raise UserError(f"--slurm: submitit refused a parameter: {_first_line(exc)}") from None
    jobs = executor.submit_array([WorkerJob(command) for _ in range(plan.jobs)])
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    submitted = [SubmittedJob(plan.executor, str(j.job_id), str(j.paths.folder), now) for j in jobs]
    record_jobs(jobs_file(results, name), submitted)
    return submitted


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def record_jobs(path: Path, jobs: Sequence[SubmittedJob]) -> None:
    """Add jobs to the study's list (every `ablate submit` adds its own)."""
    known = read_jobs(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [asdict(j) for j in (*known, *jobs)]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"jobs": rows}, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_jobs(path: Path) -> list[SubmittedJob]:
    if not path.exists():
        return []
    return [SubmittedJob(**row) for row in json.loads(path.read_text(encoding="utf-8"))["jobs"]]


# --------------------------------------------------------------------------- their states


def job_state(job: SubmittedJob) -> str:
    """Slurm's state of the job (sacct: PENDING, RUNNING, COMPLETED, FAILED, …); for a local
    job, RUNNING while its process lives, then COMPLETED or FAILED from its result file, or
    INTERRUPTED when it ended without one."""
    if job.executor == "local":
        return _local_state(job)
    if shutil.which("sacct") is None:
        return "UNKNOWN (no sacct here)"
    try:
        submitit = _import_submitit()
    except UserError:
        return "UNKNOWN (submitit not installed)"
    return str(submitit.SlurmJob(job.folder, job.job_id).state)


def _local_state(job: SubmittedJob) -> str:
    """A local job's id is its controller's process id."""
    result = Path(job.folder) / f"{job.job_id}_0_result.pkl"
    if _alive(int(job.job_id)) and not result.exists():
        return "RUNNING"
    if not result.exists():
        return "INTERRUPTED"
    try:
        import pickle

        with result.open("rb") as f:
            outcome = pickle.load(f)[0]  # submitit's own file: ("success" | "error", ...)
    except Exception:
        return "UNKNOWN (unreadable result)"
    return "COMPLETED" if outcome == "success" else "FAILED"


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead and not yet reaped, does not)."""
    if sys.platform == "linux":
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
