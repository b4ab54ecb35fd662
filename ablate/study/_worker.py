"""A worker: a long-lived process bound to one device that pops trials until none is left."""

from __future__ import annotations

import math
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from ablate.spec import Study, apply_overrides
from ablate.study._queue import pop_waiting, retry_or_give_up, wait_for_pending
from ablate.study._storage import HEARTBEAT_S, create_or_load
from ablate.track import RunTree, TrialRun, flatten
from ablate.train import EpochResult, fit

Report = Callable[[dict[str, Any]], None]  # progress events for the live display


@dataclass(frozen=True)
class WorkerConfig:
    study: Study
    storage_url: str
    tree: RunTree
    device: str
    threads: int  # torch threads (CPU workers split the cores)
    worker: int  # index, for the display


class _Heartbeat:
    """Records the trial's heartbeat every HEARTBEAT_S seconds while the trial runs."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(storage, trial_id), daemon=True)

    def _beat(self, storage: Any, trial_id: int) -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if self._stop.wait(HEARTBEAT_S):
                return

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in str(exc).lower() or isinstance(exc, MemoryError):
        text = f"out of memory: {text} (try a smaller train.batch_size or data.image_size)"
    return text


def run_trial(cfg: WorkerConfig, ostudy: optuna.Study, trial_id: int, report: Report) -> str:
    """Train one popped trial, log it to MLflow, tell Optuna. Returns the outcome."""
    storage = ostudy._storage
    frozen = storage.get_trial(trial_id)
    cell, seed = str(frozen.user_attrs["cell"]), int(frozen.user_attrs["seed"])
    spec = cfg.study.spec
    metric = spec.metric.name
    recipe = apply_overrides(spec.base, frozen.user_attrs.get("overrides", {}))
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

    run = TrialRun(cfg.tree, spec.name, cell, seed, frozen.number)
    storage.set_trial_user_attr(trial_id, "mlflow_run_id", run.run_id)
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
        with _Heartbeat(storage, trial_id):
            result = fit(recipe, seed, cfg.device, on_epoch=on_epoch)
    except KeyboardInterrupt:
        storage.set_trial_user_attr(trial_id, "error", "interrupted (Ctrl-C)")
        ostudy.tell(frozen.number, state=TrialState.FAIL)
        run.end("KILLED")
        raise
    except Exception as exc:  # a crashing trial is recorded and retried; the study goes on
        error = _describe_error(exc)
        storage.set_trial_user_attr(trial_id, "error", error)
        storage.set_trial_user_attr(trial_id, "traceback", traceback.format_exc()[-4000:])
        ostudy.tell(frozen.number, state=TrialState.FAIL)
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
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)
    if result.checkpoint is not None:
        run.log_torch(result.checkpoint, "model.pt")
    value = result.final.get(metric, math.nan)
    if result.diverged or not math.isfinite(value):
        outcome = "diverged" if result.diverged else "no-value"
        storage.set_trial_user_attr(trial_id, "outcome", outcome)
        ostudy.tell(frozen.number, state=TrialState.PRUNED)
        run.set_tag("ablate.outcome", outcome)
        run.end("FAILED")
    else:
        outcome = "complete"
        storage.set_trial_user_attr(trial_id, "outcome", outcome)
        ostudy.tell(frozen.number, value)
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


def work(cfg: WorkerConfig, report: Report) -> None:
    """Pop and run trials until none is waiting or running anywhere."""
    import torch

    torch.set_num_threads(cfg.threads)
    ostudy = create_or_load(cfg.study, cfg.storage_url)
    while True:
        trial_id = pop_waiting(ostudy)
        if trial_id is not None:
            run_trial(cfg, ostudy, trial_id, report)
        elif not wait_for_pending(ostudy):
            break
    report({"event": "exit", "worker": cfg.worker})
