"""Health checks: did the models learn at all, and had they stopped learning? A comparison of
models that did not learn says nothing about the trick, so a cell failing a check gets an
"inconclusive" verdict instead of "no detectable difference".

Per COMPLETE trial, from its final per-class IoU and its validation history:
- **collapsed**: at most one class has an IoU above zero (the model predicts one class
  everywhere, e.g. background only).
- **late gain**: how much the metric still moved, in the metric's favourable direction, over the
  last quarter of training: the least-squares slope of the metric over the evaluations in that
  quarter (at least the last three) times a quarter of training. Evaluations are taken as evenly
  spaced in training (`eval.every` makes them so).
Per cell: the number of collapsed seeds, and the late gain of the cell's mean curve (mean over
seeds at each evaluation), which averages out seed noise. A cell is **not converged** when that
gain is above `LATE_GAIN_POINTS` in display units (IoU points) — for metrics without points, above
`LATE_GAIN_RELATIVE` of the metric's final value. Fewer than `MIN_POINTS` evaluations and
convergence is not judged (None): not checked, never passed.

Per compared cell also the late gain of its **difference curve**: at each evaluation the mean over
seeds of the paired difference cell − reference (the seeds and evaluations both have). What a
verdict reads is the difference, and two curves rising together leave it where it is: the rule
(`verdict_of`) is that a comparison counts as unsettled when its difference curve still moved by
more than the same threshold, either way; a cell's own curve still rising is then no reason for
"inconclusive" or "at this training length". Where the difference curve cannot be judged (no
shared seeds, or the two cells were evaluated at different points of training) each side's own
curve decides, as before.

Per study: the classes never learned (IoU 0 in every COMPLETE trial), named above the table;
they are no fault of one cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ablate.formats import Units
from ablate.names import metric_info
from ablate.report._seeds import complete

LATE_GAIN_POINTS = 1.0  # a still-rising curve: more than 1 point gained over the last quarter
LATE_GAIN_RELATIVE = 0.01  # the same for metrics shown raw (a loss): 1 % of its final value
LAST_SHARE = 0.25  # "the end of training" the late gain looks at
MIN_POINTS = 3  # evaluations a slope needs; fewer in total and convergence is not judged
IOU_PREFIX = "val/iou/"


@dataclass(frozen=True)
class CellHealth:
    """A cell's checks: its COMPLETE seeds predicting one class, the late gain of its mean
    curve (stored units; NaN where not judged), whether that curve had settled (None where
    not judged), the same two for its difference curve from its reference (the baseline's own
    row has none; the gain is signed, positive where the cell still gains on its reference)
    and one line naming each problem ("" when none)."""

    collapsed: int = 0
    late_gain: float = math.nan
    converged: bool | None = None
    diff_late_gain: float = math.nan
    diff_converged: bool | None = None
    health: str = ""


def collapsed(trials: pd.DataFrame) -> pd.Series:
    """Per trial (the trials table's index): whether at most one class has IoU above zero.
    False where the trial has no per-class IoU (it was not COMPLETE, or the metric has none)."""
    columns = [c for c in trials.columns if c.startswith(IOU_PREFIX)]
    if not columns:
        return pd.Series(False, index=trials.index)
    iou = trials[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    measured = np.isfinite(iou).any(axis=1)
    learned = (np.nan_to_num(iou, nan=0.0) > 0).sum(axis=1)
    return pd.Series(measured & (learned <= 1), index=trials.index)


def never_learned(trials: pd.DataFrame) -> list[str]:
    """The classes whose IoU is 0 in every COMPLETE trial that measured them (none measured: not
    listed). Classes absent from validation have a NaN IoU and are not 'never learned'."""
    done = trials[complete(trials)]
    out = []
    for column in (c for c in trials.columns if c.startswith(IOU_PREFIX)):
        values = pd.to_numeric(done[column], errors="coerce").dropna()
        if len(values) and (values == 0).all():
            out.append(column.removeprefix(IOU_PREFIX))
    return out


def late_gain(curve: Sequence[float], goal: Literal["maximize", "minimize"]) -> float:
    """The metric's change over the last quarter of training, positive when it still improves:
    the least-squares slope over the evaluations in that quarter (at least the last three),
    per unit of training, times a quarter. NaN with fewer than three evaluations."""
    y = np.asarray(curve, dtype=float)
    k = len(y)
    if k < MIN_POINTS or not np.isfinite(y).all():
        return math.nan
    progress = np.arange(1, k + 1) / k  # evaluation i of k ends i/k of training
    tail = max(MIN_POINTS, int(np.sum(progress > 1 - LAST_SHARE - 1e-9)))
    slope = float(np.polyfit(progress[-tail:], y[-tail:], 1)[0])
    return slope * LAST_SHARE * (1.0 if goal == "maximize" else -1.0)


def threshold(metric: str, final: float) -> float:
    """The late gain (in stored units) above which a curve counts as still moving."""
    info = metric_info(metric)
    if info.scale != 1.0:
        return LATE_GAIN_POINTS / info.scale
    return LATE_GAIN_RELATIVE * abs(final) if math.isfinite(final) else math.nan


def trial_health(
    trials: pd.DataFrame,
    history: pd.DataFrame,
    *,
    metric: str,
    goal: Literal["maximize", "minimize"],
) -> pd.DataFrame:
    """Per trial (the trials table's index): `collapsed` and `late_gain` (stored units, NaN
    where not judged or not COMPLETE), for trials.csv."""
    done = complete(trials).to_numpy()
    gains = pd.Series(math.nan, index=trials.index)
    if len(history) and metric in history.columns:
        curves = {
            key: group[metric].to_numpy(dtype=float)
            for key, group in history.sort_values("epoch").groupby(["cell", "seed"], sort=False)
        }
        for i, (cell, seed) in enumerate(zip(trials["cell"], trials["seed"], strict=True)):
            if done[i] and (cell, seed) in curves:
                gains.iloc[i] = late_gain(curves[cell, seed], goal)
    return pd.DataFrame({"collapsed": collapsed(trials) & done, "late_gain": gains})


def cell_health(
    trials: pd.DataFrame,
    history: pd.DataFrame,
    *,
    metric: str,
    goal: Literal["maximize", "minimize"],
    cells: Sequence[str],
    against: Mapping[str, str] | None = None,
    baseline: str | None = None,
) -> dict[str, CellHealth]:
    """Per cell, its checks (`CellHealth`); `against` maps a compared cell to the cell it is
    compared with (`baseline` names the one written "the baseline"), whose difference curve
    is judged too."""
    done = trials[complete(trials)]
    flags = collapsed(done)
    out: dict[str, CellHealth] = {}
    curves = _curves(history, metric)
    units = Units.of(metric)
    for cell in cells:
        mine = flags[done["cell"] == cell]
        gain = _late_gain_of(curves.get(cell), goal)
        final = float(pd.to_numeric(done.loc[done["cell"] == cell, metric]).mean())
        limit = threshold(metric, final)
        converged = _settled(gain, limit)
        reference = (against or {}).get(cell)
        diff_gain = _difference_gain(curves, cell, reference, goal)
        diff_converged = _settled(abs(diff_gain), limit)
        whom = "the baseline" if reference == baseline else reference
        problems = []
        if mine.any():
            problems.append(f"{int(mine.sum())} of {len(mine)} seeds predict one class")
        if converged is False:
            shown = units.amount(gain, signed=True)
            settled = f", though its difference from {whom} had settled" if diff_converged else ""
            problems.append(f"not converged ({shown} over the last quarter){settled}")
        if diff_converged is False:
            shown = units.amount(diff_gain, signed=True)
            problems.append(f"difference from {whom} still moving ({shown} over the last quarter)")
        out[cell] = CellHealth(
            int(mine.sum()), gain, converged, diff_gain, diff_converged, "; ".join(problems)
        )
    return out


def differences_settled(
    trials: pd.DataFrame,
    history: pd.DataFrame,
    *,
    metric: str,
    goal: Literal["maximize", "minimize"],
    pairs: Sequence[tuple[str, str]],
) -> dict[tuple[str, str], bool | None]:
    """Per pair (a, b), whether the difference curve a − b had settled by the end of training,
    by the rule `cell_health` judges a cell against its reference with (None where it cannot
    be formed); the history is grouped once for all the pairs."""
    done = trials[complete(trials)]
    curves = _curves(history, metric)
    out: dict[tuple[str, str], bool | None] = {}
    for a, b in pairs:
        final = float(pd.to_numeric(done.loc[done["cell"] == a, metric]).mean())
        gain = _difference_gain(curves, a, b, goal)
        out[a, b] = _settled(abs(gain), threshold(metric, final))
    return out


def _difference_gain(
    curves: Mapping[str, pd.DataFrame],
    cell: str,
    reference: str | None,
    goal: Literal["maximize", "minimize"],
) -> float:
    """The late gain of the mean difference curve cell − reference; NaN where there is none."""
    if reference is None or cell not in curves or reference not in curves:
        return math.nan
    return _late_gain_of(_difference(curves[cell], curves[reference]), goal)


def _settled(gain: float, limit: float) -> bool | None:
    """Whether a late gain is at most `limit`; None where either is not known."""
    return None if math.isnan(gain) or math.isnan(limit) else bool(gain <= limit)


def _curves(history: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """Per cell, its curves: a table evaluation x seed holding only its own seeds (one
    grouping of the whole history, not one pivot per cell)."""
    if not len(history) or metric not in history.columns:
        return {}
    values = history.groupby(["cell", "epoch", "seed"], sort=True)[metric].last()
    wide = values.unstack("seed")  # (cell, epoch) x seed
    return {
        str(cell): table.droplevel("cell").dropna(axis=1, how="all")
        for cell, table in wide.groupby(level="cell", sort=False)
    }


def _difference(cell: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame | None:
    """The paired difference curves cell − reference (evaluation x seed, the seeds both
    have); None where the two were evaluated at different points, whose i-th evaluations are
    not at the same point of training."""
    if not cell.index.equals(reference.index):
        return None
    return cell.sub(reference).dropna(axis=1, how="all")


def _late_gain_of(table: pd.DataFrame | None, goal: Literal["maximize", "minimize"]) -> float:
    """The late gain of the mean over seeds of an evaluation x seed table (at the
    evaluations every one of its seeds has); NaN for none."""
    if table is None:
        return math.nan
    table = table.dropna()
    if not table.shape[1]:
        return math.nan
    return late_gain(table.mean(axis=1).to_numpy(dtype=float), goal)
