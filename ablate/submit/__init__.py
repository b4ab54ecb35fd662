"""`ablate submit`: workers started as Slurm jobs (or local ones) through submitit.

Each job runs `ablate worker` on its GPUs against the study's shared storage and tracking store,
as a child process, and ends when the queue is empty. A job told it is about to be preempted or
to reach its time limit (SIGUSR2, submitit's signal) stops its worker as SIGTERM does — the
running trial ends KILLED and is re-queued, to continue from its checkpoint — and submitit
requeues the job. The jobs submitted are listed in `results/<name>/jobs.json` for `ablate status`.

This package is submitit's one adapter in ablate; submitit is the optional `slurm` extra, imported
only where a job is submitted, run or looked at.
"""

from ablate.submit._job import WorkerCommand, WorkerJob
from ablate.submit._jobs import (
    SubmittedJob,
    job_state,
    jobs_file,
    read_jobs,
    record_jobs,
    submit_jobs,
)
from ablate.submit._options import (
    EXECUTORS,
    JobPlan,
    check_scheduler,
    check_shared_stores,
    job_plan,
    parse_slurm_pairs,
    parse_time,
)

__all__ = [
    "EXECUTORS",
    "JobPlan",
    "SubmittedJob",
    "WorkerCommand",
    "WorkerJob",
    "check_scheduler",
    "check_shared_stores",
    "job_plan",
    "job_state",
    "jobs_file",
    "parse_slurm_pairs",
    "parse_time",
    "read_jobs",
    "record_jobs",
    "submit_jobs",
]
