"""`ablate submit`'s options, checked before anything is written: the time limit, the Slurm
parameters, and stores the jobs' machines can reach."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ablate.errors import UserError, did_you_mean
from ablate.urls import host, mask_password, scheme

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


def import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise UserError(
            "`ablate submit` needs submitit: pip install -e '.[slurm]' (or pip install submitit)"
        ) from None
    return submitit


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
    valid = import_submitit().SlurmExecutor._valid_parameters()  # its public list is its docs
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
    if scheme(storage) == "sqlite":
        raise UserError(
            f"--storage {mask_password(storage)}: jobs on other machines cannot share an SQLite "
            "study; give a PostgreSQL URL every node reaches (postgresql://USER@HOST/DB)"
        )
    if scheme(tracking_uri) in ("", "sqlite", "file"):
        raise UserError(
            f"--tracking-uri {mask_password(tracking_uri)}: an SQLite or file tracking store is "
            "on one machine's disk, out of the jobs' reach; give an MLflow server "
            "(http://HOST:5000) or a database every node reaches (postgresql://USER@HOST/DB)"
        )
    if executor == "slurm":
        for option, url in (("--storage", storage), ("--tracking-uri", tracking_uri)):
            name = host(url)
            if name in _LOCAL_HOSTS:
                raise UserError(
                    f"{option} {mask_password(url)}: on a compute node {name} is the "
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
