"""Training functions that train nothing, given to workers through their configuration
(`run_study(..., train=...)`, `WorkerConfig.train`). Each is a module-level function, bound to
its arguments with `functools.partial`, so that a spawned worker unpickles it as `ablate run`'s
workers unpickle `ablate.train.fit`. What one records crosses processes in a file."""

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from ablate.spec import Recipe
from ablate.study import Event, Locations, WorkerConfig, plan_devices, start_study
from ablate.study_file import Study
from ablate.train import EpochResult, FitResult


def fit_two_epochs(
    recipe: Any, seed: int, device: Any, on_epoch: Any = None, checkpoint: Any = None
) -> FitResult:
    """A fit that trains nothing: two epochs of made-up metrics and a model to save."""
    epochs = [EpochResult(e, {"val/mIoU": 0.1 * e + seed, "train/loss": 1.0 / e}) for e in (1, 2)]
    for epoch in epochs:
        on_epoch(epoch)
    return FitResult(epochs, False, 0.01, {"val/mIoU": 0.2 + seed}, checkpoint={"w": [1.0]})


def count_call(calls: Path) -> int:
    """One more call, counted in the file `calls` (by any process): how many so far."""
    with calls.open("a") as f:
        f.write(".")
    return len(calls.read_text())


def calls_of(calls: Path) -> int:
    return len(calls.read_text()) if calls.exists() else 0


class TrainingLog:
    """The (recipe, seed) of every trial a fake trained, in the order trained, in any process."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, recipe: Recipe, seed: int) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"recipe": recipe.model_dump(mode="json"), "seed": seed}) + "\n")

    def trained(self) -> list[tuple[Recipe, int]]:
        if not self.path.exists():
            return []
        lines = [json.loads(line) for line in self.path.read_text().splitlines()]
        return [(Recipe.model_validate(line["recipe"]), line["seed"]) for line in lines]


def fail_first(
    calls: Path,
    train: Any,
    recipe: Any,
    seed: int,
    device: Any,
    on_epoch: Any = None,
    checkpoint: Any = None,
) -> FitResult:
    """`train`, except that its first call raises RuntimeError("transient")."""
    if count_call(calls) == 1:
        raise RuntimeError("transient")
    return train(recipe, seed, device, on_epoch=on_epoch, checkpoint=checkpoint)  # type: ignore[no-any-return]


def work_here(study: Study, where: Locations, train: Any) -> list[Event]:
    """What `ablate run` does before its workers start, then one worker in this process (where
    a test can make MLflow or the disk fail under it): every event the worker reported."""
    from ablate.study._worker import work

    started = start_study(study, where, Console(quiet=True))
    device, threads = plan_devices(None, 1)[0]
    events: list[Event] = []
    job = WorkerConfig(
        study, where.storage_url, started.tree, device, threads, 0, where.checkpoints, train
    )
    work(job, events.append)
    return events
