"""What each submitted job runs: `ablate worker` as a child process, stopped cleanly when
submitit is told the job is about to be preempted or to reach its time limit."""

from __future__ import annotations

import ctypes
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STOP_GRACE_S = 60.0  # a worker stopping ends its trial in seconds; Slurm warns 90 s ahead
_PREEMPT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"  # submitit's name; USR2 unless set


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
