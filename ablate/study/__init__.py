"""The study engine: Optuna study per study file, the trial queue, workers, resume and retries."""

from ablate.study._pool import plan_devices
from ablate.study._run import (
    Locations,
    RunOutcome,
    design_pairs,
    planned_seeds,
    prepare,
    run_study,
)
from ablate.study._search import confirmed_cells
from ablate.study._storage import (
    create_or_load,
    default_storage_url,
    load_existing,
    run_tree_of,
)

__all__ = [
    "Locations",
    "RunOutcome",
    "confirmed_cells",
    "create_or_load",
    "default_storage_url",
    "design_pairs",
    "load_existing",
    "plan_devices",
    "planned_seeds",
    "prepare",
    "run_study",
    "run_tree_of",
]
