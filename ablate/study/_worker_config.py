"""What a worker is given: the study, where it is stored and tracked, its device, and the
function that trains a trial. Its own module so that starting workers (`_pool`) and being one
(`_worker`) both use it without importing each other, and without importing torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.spec import Recipe
from ablate.study_file import Study
from ablate.track import RunTree

if TYPE_CHECKING:
    from ablate.train import FitResult


def fit_trial(recipe: Recipe, seed: int, device: str, **kwargs: Any) -> FitResult:
    """`ablate.train.fit`, imported at the first trial: torch is imported only by the
    processes that train, not by `ablate run`'s own."""
    from ablate.train import fit

    return fit(recipe, seed, device, **kwargs)


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
    # trains one trial as `ablate.train.fit` does (recipe, seed, device, on_epoch=,
    # checkpoint=); a spawned worker unpickles it, so another one is a module-level function
    train: Callable[..., FitResult] = fit_trial
