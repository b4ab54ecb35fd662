"""A worker: a long-lived process bound to one device that pops trials until none is left."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from ablate.spec import Study, apply_overrides
from ablate.study._queue import (
    abandon,
    finish,
    pop_waiting,
    retry_or_give_up,
    set_user_attrs,
    wait_for_pending,
)
from ablate.study._search import confirmation_coming, suggest
from ablate.study._storage import HEARTBEAT_S, create_or_load
from ablate.track import RunTree, TrialRun, flatten
from ablate.train import EpochResult, fit

Report = Callable[[dict[str, Any]], None]  # progress events for the live display


@dataclass(frozen=True)
class WorkerConfig:
    study: Study
    storage_url: str
    tracking_uri: str  # known before the run tree: a spawned worker imports for it meanwhile
    device: str
    threads: int  # torch threads (CPU workers split the cores)
    worker: int  # index, for the display


class _Heartbeat:
    """Records the trial's heartbeat at the storage's interval (HEARTBEAT_S) until the trial
    ends, so a worker that dies at any point is noticed. The claim recorded the first one."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(storage, trial_id), daemon=True)

    def _beat(self, storage: Any, trial_id: int) -> None:
        interval = storage.get_heartbeat_interval() or HEARTBEAT_S
        while not self._stop.wait(interval):
            try:
                storage.record_heartbeat(trial_id)
            except Exception as exc:  # a storage hiccup must not stop the heartbeat for good
                warnings.warn(f"heartbeat of trial {trial_id} not recorded: {exc}", stacklevel=1)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


_CLIENTS = ("sqlalchemy", "sqlite3", "psycopg2", "mlflow", "optuna", "alembic")


def _in_client(frame: FrameType | None) -> bool:
    """Whether this stack is inside database or tracking client code."""
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_CLIENTS):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def _interrupts_outside_clients() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in this worker only outside database and MLflow client
    code; inside, it is looked at again every 50 ms. Raised inside, it can leave a connection
    holding a lock (a SQLite write lock, a PostgreSQL row lock) that the cleanup of the
    interrupted trial then waits on: seen with two workers and SQLite, both stuck for the whole
    busy timeout, their trials left RUNNING. Only in the main thread, and only where Ctrl-C has
    Python's default handler."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if _in_client(frame):
            signal.setitimer(signal.ITIMER_REAL, 0.05)  # SIGALRM: this handler again
        else:
            raise KeyboardInterrupt

    alarm = signal.signal(signal.SIGALRM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGALRM, alarm)


def _describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in str(exc).lower() or isinstance(exc, MemoryError):
        text = f"out of memory: {text} (try a smaller train.batch_size or data.image_size)"
    return text


def _lost(cfg: WorkerConfig, run: TrialRun, number: int, report: Report) -> str:
    """Another process ended this worker's trial: its sweep saw no heartbeat for the grace
    period (the machine stalled, the database was unreachable), failed the trial and queued
    its retry. The result is dropped (the retry stands, so no (cell, seed) completes twice)
    and the run ends KILLED."""
    run.set_tag("ablate.error", "declared dead by the heartbeat sweep; the trial was re-queued")
    run.end("KILLED")
    report({"event": "end", "worker": cfg.worker, "number": number, "outcome": "lost"})
    return "lost"


