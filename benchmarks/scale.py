"""A big study on a shared PostgreSQL: how long the queue takes to fill, how long a worker waits
to claim a trial when many claim at once, whether any trial is claimed twice, and how long
`ablate status` and `ablate report` take at 200 and 2,000 (cell, seed) trials.

    export ABLATE_TEST_POSTGRES=postgresql+psycopg2://USER:PASSWORD@127.0.0.1:5432/DB
    python benchmarks/scale.py
    python benchmarks/scale.py --sizes 200 --workers 8      # a quicker look

The study: a two-key grid (`loss.aux.weight` x `loss.lovasz`, 20 x size/200 cells) x 10 seeds,
so 2,000 trials are 200 cells, the report's worst case (a row, a comparison and a forest-plot
line per cell). Training is a no-op: `fit` is replaced by a function that reports four
evaluations of made-up metrics (a mean that depends on the cell, noise that depends on the seed
and the cell, four per-class IoUs) and returns, so what is timed is the engine. The Optuna
storage and the MLflow tracking store are two fresh PostgreSQL databases (the multi-machine set-up:
`ablate worker --storage ... --tracking-uri ...` on every machine), dropped afterwards.

Rows, per size:
- enqueue: `ablate run`'s filling of the queue (one fixed Optuna trial per (cell, seed)), total
  and per trial; run tree: creating the MLflow study run and one run per cell, up front.
- drain: --workers spawned worker processes (each as `ablate worker` runs it: the storage opened,
  then pop, MLflow run, four evaluations logged, end) draining the queue, from the moment they
  are all ready to the last trial's end; trials/s.
- claim latency: the wall time of each successful `Queue.pop` (find one of the oldest WAITING
  trials, move it to RUNNING with its first heartbeat in one transaction), median and p99 over
  every claim; with W processes on a machine of fewer cores this includes waiting for a core.
- duplicates: trial ids claimed by more than one worker, plus (cell, seed) pairs started more
  than once, plus pairs with other than exactly one COMPLETE trial in storage. Must be 0.
- status s / report s / again s: `ablate status` and `ablate report` (with --tracking-uri: it
  reconciles the MLflow runs and publishes the cell aggregates and plots), each a fresh
  interpreter run to its exit (`python -m ablate ...`). status: median of --repeat runs;
  report s: the first report (every cell's aggregates sent to MLflow); again s: the median of
  --repeat more (what MLflow already shows is not sent again). Goals at 2,000 trials: status
  under 2 s, both report times under 30 s; and the first report's time at 2,000 over 200 at
  most 12 (no worse than linear in the trials, with a little room).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

from engine import quiet_logs, storage

SEEDS = 10
AUX = [round(0.05 * i, 2) for i in range(20)]  # 20 values of the first key
STUDY = """
name: scale
description: {trials} no-op trials on PostgreSQL, for the engine's scale
base:
  data: {{num_classes: 4, image_size: [32, 32], train_size: 1, val_size: 1}}
  model: {{name: pspnet_tiny, args: {{width: 4}}}}
  train: {{epochs: 4, batch_size: 1}}
sweep:
  grid:
    loss.aux.weight: {aux}
    loss.lovasz: {lovasz}
  seeds: {seeds}
