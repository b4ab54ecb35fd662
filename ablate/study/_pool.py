"""Starting workers (one per device or CPU share) and showing their progress live. `ablate run`
and `ablate worker` both start their workers here, once the study's MLflow run tree exists."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ablate.errors import StorageError, UserError
from ablate.names import metric_info
from ablate.spec import Study
from ablate.study._events import (
    EpochDone,
    Event,
    TrialEnded,
    TrialStarted,
    Warned,
    WorkerExited,
)
from ablate.track import RunTree, trial_run_name


def plan_devices(devices: str | None, workers: int | None) -> list[tuple[str, int]]:
    """(device, torch threads) per worker. `--devices cuda:0,cuda:1` gives one worker per device;
    on the CPU `--workers N` splits the cores (default: one worker per core, at most 4 — small
    segmentation nets use cores better as separate processes than as threads of one)."""
    cores = os.cpu_count() or 1
    if devices:
        names = [d.strip() for d in devices.split(",") if d.strip()]
        cpu_workers = sum(n == "cpu" for n in names) or 1
        return [(n, max(1, cores // cpu_workers) if n == "cpu" else 1) for n in names]
    import torch

    if workers is None and torch.cuda.is_available():
        return [(f"cuda:{i}", 1) for i in range(torch.cuda.device_count())]
    n = workers or min(cores, 4)
    return [("cpu", max(1, cores // n))] * n


def _duration(seconds: float) -> str:
    """42s, 3m 05s, 2h 04m."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


@dataclass
class _Display:
    """A rich progress view: trials done / total with ETA, and one line per worker whose
    clock restarts at each trial. Every trial that ends prints a line naming its cell, seed
    and metric; without a terminal (a CI log, a file), where the bars are not drawn, the line
    also gives the ETA of the remaining trials."""

    total: int
    n_workers: int
    console: Console
    metric: str
    clock: Callable[[], float] = time.monotonic  # the bars' and the ETA's (tests move it)
    done: int = 0
    progress: Progress = field(init=False)
    overall: TaskID = field(init=False)
    started: float = field(init=False)
    rows: dict[int, TaskID] = field(default_factory=dict)
    trials: dict[int, str] = field(default_factory=dict)  # trial number -> cell and seed
    errors: list[str] = field(default_factory=list)  # why workers stopped early

    def __post_init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            get_time=self.clock,
        )
        self.started = self.clock()
        self.overall = self.progress.add_task("trials", total=self.total)
        for w in range(self.n_workers):
            self.rows[w] = self.progress.add_task(f"  worker {w}: starting", total=None)

    def handle(self, event: Event) -> None:
        row = self.rows.get(event.worker)
        if isinstance(event, TrialStarted):
            self.trials[event.number] = trial_run_name(event.cell, event.seed)
        if isinstance(event, TrialStarted) and row is not None:
            # reset, not update: the row's clock and per-trial ETA start again with the trial
            self.progress.reset(
                row,
                description=f"  worker {event.worker}: #{event.number} "
                f"{trial_run_name(event.cell, event.seed)}",
                total=event.epochs,
                completed=0,
            )
        elif isinstance(event, EpochDone) and row is not None:
            self.progress.update(row, completed=event.epoch)
        elif isinstance(event, TrialEnded):
            self._ended(event)
        elif isinstance(event, Warned):
            self.console.print(f"[yellow]{self._trial(event.number)}: {escape(event.message)}")
        elif isinstance(event, WorkerExited):
            if event.error:
                self.errors.append(event.error)
                self.console.print(f"[red]worker {event.worker} stopped: {escape(event.error)}")
            if row is not None:
                self.progress.update(
                    row,
                    description=f"  worker {event.worker}: {'stopped' if event.error else 'done'}",
                    total=1,
                    completed=1,
                )

    def _ended(self, event: TrialEnded) -> None:
        if event.counts:
            self.done += 1
            self.progress.update(self.overall, completed=self.done)
        trial = self._trial(event.number)
        if event.ending == "lost":
            self.console.print(
                f"[yellow]{trial}: this worker was declared dead (no heartbeat "
                "within the grace period); its result is dropped, the trial was re-queued"
            )
        elif event.error:
            verb = "will retry" if event.ending == "retry" else "failed"
            self.console.print(f"[red]{trial} {verb}: {escape(event.error)}")
        else:
            info = metric_info(self.metric)  # in the unit the report uses
            shown = f", {self.metric} = {event.value * info.scale:.2f} {info.unit}".rstrip()
            self.console.print(
                f"[{self.done}/{self.total}] {trial} {event.ending}"
                + (shown if event.value == event.value else "")
                + ("" if self.console.is_terminal else self._eta()),
                highlight=False,
            )

    def _trial(self, number: int) -> str:
        """`trial #4 (seed 1 · aux.weight=0.4)`, as markup."""
        known = f" ({escape(self.trials[number])})" if number in self.trials else ""
        return f"trial #{number}{known}"

    def _eta(self) -> str:
        """The time left for the remaining trials at the pace of those done so far (all
        workers together), for a log without the progress bars: `, ETA 3m 05s for 4 trials`."""
        left = self.total - self.done
        if left <= 0 or self.done <= 0:
            return ""
        pace = (self.clock() - self.started) / self.done
        return f", ETA {_duration(pace * left)} for {left} trial{'s' if left > 1 else ''}"


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs, pickled once to a spawned one."""

    study: Study
    storage_url: str
    tree: RunTree  # the study's MLflow runs, made before any worker starts
    device: str
    threads: int  # torch threads outside trials (a trial uses its recipe's train.threads)
    worker: int  # index, for the display
    checkpoints: Path | None = None  # where running trials keep their checkpoints


def _work(job: WorkerConfig, report: Any) -> None:
    from ablate.study._worker import work  # torch: only where trials run

    work(job, report)


def _stop_when_orphaned(parent: int, poll_s: float = 1.0) -> None:
    """Stop this worker as SIGTERM would once the process that started it is gone (killed,
    crashed): a worker must not train on, unseen, for a parent that will never read it."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _child(job: WorkerConfig, events: Any, parent: int) -> None:
    """A spawned worker; Ctrl-C reaches it too, and its trial is abandoned by `work`. A store
    it cannot write stops it with the reason sent to the parent."""
    _stop_when_orphaned(parent)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            _work(job, events.put)
        except UserError as exc:
            events.put(WorkerExited(job.worker, str(exc)))


