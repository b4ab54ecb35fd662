"""`ablate plan`: what a study will train before it trains, and with `--probe` how long it
should take, from timing each distinct model once (ablate.train.probe)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ablate.spec import Recipe
from ablate.study_file import Study

# the parts of a recipe that set a trial's speed; the loss terms change it little
_SPEED_KEYS = ("data", "model", "eval")
_SPEED_TRAIN = ("epochs", "iters", "batch_size", "amp", "threads", "deterministic")


def speed_key(recipe: Recipe) -> str:
    dumped = recipe.model_dump(mode="json")
    key = {k: dumped[k] for k in _SPEED_KEYS}
    key["train"] = {k: dumped["train"].get(k) for k in _SPEED_TRAIN}
    return json.dumps(key, sort_keys=True)


@dataclass(frozen=True)
class PlanLine:
    model: str  # the model's name and the cells that use it
    cells: list[str]
    trials: int  # (cell, seed) pairs of these cells, at most
    trial_s: float | None  # probed time of one trial


@dataclass(frozen=True)
class Plan:
    trials: int  # at most, for adaptive seeds
    lines: list[PlanLine]
    workers: int

    @property
    def wall_s(self) -> float | None:
        """Estimated wall time: the summed trial times shared by the workers (trials of one
        study run in parallel, one per worker)."""
        if any(line.trial_s is None for line in self.lines):
            return None
        total = sum(line.trials * (line.trial_s or 0.0) for line in self.lines)
        return total / max(1, self.workers)


def make_plan(study: Study, workers: int, timer: Callable[[Recipe], float] | None = None) -> Plan:
    """Group the study's trials by the recipe parts that set their speed; with `timer`, time
    one trial of each group."""
    per_cell = Counter(p.cell for p in study.design.pairs(None))
    groups: dict[str, list[str]] = {}
    for cell in study.cells:
        groups.setdefault(speed_key(study.recipes[cell.name]), []).append(cell.name)
    # trials a design adds as it goes (adaptive seeds' rounds, a search's confirmation) are
    # shared out in proportion to what it queues first: the counts are at most
    scale = study.n_trials / max(1, sum(per_cell.values()))
    lines = []
    for cells in groups.values():
        recipe = study.recipes[cells[0]]
        trials = round(sum(per_cell[c] for c in cells) * scale)
        lines.append(PlanLine(recipe.model.name, cells, trials, timer(recipe) if timer else None))
    return Plan(study.n_trials, lines, workers)