baseline: {{loss.aux.weight: 0.0, loss.lovasz: 0.0}}
"""


def study_file(folder: Path, trials: int) -> Path:
    """The study file of `trials` (cell, seed) pairs: 20 x trials/200 cells, 10 seeds."""
    per_row = len(AUX) * SEEDS
    if trials % per_row:
        raise SystemExit(f"--sizes: each size must be a multiple of {per_row}, not {trials}")
    lovasz = [round(0.1 * i, 2) for i in range(trials // per_row)]
    path = folder / "scale.yaml"
    path.write_text(STUDY.format(trials=trials, aux=AUX, lovasz=lovasz, seeds=list(range(SEEDS))))
    return path


def made_up_fit(recipe: Any, seed: int, device: Any, on_epoch: Any = None, checkpoint: Any = None):
    """Four evaluations of a model that 'learned': the cell shifts the mean, the seed and the
    cell add noise, so every statistic of the report has something to compute."""
    from ablate.train import EpochResult, FitResult

    aux, lovasz = recipe.loss.aux.weight, recipe.loss.lovasz
    rng = random.Random(zlib.crc32(f"{aux} {lovasz} {seed}".encode()))
    final = 0.45 + 0.02 * aux + 0.01 * lovasz + 0.01 * rng.gauss(0, 1) + 0.005 * (seed % 3)
    epochs = []
    for e in (1, 2, 3, 4):
        value = final - 0.02 * (4 - e) ** 2 / 9  # rises, then levels off
        ious = {f"val/iou/class{c}": value + 0.05 * (c - 1.5) for c in range(4)}
        metrics = {"train/loss": 1.0 / e, "val/mIoU": value, "val/pixel_acc": 0.3 + value, **ious}
        epochs.append(EpochResult(e, metrics))
        if on_epoch is not None:
            on_epoch(epochs[-1])
    return FitResult(epochs, False, 0.01, dict(epochs[-1].metrics))


# ---------------------------------------------------------------- the workers


def _device(cfg: Any, ready: Any, go: Any, events: Any) -> None:
    """One worker process: open the storage, wait for the start, drain the queue; report each
    claim (its latency and trial id) and each trial's start and end."""
    import optuna

    from ablate.study import Event, TrialEnded, TrialStarted, _worker
    from ablate.study._queue import Queue
    from ablate.urls import as_worker_process

    as_worker_process()  # a worker's connection bounds, as `ablate run` gives its workers
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pop = Queue.pop

    def timed_pop(self: Queue) -> int | None:
        t0 = time.perf_counter()
        trial_id = pop(self)
        if trial_id is not None:
            events.put(("claim", cfg.worker, trial_id, time.perf_counter() - t0))
        return trial_id

    Queue.pop = timed_pop  # type: ignore[method-assign]

    def report(event: Event) -> None:
        if isinstance(event, TrialStarted):
            events.put(("start", cfg.worker, (event.cell, event.seed), time.time()))
        elif isinstance(event, TrialEnded):
            events.put(("end", cfg.worker, event.ending, time.time()))

    ready.release()
    go.wait()
    _worker.work(dataclasses.replace(cfg, train=made_up_fit), report)
    events.put(("exit", cfg.worker, None, time.time()))


@dataclass(frozen=True)
class Drain:
    seconds: float  # first start to last end
    claims: list[float]  # seconds per successful claim
    duplicates: int
    endings: Counter[str]


def drain(cfg: Any, workers: int, trials: int) -> Drain:
    """`workers` spawned processes drain the queue; every event they send, gathered."""
    from dataclasses import replace

    ctx = mp.get_context("spawn")
    ready, go, events = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_device, args=(replace(cfg, worker=i), ready, go, events))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        while not ready.acquire(timeout=5):
            _fail_if_one_died(procs, set())
    go.set()
    claimed: Counter[int] = Counter()
    started: Counter[tuple[str, int]] = Counter()
    endings: Counter[str] = Counter()
    claims: list[float] = []
    first, last, exited = float("inf"), 0.0, set()
    while len(exited) < workers:
        try:
            kind, worker, what, at = events.get(timeout=5)
        except queue.Empty:  # a worker that died sends nothing more: fail, do not hang
            _fail_if_one_died(procs, exited)
            continue
        if kind == "claim":
            claimed[what] += 1
            claims.append(at)
        elif kind == "start":
            started[what] += 1
            first = min(first, at)
        elif kind == "end":
            endings[what] += 1
            last = max(last, at)
        else:
            exited.add(worker)
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a worker exited with {p.exitcode}")
    twice = sum(n - 1 for n in claimed.values()) + sum(n - 1 for n in started.values())
    if sum(endings.values()) != trials:
        raise SystemExit(f"{sum(endings.values())} of {trials} trials ended: {dict(endings)}")
    return Drain(last - first, claims, twice, endings)


def _fail_if_one_died(procs: list[Any], exited: set[int]) -> None:
    """Stop the benchmark, naming the worker, when a worker process ended before its goodbye."""
    for i, p in enumerate(procs):
        if i not in exited and p.exitcode is not None:
            for other in procs:
                if other.is_alive():
                    other.terminate()
            raise SystemExit(f"worker {i} died (exit code {p.exitcode}); see its output above")


def stored_duplicates(study: Any, url: str) -> int:
    """Pairs whose trials in storage are not exactly one COMPLETE one (and nothing else)."""
    from ablate.study import load_existing

    pairs = load_existing(study.spec.name, url).by_pair()
    return sum(
        1 for records in pairs.values() if len(records) != 1 or records[0].state != "COMPLETE"
    ) + sum(1 for p in study.design.pairs(None) if (p.cell, p.seed) not in pairs)


# ---------------------------------------------------------------- the commands


