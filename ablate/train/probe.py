"""Timing a recipe without training it: `ablate plan --probe` estimates a study's wall time
from a few iterations and one evaluation of each distinct model, on the device it would use."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ablate.spec import Recipe
from ablate.train.fit import _measure, _set_up, _test, _train_until

WARMUP_STEPS = 2  # first iterations pay for allocation and kernel selection: not timed


@dataclass(frozen=True)
class Timing:
    setup_s: float  # data, model, objective: once per trial
    step_s: float  # one training iteration
    eval_s: float  # one evaluation of the validation split
    test_s: float  # the held-out test split, once at the end (0 without one)
    total_steps: int
    evaluations: int

    @property
    def trial_s(self) -> float:
        """A whole trial of this recipe, extrapolated."""
        return (
            self.setup_s
            + self.total_steps * self.step_s
            + self.evaluations * self.eval_s
            + self.test_s
        )


def probe(recipe: Recipe, device: str = "cpu", steps: int = 4, seed: int = 0) -> Timing:
    """Time `steps` training iterations (after WARMUP_STEPS untimed ones), one validation pass
    and the test pass of `recipe` on `device`."""
    dev = torch.device(device)

    def synced() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter()

    start = synced()
    run = _set_up(recipe, seed, dev)
    setup = synced() - start
    total = run.total_steps
    run.total_steps = max(total, WARMUP_STEPS + steps + 1)  # the lr schedule's horizon
    _train_until(run, WARMUP_STEPS)
    start = synced()
    _train_until(run, WARMUP_STEPS + steps)
    step = (synced() - start) / steps
    start = synced()
    _measure(run, run.val)
    evaluation = synced() - start
    start = synced()
    tested = _test(run, recipe)
    test = synced() - start if tested else 0.0
    return Timing(
        setup_s=setup,
        step_s=step,
        eval_s=evaluation,
        test_s=test,
        total_steps=total,
        evaluations=math.ceil(total / run.eval_every),
    )