def run_workers(
    study: Study,
    storage_url: str,
    tree: RunTree,
    plan: Sequence[tuple[str, int]],
    total: int,
    console: Console,
    checkpoints: Path | None = None,
) -> None:
    """Run one worker per (device, threads) of `plan` until the queue is drained, logging
    under `tree`. One worker runs in this process; several run as spawned processes, each
    importing torch and MLflow once."""
    display = _Display(total, len(plan), console, study.spec.metric.name)
    jobs = [
        WorkerConfig(study, storage_url, tree, d, t, i, checkpoints)
        for i, (d, t) in enumerate(plan)
    ]
    if len(jobs) == 1:
        with display.progress:
            _work(jobs[0], display.handle)
        return
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(job, events, os.getpid()), daemon=False) for job in jobs
    ]
    for p in procs:
        p.start()
    try:
        with display.progress:
            exited = 0  # a worker's last event; once all have sent it, only their exits remain
            while exited < len(procs) and (any(p.is_alive() for p in procs) or not events.empty()):
                try:
                    event = events.get(timeout=0.5)
                except queue.Empty:
                    continue
                display.handle(event)
                exited += isinstance(event, WorkerExited)
    except BaseException as stop:
        # a stop may have come to this process alone (SIGTERM from Slurm or docker, SIGINT
        # from `kill -INT`; Ctrl-C in a terminal reaches the whole group): pass it on, so each
        # worker ends its trial KILLED and takes no other. A worker already stopping ignores it.
        ctrl_c = isinstance(stop, KeyboardInterrupt) and stop.args != ("SIGTERM",)
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGINT if ctrl_c else signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    for p in procs:
        p.join()
    if display.errors:
        raise StorageError(display.errors[0])
