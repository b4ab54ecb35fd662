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
from typing import TYPE_CHECKING, Any

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
from ablate.formats import duration
from ablate.names import metric_info
from ablate.study._events import (
    EpochDone,
    Event,
    TrialEnded,
    TrialStarted,
    Warned,
    WorkerExited,
)
from ablate.study._record import MAX_LOST
from ablate.study._worker_config import WorkerConfig, fit_trial
from ablate.study_file import Study
from ablate.track import RunTree, trial_run_name
from ablate.urls import as_worker_process

if TYPE_CHECKING:
    from ablate.train import FitResult


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
                f"{escape(trial_run_name(event.cell, event.seed))}",
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

    def worker_state(self, worker: int, state: str) -> None:
        """A worker's row after its process ended (`died`) or was started again."""
        row = self.rows.get(worker)
        if row is not None:
            self.progress.reset(row, description=f"  worker {worker}: {state}", total=None)

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
        return f", ETA {duration(pace * left)} for {left} trial{'s' if left > 1 else ''}"


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
    as_worker_process()  # before any store is opened: see urls.POOL_EXTRA
    from ablate.study._worker import work  # torch: only where trials run

    with contextlib.suppress(KeyboardInterrupt):
        try:
            work(job, events.put)
        except UserError as exc:
            events.put(WorkerExited(job.worker, str(exc)))


# a worker slot whose process dies this many times is not started again; one more than a
# pair's lost tries, so a trial that always kills its worker is given up by the queue first
MAX_REPLACED = MAX_LOST + 1


def run_workers(
    study: Study,
    storage_url: str,
    tree: RunTree,
    plan: Sequence[tuple[str, int]],
    total: int,
    console: Console,
    checkpoints: Path | None = None,
    *,
    train: Callable[..., FitResult] = fit_trial,
) -> None:
    """Run one worker per (device, threads) of `plan` until the queue is drained, logging
    under `tree`. Each worker is a spawned process that imports torch and MLflow once, so a
    trial that kills its own process (a segfault, an OOM kill, a model calling SIGKILL) takes
    only its worker down: the death is said, its trial re-queued at once and a replacement
    started. `train` trains each trial (see `WorkerConfig`)."""
    display = _Display(total, len(plan), console, study.spec.metric.name)
    jobs = [
        WorkerConfig(study, storage_url, tree, d, t, i, checkpoints, train)
        for i, (d, t) in enumerate(plan)
    ]
    _Supervisor(jobs, display).run()


class _Supervisor:
    """The parent of the worker processes: shows their events, notices a worker that died
    without saying goodbye (it exited non-zero before its `WorkerExited`), re-queues the trial
    it held and starts another in its place, and passes a stop on to every worker."""

    def __init__(self, jobs: Sequence[WorkerConfig], display: _Display) -> None:
        self.jobs, self.display = list(jobs), display
        self.ctx = mp.get_context("spawn")
        self.events: Any = self.ctx.Queue()
        self.procs: dict[int, Any] = {}
        self.finished: set[int] = set()  # slots whose worker sent WorkerExited or gave up
        self.holding: dict[int, int] = {}  # slot -> the trial number it is training
        self.deaths: dict[int, int] = {}

    def _start(self, slot: int) -> None:
        proc = self.ctx.Process(
            target=_child, args=(self.jobs[slot], self.events, os.getpid()), daemon=False
        )
        proc.start()
        self.procs[slot] = proc

    def run(self) -> None:
        for slot in range(len(self.jobs)):
            self._start(slot)
        try:
            with self.display.progress:
                while len(self.finished) < len(self.jobs):
                    try:
                        event = self.events.get(timeout=0.5)
                    except queue.Empty:
                        self._look_after_workers()
                        continue
                    self._track(event)
                    self.display.handle(event)
        except BaseException as stop:
            self._stop_all(stop)
            raise
        for proc in self.procs.values():
            proc.join()
        if self.display.errors:
            raise StorageError(self.display.errors[0])

    def _track(self, event: Event) -> None:
        if isinstance(event, TrialStarted):
            self.holding[event.worker] = event.number
        elif isinstance(event, TrialEnded):
            self.holding.pop(event.worker, None)
        elif isinstance(event, WorkerExited):
            self.finished.add(event.worker)
            self.holding.pop(event.worker, None)

    def _look_after_workers(self) -> None:
        """With no event waiting: a worker process that has ended without its goodbye died."""
        for slot, proc in self.procs.items():
            if slot in self.finished or proc.exitcode is None:
                continue
            if proc.exitcode == 0:  # said goodbye; its last event may still be on its way
                if self.events.empty():
                    self.finished.add(slot)
                continue
            self._died(slot, proc.exitcode)

    def _died(self, slot: int, exitcode: int) -> None:
        how = (
            f"killed by {signal.Signals(-exitcode).name}"
            if exitcode < 0 and -exitcode in signal.valid_signals()
            else f"exit code {exitcode}"
        )
        number = self.holding.pop(slot, None)
        requeued = self._requeue(number, f"worker died ({how})") if number is not None else ""
        self.deaths[slot] = self.deaths.get(slot, 0) + 1
        console = self.display.console
        if self.deaths[slot] >= MAX_REPLACED:
            console.print(
                f"[red]worker {slot} died ({how}){requeued}; it died {self.deaths[slot]} "
                "times, so it is not started again",
                highlight=False,
            )
            self.finished.add(slot)
            self.display.worker_state(slot, "died")
            return
        console.print(
            f"[red]worker {slot} died ({how}){requeued}; starting a replacement "
            f"({self.deaths[slot]} of {MAX_REPLACED - 1})",
            highlight=False,
        )
        self.display.worker_state(slot, "restarting")
        self._start(slot)

    def _requeue(self, number: int, reason: str) -> str:
        """End the dead worker's trial KILLED and queue its next try now, not after the
        heartbeat's grace period (the process is known to be gone). Best effort: the sweep
        does it later when the storage cannot be reached now."""
        job = self.jobs[0]
        try:
            from ablate.study._storage import load_existing

            q = load_existing(job.study.spec.name, job.storage_url)
            q.tracking_uri = job.tree.tracking_uri  # where its run is ended
            (record,) = [r for r in q.records(results=False) if r.number == number]
            if not record.running:
                return ""
            q.abandon(record.trial_id, reason)
        except Exception as exc:  # the heartbeat sweep re-queues it after the grace period
            return f"; trial #{number} is re-queued once its heartbeat is stale ({exc!s:.200})"
        return f"; trial #{number} was re-queued"

    def _stop_all(self, stop: BaseException) -> None:
        # a stop may have come to this process alone (SIGTERM from Slurm or docker, SIGHUP,
        # SIGINT from `kill -INT`; Ctrl-C in a terminal reaches the whole group): pass it on,
        # so each worker ends its trial KILLED and takes no other. A worker already stopping
        # ignores it.
        ctrl_c = isinstance(stop, KeyboardInterrupt) and stop.args in ((), ("Ctrl-C",))
        procs = list(self.procs.values())
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGINT if ctrl_c else signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
        for p in procs:
            if p.is_alive():
                p.terminate()