def command_s(argv: list[str], cwd: Path, repeat: int) -> list[float]:
    """Wall times (s) of `python -m ablate ARGV` run `repeat` times, a fresh interpreter each."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "ablate", *argv], cwd=cwd, capture_output=True, text=True
        )
        times.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(f"ablate {' '.join(argv[:1])} failed:\n{done.stdout}{done.stderr}")
    return times


# ---------------------------------------------------------------- one size


@dataclass(frozen=True)
class Row:
    trials: int
    cells: int
    enqueue_s: float
    tree_s: float
    drain: Drain
    stored_duplicates: int
    status_s: float  # median
    report_first_s: float  # the first report publishes every cell's aggregates to MLflow
    report_s: float  # median of the later ones, which send only what changed (nothing)


def measure(folder: Path, trials: int, workers: int, repeat: int) -> Row:
    from rich.console import Console

    from ablate.study import Locations, WorkerConfig, create_or_load, prepare
    from ablate.study_file import load_study

    path = study_file(folder, trials)
    study = load_study(path, ())
    with storage("postgres", folder) as url, storage("postgres", folder) as tracking:
        where = Locations.resolve(folder / "results", study.spec.name, url, tracking)
        queue = create_or_load(study, url)
        t0 = time.perf_counter()
        state = queue.sync(study.design.pairs(queue))
        enqueue_s = time.perf_counter() - t0
        if state.enqueued != trials:
            raise SystemExit(f"enqueued {state.enqueued} of {trials}")
        t0 = time.perf_counter()
        tree = prepare(study, where, queue, Console(quiet=True))
        tree_s = time.perf_counter() - t0
        cfg = WorkerConfig(study, url, tree, "cpu", 1, 0)
        drained = drain(cfg, workers, trials)
        common = ["--results", str(where.results), "--storage", url]
        status_s = statistics.median(command_s(["status", str(path), *common], folder, repeat))
        common += ["--tracking-uri", tracking]
        first, *again = command_s(["report", str(path), *common], folder, 1 + repeat)
        return Row(
            trials, len(study.cells), enqueue_s, tree_s, drained,
            stored_duplicates(study, url), status_s, first, statistics.median(again),
        )  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,2000", help="trials per study, multiples of 200")
    parser.add_argument("--workers", type=int, default=32, help="worker processes")
    parser.add_argument("--repeat", type=int, default=3, help="status/report: median of runs")
    args = parser.parse_args()
    if not os.environ.get("ABLATE_TEST_POSTGRES"):
        raise SystemExit(
            "set ABLATE_TEST_POSTGRES=postgresql+psycopg2://USER:PASSWORD@127.0.0.1:5432/DB "
            "(a role that may create databases; .ci/run sets one up)"
        )
    quiet_logs()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"scale: no-op trials on PostgreSQL (Optuna and MLflow), {args.workers} worker processes "
        f"on {os.cpu_count()} cores; status/report: median of {args.repeat} fresh interpreters"
    )
    header = (
        f"{'trials':>6} {'cells':>5} {'enqueue s':>9} {'ms/trial':>8} {'run tree s':>10} "
        f"{'drain s':>7} {'trials/s':>8} {'claim med ms':>12} {'claim p99 ms':>12} "
        f"{'duplicates':>10} {'status s':>8} {'report s':>8} {'again s':>7}"
    )
    print(header)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for trials in sizes:
            folder = Path(tmp) / str(trials)
            folder.mkdir()
            row = measure(folder, trials, args.workers, args.repeat)
            rows.append(row)
            d = row.drain
            print(
                f"{row.trials:6d} {row.cells:5d} {row.enqueue_s:9.2f} "
                f"{1000 * row.enqueue_s / trials:8.2f} {row.tree_s:10.2f} {d.seconds:7.1f} "
                f"{trials / d.seconds:8.1f} {1000 * statistics.median(d.claims):12.1f} "
                f"{1000 * percentile(d.claims, 0.99):12.1f} "
                f"{d.duplicates + row.stored_duplicates:10d} {row.status_s:8.2f} "
                f"{row.report_first_s:8.2f} {row.report_s:7.2f}",
                flush=True,
            )
    big = max(rows, key=lambda r: r.trials)
    print()
    print(f"goals at {big.trials} trials:")
    none_twice = all(r.drain.duplicates + r.stored_duplicates == 0 for r in rows)
    print(f"  duplicates 0: {'ok' if none_twice else 'FAILED'}")
    print(f"  status < 2 s: {big.status_s:.2f} s, {'ok' if big.status_s < 2 else 'over'}")
    slowest = max(big.report_first_s, big.report_s)
    print(f"  report < 30 s: {slowest:.2f} s, {'ok' if slowest < 30 else 'over'}")
    if len(rows) > 1:
        small = min(rows, key=lambda r: r.trials)
        ratio = big.report_first_s / small.report_first_s
        allowed = 1.2 * big.trials / small.trials
        print(
            f"  report {big.trials} / {small.trials} <= {allowed:g}: {ratio:.2f}, "
            f"{'ok' if ratio <= allowed else 'over'}"
        )


if __name__ == "__main__":
    main()
