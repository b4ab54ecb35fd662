"""What the study engine costs per trial, how it scales with devices, and what it adds to real
trials against a plain training loop.

    python benchmarks/engine.py                  # SQLite, and PostgreSQL if ABLATE_TEST_POSTGRES
    python benchmarks/engine.py --quick          # fewer trials, N up to 4, 8 real trials
    python benchmarks/engine.py --only real      # one section: overhead, scaling or real

Overhead: one in-process worker drains a queue of trials whose training is a no-op (`fit`
replaced by a function that reports one epoch of the metrics a real trial logs, and returns), so
what is timed is the engine alone: popping the trial, the MLflow run with its parameters, config
artifact and one epoch of metrics, the trial's end (attributes, state, value). Steady state:
the time between the first and the last trial's end over the trials in between (the first pays for
imports and MLflow's first run); the median of --repeat runs. "queue only" replaces the MLflow
run by a stub; "enqueue" is `ablate run` putting each (cell, seed) into the queue. Goal: <= 50 ms
per trial.

Scaling: N worker processes ("simulated devices") whose trials sleep --sleep seconds instead of
training, --rounds trials each. Every worker imports, opens the storage and waits at a barrier;
the clock runs from the first trial's start to the last trial's end. Throughput is trials per
second; "vs ideal" divides it by N / sleep (what workers with a free engine would do), "vs N=1"
by one worker's throughput. Goal: vs N=1 >= 0.9 N. The workers' engine work is CPU work, and
on a 2-core machine N processes share those 2 cores.

Real trials: the same small trials (shapes scenes, pspnet_tiny, a few epochs; a few seconds each
on one core) trained twice with P processes: by a hand-written loop (a fresh interpreter that
builds each (cell, seed) recipe and calls `fit` on it with no Optuna and no MLflow, its trials
split evenly across P spawned processes that each use cores/P torch threads, or run in that
interpreter itself when P = 1), and by a study (a fresh interpreter doing what `ablate run`
does short of writing the report: load the study file, `run_study` on a new Optuna storage and
a new MLflow database, P workers). Each side is timed from its interpreter's start to its exit,
so the study pays what users pay: imports, creating the storage and the MLflow database, worker
start-up, and per trial the queue, the MLflow run and the trial's end. The two sides run one
after the other --real-repeat times; the row gives the medians, "extra s" the median of study
minus plain and "ratio" the median of study / plain over those pairs. A measurement, not a goal:
on trials this short the engine's fixed start-up cost is a visible share, and the run-to-run noise
of either side is of the same order; on an hours-long GPU study the engine adds that fixed cost
and the per-trial overhead above.

Optuna storage: SQLite file, and PostgreSQL (a fresh database per measurement) where
ABLATE_TEST_POSTGRES=postgresql+psycopg2://USER:PASSWORD@127.0.0.1:5432/DB names a role that
may create databases. MLflow: a SQLite file in both cases (the default tracking store).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

STUDY = """
name: engine
description: engine overhead
base:
  data: {{num_classes: 4, image_size: [32, 32], train_size: 1, val_size: 1}}
  model: {{name: pspnet_tiny, args: {{width: 4}}}}
  train: {{epochs: 1, batch_size: 1}}
sweep:
  grid: {{loss.aux.weight: [0.0, 0.4]}}
  seeds: {seeds}
baseline: {{loss.aux.weight: 0.0}}
"""
METRICS = {  # one epoch of what a 4-class trial logs
    "train/loss": 1.2,
    "train/loss/ce": 1.0,
    "train/loss/aux": 0.5,
    "train/images_per_s": 900.0,
    "val/mIoU": 0.3,
    "val/pixel_acc": 0.7,
    **{f"val/iou/class{c}": 0.3 for c in range(4)},
}
REAL_STUDY = """
name: real
description: real small trials, for the engine's wall time against a plain loop
base:
  data: {{name: shapes, num_classes: 6, image_size: [64, 64], train_size: 192, val_size: 64}}
  model: {{name: pspnet_tiny}}
  train: {{epochs: {epochs}, batch_size: 16}}
sweep:
  grid: {{loss.aux.weight: [0.0, 0.4]}}
  seeds: {seeds}
