"""One value per (cell, seed) read from the trials table: only COMPLETE trials with a finite value,
the latest trial winning if a seed somehow completed twice.

The table's `outcome` column holds each trial's `Outcome` (None while it waits or runs); its
`state` column is that outcome's name in trials.csv, for people, and is not read here."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from ablate.study import Outcome


def complete(trials: pd.DataFrame) -> pd.Series:
    """Per trial (the table's index), whether it ended COMPLETE."""
    return trials["outcome"].map(lambda o: o is Outcome.COMPLETE).astype(bool)


def require_columns(trials: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in trials.columns]
    if missing:
        raise ValueError(f"trials table lacks column(s) {missing}; it has {list(trials.columns)}")


def cell_order(trials: pd.DataFrame, cells: Sequence[str] | None) -> list[str]:
    if cells is not None:
        return list(dict.fromkeys(cells))
    return list(pd.unique(trials["cell"]))


def empty_series() -> pd.Series:
    return pd.Series([], dtype=float)


def seed_values(trials: pd.DataFrame, column: str) -> dict[Hashable, pd.Series]:
    """Per cell, the finite values of `column` over its COMPLETE seeds, indexed by seed.

    If a seed somehow completed twice, its latest trial (highest number) wins.
    """
    frame = complete_rows(trials, column)
    seeds, values = frame["seed"].to_numpy(), frame["value"].to_numpy(dtype=float)
    return {  # positions per cell, not a frame per cell: studies have hundreds of cells
        cell: pd.Series(values[at], pd.Index(seeds[at], name="seed"), name="value").sort_index()
        for cell, at in frame.groupby("cell", sort=False).indices.items()
    }


def complete_rows(trials: pd.DataFrame, column: str) -> pd.DataFrame:
    """The COMPLETE rows with a finite `column`, one per (cell, seed) (the latest trial wins),
    with that column as float under the name "value"; the index is the trials table's."""
    done = trials[complete(trials)].sort_values("number", kind="stable")
    done = done.drop_duplicates(["cell", "seed"], keep="last")
    value = pd.to_numeric(done[column], errors="coerce").astype(float)
    keep = np.isfinite(value.to_numpy())
    return done.assign(value=value)[keep]
