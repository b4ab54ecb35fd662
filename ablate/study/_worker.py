"""A worker: a long-lived process bound to one device that pops trials until none is left."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from types import FrameType

import yaml

from ablate.errors import StorageError, disk_error, store_error
from ablate.machine import read_machine
from ablate.spec import Recipe, apply_overrides
from ablate.study._events import (
    Ending,
    EpochDone,
    Report,
    TrialEnded,
    TrialStarted,
    Warned,
    WorkerExited,
)
from ablate.study._optuna import retrying
from ablate.study._queue import Queue
from ablate.study._record import Outcome, TrialRecord, TrialResult
from ablate.study._storage import create_or_load
from ablate.study._worker_config import WorkerConfig
from ablate.track import TrialRun, flatten
from ablate.train import EpochResult, FitResult
from ablate.train.checkpoint import checkpoint_name
from ablate.urls import mask_password


class _Heartbeat:
    """Records the trial's heartbeat at the storage's interval until the trial ends, so a
    worker that dies at any point is noticed; the claim recorded the first one. At each beat
    it also sweeps other workers' stale trials, so a dead worker's trial is re-queued within
    the grace period even while every live worker is busy training (not only once the queue
    runs dry)."""

    def __init__(self, queue: Queue, trial_id: int) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(queue, trial_id), daemon=True)

    def _beat(self, queue: Queue, trial_id: int) -> None:
        while not self._stop.wait(queue.store.heartbeat_interval):
            try:
                queue.store.heartbeat(trial_id)
                queue.sweep_stale()
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


# SIGHUP: a closed terminal or a dropped ssh connection reaches every worker of the group
STOP_SIGNALS: dict[int, str] = {
    signal.SIGINT: "Ctrl-C",
    signal.SIGTERM: "SIGTERM",
    signal.SIGHUP: "SIGHUP",
}


@contextlib.contextmanager
def _interrupts_outside_clients() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt (naming the signal) in this worker, once, and
    only outside database and MLflow client code; inside, the signal is looked at again every
    50 ms. Raised inside, it can leave a connection holding a lock (a SQLite write lock, a
    PostgreSQL row lock) that the cleanup of the interrupted trial then waits on: seen with two
    workers and SQLite, both stuck for the whole busy timeout, their trials left RUNNING. A
    second signal during that cleanup is ignored for the same reason. Only in the main
    thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []  # the signal waiting for client code to return
    raised: list[bool] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if raised:
            return
        if signum != signal.SIGALRM:
            pending.append(signum)
        if _in_client(frame):
            signal.setitimer(signal.ITIMER_REAL, 0.05)  # SIGALRM: this handler again
        elif pending:
            raised.append(True)
            raise KeyboardInterrupt(STOP_SIGNALS.get(pending[0], "a signal"))

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGALRM, *STOP_SIGNALS)}
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _signal_name(stop: KeyboardInterrupt) -> str:
    return str(stop.args[0]) if stop.args else "Ctrl-C"


def _describe_error(exc: BaseException) -> str:
    if type(exc).__module__.startswith(("mlflow", "sqlalchemy")):
        text = store_error(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in str(exc).lower() or isinstance(exc, MemoryError):
        text = f"out of memory: {text} (try a smaller train.batch_size or data.image_size)"
    return text


class _Logger:
    """Sends each epoch to MLflow and the display, and keeps what the record stores."""

    def __init__(self, cfg: WorkerConfig, run: TrialRun, number: int, report: Report) -> None:
        self.cfg, self.run, self.number, self.report = cfg, run, number, report
        self.history: list[dict[str, float]] = []
        self.gradients: list[list[object]] = []  # [iteration, {layer: mean |grad|}]

    def __call__(self, result: EpochResult) -> None:
        # one step axis (see ablate.track): α_t and gradients at their iteration, everything
        # else once per evaluation at the steps trained so far
        epoch_metrics = {k: v for k, v in result.metrics.items() if k != "train/aux_weight"}
        series: dict[str, list[tuple[int, float]]] = {"train/aux_weight": list(result.aux_weights)}
        for iteration, layers in result.gradients:
            for layer, value in layers.items():
                series.setdefault(f"train/grad/{layer}", []).append((iteration, value))
        _tracked(
            lambda: self.run.log_metrics(epoch_metrics, step=result.iteration, series=series),
            f"epoch {result.epoch}'s metrics not sent to MLflow yet (kept; sent with the next)",
            self.cfg.worker,
            self.number,
            self.report,
        )
        self.gradients.extend([i, dict(v)] for i, v in result.gradients)
        self.history.append({k: round(v, 6) for k, v in result.metrics.items()})
        value = result.metrics.get(self.cfg.study.spec.metric.name, math.nan)
        self.report(EpochDone(self.cfg.worker, self.number, result.epoch, value))

    def result(self, fitted: FitResult) -> TrialResult:
        return TrialResult(
            history=self.history,
            final={
                **{k: v for k, v in fitted.final.items() if k.startswith("val/")},
                **fitted.test,
            },
            best=dict(fitted.best),
            gradients=self.gradients,
            total_steps=fitted.total_steps,
            duration_s=fitted.duration_s,
            machine=read_machine(self.cfg.device),  # this process's, as the trial left it
        )


def _tracked(
    action: Callable[[], object], what: str, worker: int, number: int, report: Report
) -> None:
    """Run an MLflow write the trial survives without: when the tracking store fails, say
    `what` (with the cause) and go on. The trial's record keeps everything it measured, and
    the next start ends a run left RUNNING from it (`reconcile`)."""
    try:
        action()
    except Exception as exc:
        report(Warned(worker, number, f"{what}: {_describe_error(exc)}"[:500]))


def _start_run(cfg: WorkerConfig, queue: Queue, record: TrialRecord, recipe: Recipe) -> TrialRun:
    """The trial's MLflow run with its parameters and config.yaml, named in its record. A
    tracking store that cannot take a new run stops the worker (every later trial would fail
    the same way): the trial is re-queued and `StorageError` says why."""
    tracking = cfg.tree.tracking_uri
    try:  # a database tracking store that refuses connections for a while is waited for
        run = retrying(
            tracking,
            lambda: TrialRun(
                cfg.tree, cfg.study.spec.name, record.cell, record.seed, record.number
            ),
            store="the MLflow tracking store",
        )
    except Exception as exc:
        raise _tracking_broke(cfg, queue, record, exc) from None
    try:
        queue.started(record.trial_id, run.run_id, cfg.device)
    except BaseException:  # the storage went away (or a stop): the run must not stay RUNNING
        with contextlib.suppress(Exception):
            run.end("KILLED")
        raise
    config = recipe.model_dump(mode="json")
    cell, seed = record.cell, record.seed
    try:
        params = {**flatten(config), "seed": seed, "cell": cell, "trial_number": record.number}
        retrying(tracking, lambda: run.log_params(params), store="the MLflow tracking store")
        config_yaml = yaml.safe_dump({"cell": cell, "seed": seed, **config}, sort_keys=False)
        retrying(
            tracking,
            lambda: run.log_text(config_yaml, "config.yaml"),
            store="the MLflow tracking store",
        )
    except Exception as exc:
        raise _tracking_broke(cfg, queue, record, exc) from None
    return run


def _tracking_broke(
    cfg: WorkerConfig, queue: Queue, record: TrialRecord, exc: Exception
) -> StorageError:
    """The trial, not yet trained, is killed and re-queued (its run ended KILLED if it can
    be); the error stops the worker."""
    cause = f"the MLflow tracking store cannot take a new run ({_describe_error(exc)})"
    if queue.end(record.trial_id, Outcome.KILLED, error=cause[:2000]):
        killed = queue.record(record.trial_id)
        queue.retry(killed)
        queue.kill_run(killed)
    return StorageError(
        f"{cause[:300]}; trial #{record.number} was re-queued. Tracking URI: "
        f"{mask_password(cfg.tree.tracking_uri)}; fix it and run the same command again"
    )


def _lost(cfg: WorkerConfig, run: TrialRun, number: int, report: Report) -> None:
    """Another process ended this worker's trial: its sweep saw no heartbeat for the grace
    period (the machine stalled, the database was unreachable), killed the trial and queued
    its retry. The result is dropped (the retry stands, so no (cell, seed) completes twice)
    and the run ends KILLED."""
    reason = "declared dead by the heartbeat sweep; the trial was re-queued"
    _tracked(
        lambda: _end_run(run, "KILLED", {"ablate.error": reason}),
        _RUN_NOT_ENDED,
        cfg.worker,
        number,
        report,
    )
    report(TrialEnded(cfg.worker, number, "lost"))


_RUN_NOT_ENDED = "MLflow run left RUNNING (the next start ends it from the trial's record)"


def _end_run(run: TrialRun, status: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        run.set_tag(key, value)
    run.end(status)


def _end_crashed(
    cfg: WorkerConfig,
    queue: Queue,
    run: TrialRun,
    record: TrialRecord,
    exc: Exception,
    report: Report,
) -> TrialEnded | None:
    """A crashing trial is recorded and retried; the study goes on. None when lost."""
    error = _describe_error(exc)
    if not queue.end(record.trial_id, Outcome.FAILED, error=error, traceback=_trace()):
        return None
    _tracked(
        lambda: _end_run(run, "FAILED", {"ablate.error": error}),
        _RUN_NOT_ENDED,
        cfg.worker,
        record.number,
        report,
    )
    retried = queue.retry(queue.record(record.trial_id))  # with the values it was given
    return TrialEnded(cfg.worker, record.number, "retry" if retried else "failed", error=error)


def _trace() -> str:
    return traceback.format_exc()[-4000:]


def _end_trained(
    cfg: WorkerConfig,
    queue: Queue,
    run: TrialRun,
    record: TrialRecord,
    fitted: FitResult,
    logger: _Logger,
) -> TrialEnded | None:
    """A trial that trained to its end, or diverged: its outcome, results and run status.
    None when lost."""
    metric = cfg.study.spec.metric.name
    value = fitted.final.get(metric, math.nan)
    error = ""
    ending: Ending = "complete"
    if fitted.diverged:
        outcome, ending = Outcome.DIVERGED, "diverged"
    elif not math.isfinite(value):  # the recipe, not luck: not retried within this run
        outcome, ending = Outcome.FAILED, "failed"
        error = f"{metric} has no finite value ({value}) at the end of training"
    else:
        outcome = Outcome.COMPLETE
    if fitted.class_weights:  # loss.ce.class_weight: balanced, computed once per trial
        weights = {f"loss.ce.class_weight/{k}": f"{v:.6g}" for k, v in fitted.class_weights.items()}
        _tracked(
            lambda: run.log_params(weights),
            "class weights not logged",
            cfg.worker,
            record.number,
            logger.report,
        )
    if fitted.checkpoint is not None:  # a full disk loses the file, not the trial
        checkpoint = fitted.checkpoint
        _tracked(
            lambda: run.log_torch(checkpoint, "model.pt"),
            "model.pt not saved",
            cfg.worker,
            record.number,
            logger.report,
        )
    if fitted.test:  # measured once, at the last evaluation's step
        test, step = dict(fitted.test), fitted.history[-1].iteration if fitted.history else 0
        _tracked(
            lambda: run.log_metrics(test, step=step),
            "test metrics not sent to MLflow",
            cfg.worker,
            record.number,
            logger.report,
        )
    done = outcome == Outcome.COMPLETE
    result = logger.result(fitted)
    # the record first: it is what counts; a stop before the run ends is reconciled from it
    if not queue.end(record.trial_id, outcome, value if done else None, result, error):
        return None
    tags = {} if done else {"ablate.outcome": outcome.value}
    if result.machine is not None:
        tags["ablate.machine"] = result.machine.describe()
    if fitted.resumed_at:
        tags["ablate.resumed_at_evaluation"] = str(fitted.resumed_at)
    if fitted.set_aside:  # a damaged or foreign checkpoint, moved away; trained from the start
        tags["ablate.checkpoint_set_aside"] = fitted.set_aside[:5000]
    _tracked(
        lambda: _end_run(run, "FINISHED" if done else "FAILED", tags),
        _RUN_NOT_ENDED,
        cfg.worker,
        record.number,
        logger.report,
    )
    return TrialEnded(cfg.worker, record.number, ending, value, error)


def _evaluations(recipe: Recipe) -> int | None:
    """How many evaluations a trial makes, for its progress bar; None when that depends on the
    size of a dataset on disk."""
    t, every = recipe.train, recipe.eval.every
    if t.iters is not None:
        return -(-t.iters // every) if every else None
    return t.epochs if every is None else None


def run_trial(cfg: WorkerConfig, queue: Queue, trial_id: int, report: Report) -> TrialEnded:
    """Train one popped trial, log it to MLflow, end its Optuna trial."""
    record = queue.record(trial_id)
    overrides = cfg.study.design.values(queue, record)
    if overrides != dict(record.overrides):  # sampled just now
        queue.set_overrides(trial_id, overrides)
    recipe = apply_overrides(cfg.study.spec.base, overrides)
    report(TrialStarted(cfg.worker, record.number, record.cell, record.seed, _evaluations(recipe)))
    run = _start_run(cfg, queue, record, recipe)
    logger = _Logger(cfg, run, record.number, report)
    saved = cfg.checkpoints / checkpoint_name(record.cell, record.seed) if cfg.checkpoints else None
    try:
        fitted = cfg.train(recipe, record.seed, cfg.device, on_epoch=logger, checkpoint=saved)
    except OSError as exc:
        if (full := disk_error(exc)) is None:
            ended = _end_crashed(cfg, queue, run, record, exc, report)
        else:  # not the trial's fault, and every trial would meet it: stop the study
            queue.abandon(trial_id, f"stopped: {full}"[:2000])
            raise full from None
    except Exception as exc:  # the checkpoint stays: the retry continues from it
        ended = _end_crashed(cfg, queue, run, record, exc, report)
    else:
        ended = _end_trained(cfg, queue, run, record, fitted, logger)
        if ended is not None and saved is not None and not recipe.train.keep_checkpoint:
            saved.unlink(missing_ok=True)  # done; a lost try's retry continues from it
    if ended is None:
        _lost(cfg, run, record.number, report)
        return TrialEnded(cfg.worker, record.number, "lost")
    report(ended)
    return ended


def work(cfg: WorkerConfig, report: Report) -> None:
    """Pop and run trials until none is waiting or running anywhere; log them under the
    study's run tree."""
    import torch

    torch.set_num_threads(cfg.threads)
    with _interrupts_outside_clients():
        queue = create_or_load(cfg.study, cfg.storage_url, cfg.tree.tracking_uri)
        while True:
            trial_id = queue.pop()
            if trial_id is not None:
                with _Heartbeat(queue, trial_id):
                    try:
                        run_trial(cfg, queue, trial_id, report)
                    except KeyboardInterrupt as stop:  # killed now, not after the grace period
                        queue.abandon(trial_id, f"interrupted ({_signal_name(stop)})")
                        raise
            elif not (queue.wait_for_pending() or queue.advance(cfg.study.design)):
                break
    report(WorkerExited(cfg.worker))
