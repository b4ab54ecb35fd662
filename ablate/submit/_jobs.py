"""Submitting the jobs, the study's list of them (`results/<name>/jobs.json`) and their
states for `ablate status`."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ablate.errors import UserError
from ablate.submit._job import WorkerCommand, WorkerJob
from ablate.submit._options import JobPlan, import_submitit


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
    submitit = import_submitit()
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


def job_state(job: SubmittedJob) -> str:
    """Slurm's state of the job (sacct: PENDING, RUNNING, COMPLETED, FAILED, …); for a local
    job, RUNNING while its process lives, then COMPLETED or FAILED from its result file, or
    INTERRUPTED when it ended without one."""
    if job.executor == "local":
        return _local_state(job)
    if shutil.which("sacct") is None:
        return "UNKNOWN (no sacct here)"
    try:
        submitit = import_submitit()
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