baseline: {{loss.aux.weight: 0.0}}
"""


# ---------------------------------------------------------------- storages


def storage_names() -> list[str]:
    return ["sqlite", "postgres"] if os.environ.get("ABLATE_TEST_POSTGRES") else ["sqlite"]


@contextlib.contextmanager
def storage(name: str, folder: Path) -> Iterator[str]:
    """An empty Optuna storage: a SQLite file in `folder`, or a PostgreSQL database of its own
    on the server ABLATE_TEST_POSTGRES points at, dropped afterwards."""
    if name == "sqlite":
        yield f"sqlite:///{folder / 'optuna.db'}"
        return
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(os.environ["ABLATE_TEST_POSTGRES"])
    db = f"ablate_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        dbname=url.database or "postgres",
    )  # fmt: skip
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{db}"')
        yield url.set(database=db).render_as_string(hide_password=False)
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    finally:
        admin.close()


# ---------------------------------------------------------------- a study without training


def start(folder: Path, url: str, trials: int) -> tuple[Any, float]:
    """The study file, its queue of `trials` (cell, seed) pairs and its MLflow run tree, as
    `ablate run` leaves them before its workers start: the WorkerConfig a worker gets (it holds
    the run tree), and the time to enqueue one pair (ms)."""
    from ablate.study import Locations, WorkerConfig, create_or_load, prepare
    from ablate.study_file import load_study

    path = folder / "engine.yaml"
    path.write_text(STUDY.format(seeds=list(range((trials + 1) // 2))))
    study = load_study(path, ())
    where = Locations.resolve(folder / "results", "engine", url, None)
    queue = create_or_load(study, url)
    t0 = time.perf_counter()
    queued = queue.sync(study.design.pairs(queue))
    enqueue_ms = 1000 * (time.perf_counter() - t0) / queued.enqueued
    from rich.console import Console

    tree = prepare(study, where, queue, Console(quiet=True))  # records the tree with the study
    return WorkerConfig(study, url, tree, "cpu", 1, 0), enqueue_ms


def fake_fit(sleep_s: float) -> Any:
    """A `fit` that trains nothing: sleeps, reports one epoch, returns."""
    from ablate.train import EpochResult, FitResult

    def fit(
        recipe: Any, seed: int, device: Any, on_epoch: Any = None, checkpoint: Any = None
    ) -> FitResult:
        time.sleep(sleep_s)
        epoch = EpochResult(1, {**METRICS, "train/aux_weight": 0.4}, [(0, 0.4)])
        if on_epoch is not None:
            on_epoch(epoch)
        return FitResult([epoch], False, sleep_s, {"val/mIoU": METRICS["val/mIoU"]})

    return fit


class NoRun:
    """Stands in for the MLflow run when timing the queue alone."""

    def __init__(self, *args: Any) -> None:
        self.run_id = uuid.uuid4().hex

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


# ---------------------------------------------------------------- overhead


def overhead(url: str, folder: Path, trials: int, mlflow: bool) -> tuple[float, float]:
    """(enqueue, steady-state trial) ms per trial of one in-process worker with no-op training;
    with `mlflow` False the MLflow run is a stub."""
    from ablate.study import Event, TrialEnded, _worker

    cfg, enqueue_ms = start(folder, url, trials)
    cfg = dataclasses.replace(cfg, train=fake_fit(0.0))
    real = _worker.TrialRun
    if not mlflow:
        _worker.TrialRun = NoRun  # type: ignore[assignment,misc]
    ends: list[float] = []
    endings: set[str] = set()

    def report(event: Event) -> None:
        if isinstance(event, TrialEnded):
            ends.append(time.perf_counter())
            endings.add(event.ending)

    try:
        _worker.work(cfg, report)
    finally:
        _worker.TrialRun = real  # type: ignore[misc]
    if endings != {"complete"} or len(ends) != trials:
        raise SystemExit(f"overhead: {len(ends)} of {trials} trials ended, as {sorted(endings)}")
    return enqueue_ms, 1000 * (ends[-1] - ends[0]) / (len(ends) - 1)


# ---------------------------------------------------------------- scaling


def _device(cfg: Any, sleep_s: float, ready: Any, go: Any, events: Any) -> None:
    """One simulated device: set up, wait for the start, drain the queue."""
    from ablate.study import Event, TrialEnded, TrialStarted, _worker, create_or_load

    cfg = dataclasses.replace(cfg, train=fake_fit(sleep_s))
    create_or_load(cfg.study, cfg.storage_url)  # the storage's first connection, before the clock
    tree = cfg.tree  # and MLflow's first run in this process, before the clock too
    _worker.TrialRun(tree, "warm-up", next(iter(tree.cell_run_ids)), -1, -1).end("KILLED")
    ready.release()
    go.wait()

    def report(event: Event) -> None:
        if isinstance(event, TrialStarted):
            events.put(("start", time.time()))
        elif isinstance(event, TrialEnded):
            events.put(("end", time.time()))

    _worker.work(cfg, report)


def scaling(url: str, folder: Path, n: int, rounds: int, sleep_s: float) -> float:
    """Steady throughput (trials/s) of n devices: trials over the time from the first trial's
    start to the last one's end (process start-up and opening the study are outside)."""
    trials = n * rounds
    cfg, _ = start(folder, url, trials)
    ctx = mp.get_context("spawn")
    ready, go, events = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_device, args=(cfg, sleep_s, ready, go, events)) for _ in range(n)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    go.set()
    times: dict[str, list[float]] = {"start": [], "end": []}
    while len(times["end"]) < trials:
        kind, at = events.get(timeout=600)
        times[kind].append(at)
    for p in procs:
        p.join()
    return trials / (max(times["end"]) - min(times["start"]))