def run_trial(
    cfg: WorkerConfig, tree: RunTree, ostudy: optuna.Study, trial_id: int, report: Report
) -> str:
    """Train one popped trial, log it to MLflow, end its Optuna trial. Returns the outcome."""
    storage = ostudy._storage
    frozen = storage.get_trial(trial_id)
    cell, seed = str(frozen.user_attrs["cell"]), int(frozen.user_attrs["seed"])
    spec = cfg.study.spec
    metric = spec.metric.name
    overrides = dict(frozen.user_attrs.get("overrides", {}))
    search = cfg.study.search if frozen.user_attrs.get("search") else None
    if search is not None:
        overrides = suggest(ostudy, trial_id, frozen.number, search, cfg.study.search_seed)
    recipe = apply_overrides(spec.base, overrides)
    report(
        {
            "event": "start",
            "worker": cfg.worker,
            "number": frozen.number,
            "cell": cell,
            "seed": seed,
            "epochs": recipe.train.epochs,
        }
    )

    run = TrialRun(tree, spec.name, cell, seed, frozen.number)
    claimed: dict[str, Any] = {"mlflow_run_id": run.run_id, "device": cfg.device}
    if search is not None:  # sampled just now; a grid trial's were enqueued with it
        claimed["overrides"] = overrides
    set_user_attrs(ostudy, trial_id, claimed)
    config = recipe.model_dump(mode="json")
    run.log_params({**flatten(config), "seed": seed, "cell": cell, "trial_number": frozen.number})
    run.log_text(
        yaml.safe_dump({"cell": cell, "seed": seed, **config}, sort_keys=False), "config.yaml"
    )

    history: list[dict[str, float]] = []
    gradients: list[list[object]] = []  # [iteration, {layer: mean |grad|}]

    def on_epoch(result: EpochResult) -> None:
        # α_t per iteration (step = iteration); everything else once per epoch (step = epoch)
        epoch_metrics = {k: v for k, v in result.metrics.items() if k != "train/aux_weight"}
        series: dict[str, list[tuple[int, float]]] = {"train/aux_weight": list(result.aux_weights)}
        for iteration, layers in result.gradients:
            for layer, value in layers.items():
                series.setdefault(f"train/grad/{layer}", []).append((iteration, value))
        run.log_metrics(epoch_metrics, step=result.epoch, series=series)
        gradients.extend([i, dict(v)] for i, v in result.gradients)
        history.append({k: round(v, 6) for k, v in result.metrics.items()})
        report(
            {
                "event": "epoch",
                "worker": cfg.worker,
                "number": frozen.number,
                "epoch": result.epoch,
                "value": result.metrics.get(metric),
            }
        )

    try:
        result = fit(recipe, seed, cfg.device, on_epoch=on_epoch)
    except Exception as exc:  # a crashing trial is recorded and retried; the study goes on
        error = _describe_error(exc)
        details = {"error": error, "traceback": traceback.format_exc()[-4000:]}
        if not finish(ostudy, trial_id, TrialState.FAIL, None, details):
            return _lost(cfg, run, frozen.number, report)
        run.set_tag("ablate.error", error)
        run.end("FAILED")
        retried = retry_or_give_up(ostudy, storage.get_trial(trial_id))
        report(
            {
                "event": "end",
                "worker": cfg.worker,
                "number": frozen.number,
                "outcome": "retry" if retried else "fail",
                "error": error,
            }
        )
        return "fail"

    attrs = {
        "history": history,
        "duration_s": round(result.duration_s, 3),
        "final": {k: v for k, v in result.final.items() if k.startswith("val/")},
        "best": dict(result.best),
        "gradients": gradients,
        "total_steps": result.total_steps,
    }
    value = result.final.get(metric, math.nan)
    failed = result.diverged or not math.isfinite(value)
    outcome = ("diverged" if result.diverged else "no-value") if failed else "complete"
    if result.checkpoint is not None:
        run.log_torch(result.checkpoint, "model.pt")
    state = TrialState.PRUNED if failed else TrialState.COMPLETE
    attrs["outcome"] = outcome
    if not finish(ostudy, trial_id, state, None if failed else value, attrs):
        return _lost(cfg, run, frozen.number, report)
    if failed:
        run.set_tag("ablate.outcome", outcome)
        run.end("FAILED")
    else:
        run.end("FINISHED")
    report(
        {
            "event": "end",
            "worker": cfg.worker,
            "number": frozen.number,
            "outcome": outcome,
            "value": value,
        }
    )
    return outcome


def work(cfg: WorkerConfig, tree: RunTree, report: Report) -> None:
    """Pop and run trials until none is waiting or running anywhere; log them under `tree`."""
    import torch

    torch.set_num_threads(cfg.threads)
    with _interrupts_outside_clients():
        ostudy = create_or_load(cfg.study, cfg.storage_url)
        while True:
            trial_id = pop_waiting(ostudy)
            if trial_id is not None:
                with _Heartbeat(ostudy._storage, trial_id):
                    try:
                        run_trial(cfg, tree, ostudy, trial_id, report)
                    except KeyboardInterrupt:  # wherever it lands: FAIL now, not after the grace
                        abandon(ostudy, trial_id, "interrupted (Ctrl-C)", tree.tracking_uri)
                        raise
            elif not (wait_for_pending(ostudy) or confirmation_coming(cfg.study, ostudy)):
                break
    report({"event": "exit", "worker": cfg.worker})
