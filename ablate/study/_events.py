"""Progress events a worker sends to the live display (through a queue when it is a process)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TrialStarted:
    worker: int
    number: int
    cell: str
    seed: int
    epochs: int | None  # evaluations the trial will make, when known in advance


@dataclass(frozen=True)
class EpochDone:
    worker: int
    number: int
    epoch: int
    value: float  # the study's metric after this epoch (NaN when not measured)


# complete / diverged / failed: the trial has its outcome; retry: it failed and was enqueued
# again; lost: this worker was declared dead meanwhile, its result dropped (the retry stands)
Ending = Literal["complete", "diverged", "failed", "retry", "lost"]


@dataclass(frozen=True)
class TrialEnded:
    worker: int
    number: int
    ending: Ending
    value: float = float("nan")
    error: str = ""

    @property
    def counts(self) -> bool:
        """Whether the (cell, seed) got its outcome (a retry or a lost try did not)."""
        return self.ending not in ("retry", "lost")


@dataclass(frozen=True)
class Warned:
    """Something went wrong that the trial survives (an MLflow write, an artifact)."""

    worker: int
    number: int
    message: str


@dataclass(frozen=True)
class WorkerExited:
    worker: int
    error: str = ""  # why it stopped before the queue was drained (a store it cannot write)


Event = TrialStarted | EpochDone | TrialEnded | Warned | WorkerExited
Report = Callable[[Event], None]