# ---------------------------------------------------------------- real trials


def real_study_file(folder: Path, trials: int, epochs: int) -> Path:
    """A study file of `trials` real (cell, seed) trials: 2 cells, trials / 2 seeds."""
    path = folder / "real.yaml"
    path.write_text(REAL_STUDY.format(epochs=epochs, seeds=list(range((trials + 1) // 2))))
    return path


def threads_per_process(processes: int) -> int:
    """torch threads of each of `processes` CPU processes: the cores split as the engine does."""
    return max(1, (os.cpu_count() or 1) // processes)


def _fit_share(jobs: list[tuple[Any, int]], threads: int) -> None:
    """One process of the plain loop: train its (recipe, seed) pairs back to back."""
    import torch

    from ablate.train import fit

    torch.set_num_threads(threads)
    for recipe, seed in jobs:
        fit(recipe, seed, "cpu")


def plain_loop(path: Path, processes: int) -> None:
    """The hand-written loop: every (cell, seed) recipe of the study file, split evenly across
    `processes` spawned processes (this one when there is one). No Optuna, no MLflow."""
    from ablate.spec import apply_overrides
    from ablate.study_file import load_study

    study = load_study(path, ())
    jobs = [
        (apply_overrides(study.spec.base, pair.overrides), pair.seed)
        for pair in study.design.pairs(None)
    ]
    threads = threads_per_process(processes)
    if processes == 1:
        _fit_share(jobs, threads)
        return
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_fit_share, args=(jobs[i::processes], threads)) for i in range(processes)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a plain-loop process exited with {p.exitcode}")


def study_side(path: Path, processes: int, url: str, results: Path) -> None:
    """`ablate run` short of its report: the study file's trials on `processes` CPU workers."""
    from rich.console import Console

    from ablate.study import Locations, run_study
    from ablate.study_file import load_study

    study = load_study(path, ())
    where = Locations.resolve(results, study.spec.name, url, None)
    outcome = run_study(study, where, None, processes, Console(quiet=True))
    if outcome.failed or outcome.trained != outcome.total:
        raise SystemExit(f"study: {outcome}")


def timed_side(argv: list[str]) -> float:
    """Wall time (s) of this script run as a fresh interpreter with `argv`."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, *argv], check=True)
    return time.perf_counter() - t0


def real_trials(
    url: str, folder: Path, processes: int, trials: int, epochs: int
) -> tuple[float, float]:
    """(plain loop, study) wall time in seconds of the same real trials on `processes`."""
    path = real_study_file(folder, trials, epochs)
    common = ["--study-file", str(path), "--processes", str(processes)]
    plain = timed_side(["--side", "plain", *common])
    study = timed_side(
        ["--side", "study", *common, "--storage", url, "--results", str(folder / "results")]
    )
    return plain, study


# ---------------------------------------------------------------- main


def print_overhead(args: argparse.Namespace, tmp: Path) -> None:
    print(
        f"engine overhead per trial, ms (no-op training; steady state over {args.trials} trials, "
        f"median of {args.repeat} runs)"
    )
    print(f"{'storage':10} {'enqueue':>9} {'trial':>9} {'queue only':>11} {'MLflow':>9}  goal <=50")
    for name in storage_names():
        medians = []
        for mlflow in (True, False):
            runs = []
            for i in range(args.repeat):
                folder = tmp / f"{name}-{'mlflow' if mlflow else 'queue'}-{i}"
                folder.mkdir()
                with storage(name, folder) as url:
                    runs.append(overhead(url, folder, args.trials, mlflow))
            medians.append([statistics.median(column) for column in zip(*runs, strict=True)])
        (enqueue_ms, trial_ms), (_, queue_ms) = medians
        print(
            f"{name:10} {enqueue_ms:9.1f} {trial_ms:9.1f} {queue_ms:11.1f} "
            f"{trial_ms - queue_ms:9.1f}  {'ok' if trial_ms <= 50 else 'over'}",
            flush=True,
        )


def print_scaling(args: argparse.Namespace, tmp: Path) -> None:
    devices = [int(d) for d in args.devices.split(",")]
    print(f"scaling: N worker processes, trials sleep {args.sleep} s, {args.rounds} each")
    print(
        f"{'storage':10} {'N':>3} {'trials/s':>9} {'N/sleep':>8} {'vs ideal':>9} "
        f"{'vs N=1':>7}  goal: vs N=1 >= 0.9 N"
    )
    for name in storage_names():
        single = 0.0
        for n in devices:
            folder = tmp / f"{name}-scale-{n}"
            folder.mkdir()
            with storage(name, folder) as url:
                throughput = scaling(url, folder, n, args.rounds, args.sleep)
            single = single or throughput / n  # the first row (N=1 by default) sets the unit
            speedup = throughput / single
            print(
                f"{name:10} {n:3d} {throughput:9.2f} {n / args.sleep:8.2f} "
                f"{throughput * args.sleep / n:9.2f} {speedup:7.2f}  "
                f"{'ok' if speedup >= 0.9 * n else 'under'}",
                flush=True,
            )


def print_real(args: argparse.Namespace, tmp: Path) -> None:
    processes = [int(p) for p in args.processes.split(",")]
    print(
        f"real trials: {args.real_trials} trials x {args.epochs} epochs (shapes 64x64, "
        f"pspnet_tiny), plain loop vs study, each from a fresh interpreter's start to its exit; "
        f"{args.real_repeat} pair(s) run one after the other, medians"
    )
    print(
        f"{'storage':10} {'processes':>9} {'trials':>6} {'plain s':>8} {'study s':>8} "
        f"{'extra s':>8} {'ratio':>6}"
    )
    for name in storage_names():
        for n in processes:
            pairs = []
            for i in range(args.real_repeat):
                folder = tmp / f"{name}-real-{n}-{i}"
                folder.mkdir()
                with storage(name, folder) as url:
                    pairs.append(real_trials(url, folder, n, args.real_trials, args.epochs))
            plain = statistics.median(p for p, _ in pairs)
            study = statistics.median(s for _, s in pairs)
            extra = statistics.median(s - p for p, s in pairs)  # the pairs ran back to back
            ratio = statistics.median(s / p for p, s in pairs)
            print(
                f"{name:10} {n:9d} {args.real_trials:6d} {plain:8.1f} {study:8.1f} "
                f"{extra:8.1f} {ratio:6.3f}",
                flush=True,
            )


def quiet_logs() -> None:
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def side(args: argparse.Namespace) -> None:
    """One side of a real-trials row, run by `timed_side` in a fresh interpreter."""
    if args.side == "plain":
        plain_loop(args.study_file, int(args.processes))
    else:
        quiet_logs()
        study_side(args.study_file, int(args.processes), args.storage, args.results)


SECTIONS = {"overhead": print_overhead, "scaling": print_scaling, "real": print_real}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=list(SECTIONS), help="run one section")
    parser.add_argument("--trials", type=int, default=100, help="trials for the overhead rows")
    parser.add_argument("--repeat", type=int, default=3, help="overhead rows: median of runs")
    parser.add_argument("--devices", default="1,2,4,8,16", help="N for the scaling rows")
    parser.add_argument("--rounds", type=int, default=20, help="trials per device")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds per simulated trial")
    parser.add_argument("--real-trials", type=int, default=24, help="real trials per row (even)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each real trial")
    parser.add_argument(
        "--real-repeat", type=int, default=3, help="real-trials rows: median of this many pairs"
    )
    workers = min(os.cpu_count() or 1, 4)  # what `ablate run` starts on the CPU
    parser.add_argument(
        "--processes",
        default=str(workers),
        help=f"P for the real-trials rows, e.g. 1,2 (default {workers}: as `ablate run` here)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="20 trials, N = 1, 2, 4, 3 rounds, 8 real trials"
    )
    # one side of a real-trials row, in its own interpreter (see timed_side)
    parser.add_argument("--side", choices=["plain", "study"], help=argparse.SUPPRESS)
    parser.add_argument("--study-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(args)
        return
    if args.quick:
        args.trials, args.devices, args.rounds, args.repeat = 20, "1,2,4", 3, 1
        args.real_trials, args.real_repeat = 8, 1

    quiet_logs()
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate([args.only] if args.only else SECTIONS):
            if i:
                print()
            SECTIONS[name](args, Path(tmp))


if __name__ == "__main__":
    main()
