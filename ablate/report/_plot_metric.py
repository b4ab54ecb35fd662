"""The metric of every cell against one swept key: every seed as a point, the mean with its
confidence interval, the baseline marked and cells without a completed trial crossed out."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ablate.names import metric_scale
from ablate.report._figure import FigureData, axis_label, save, set_category_ticks, value_label
from ablate.report._seeds import complete

_CATEGORY_JITTER = 0.12  # seed points spread ± this around a category (categories are 1 apart)
_NAMED_CATEGORIES = 40  # beyond this many, categories are numbered, not named ...
_NUMBERED_TICKS = 12  # ... at about this many ticks
_NUMERIC_JITTER = 0.015  # seed points spread ± this share of the key's range


def report_metric_vs_key(data: FigureData) -> list[Path]:
    """Where trials measured the metric: every cell's seeds and mean along the study's axis."""
    if not data.complete[data.metric].notna().any():
        return []
    return plot_metric_vs_key(
        data.complete,
        data.summary.frame(),
        key=data.axis,
        metric=data.metric,
        baseline=data.baseline,
        out_dir=data.out,
        stem="metric_vs_cell",
    )


def plot_metric_vs_key(
    trials: pd.DataFrame,
    summary: pd.DataFrame,
    *,
    key: str | None,
    metric: str,
    baseline: str,
    out_dir: Path | str,
    stem: str,
    confidence: float = 0.95,
) -> list[Path]:
    """The metric of every cell against one swept key, every seed shown, the baseline marked.

    A numeric key gets a mean line with a CI band over the key's axis; strings, booleans, None,
    several cells at one key value, or `key=None` (named variants) give one category per cell.
    """
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    _draw_metric_vs_key(
        ax, trials, summary, key=key, metric=metric, baseline=baseline, confidence=confidence
    )
    return save(fig, out_dir, stem)


def _draw_metric_vs_key(
    ax: Axes,
    trials: pd.DataFrame,
    summary: pd.DataFrame,
    *,
    key: str | None,
    metric: str,
    baseline: str,
    confidence: float = 0.95,
) -> None:
    """Draw onto `ax`; artists carry gids ("mean", "ci", "seeds", "baseline", "missing")."""
    scale = metric_scale(metric)
    numeric_key = key if key is not None and _is_numeric_key(summary, key) else None
    if numeric_key is not None:
        placed = summary[summary[numeric_key].notna()].sort_values(numeric_key, kind="stable")
        x = placed[numeric_key].to_numpy(dtype=float)
        unplaced = summary.loc[summary[numeric_key].isna(), "cell"].tolist()
        span = float(np.ptp(x)) if len(x) > 1 else 1.0
        jitter = _NUMERIC_JITTER * (span or 1.0)
    else:
        placed = summary
        x = np.arange(len(summary), dtype=float)
        unplaced = []
        jitter = _CATEGORY_JITTER
    mean = placed["mean"].to_numpy(dtype=float) * scale
    low = placed["ci_low"].to_numpy(dtype=float) * scale
    high = placed["ci_high"].to_numpy(dtype=float) * scale
    # the band is each cell's own interval, not the interval of a difference (that is the
    # paired one in diff_vs_baseline): two overlapping bands can still differ significantly
    level = f"{confidence * 100:g}% CI of each cell's mean"

    if numeric_key is not None:
        has = np.isfinite(mean)
        ax.plot(x[has], mean[has], "-o", color="C0", label="mean", gid="mean")
        band = ax.fill_between(x, low, high, color="C0", alpha=0.2, label=level)
        band.set_gid("ci")
    else:
        yerr = np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0)
        bars = ax.errorbar(
            x, mean, yerr=yerr, fmt="o", color="C0", capsize=4, label=f"mean, {level}"
        )
        bars.lines[0].set_gid("mean")
        if len(x) <= _NAMED_CATEGORIES:
            set_category_ticks(ax, x, _category_labels(placed, key))
        else:  # hundreds of names cannot share one axis: numbers, in summary.csv's order
            step = math.ceil(len(x) / _NUMBERED_TICKS)
            ax.set_xticks(x[::step], [str(i + 1) for i in range(0, len(x), step)])

    positions = dict(zip(placed["cell"], x, strict=True))
    _draw_seeds(ax, trials, positions, metric=metric, scale=scale, jitter=jitter)
    _mark_baseline(ax, summary, positions, baseline=baseline, scale=scale)
    _mark_missing(ax, x[~np.isfinite(mean)])

    xlabel = key or "cell"
    if numeric_key is None and len(x) > _NAMED_CATEGORIES:
        xlabel = f"cell: row of summary.csv ({len(x)} cells)"
    if unplaced:
        xlabel += f"\n(no completed trial: {', '.join(map(str, unplaced))})"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(axis_label(metric))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")


def _draw_seeds(
    ax: Axes,
    trials: pd.DataFrame,
    positions: dict[Any, float],
    *,
    metric: str,
    scale: float,
    jitter: float,
) -> None:
    """Every COMPLETE seed as a point, jittered sideways (reproducibly) so ties stay visible."""
    done = trials[complete(trials) & trials["cell"].isin(list(positions))]
    y = pd.to_numeric(done[metric], errors="coerce").to_numpy(dtype=float) * scale
    x = done["cell"].map(positions).to_numpy(dtype=float)
    keep = np.isfinite(y)
    offsets = np.random.default_rng(0).uniform(-jitter, jitter, size=keep.sum())
    points = ax.scatter(
        x[keep] + offsets, y[keep], s=14, color="0.3", alpha=0.7, zorder=3, label="seed"
    )
    points.set_gid("seeds")


def _mark_baseline(
    ax: Axes, summary: pd.DataFrame, positions: dict[Any, float], *, baseline: str, scale: float
) -> None:
    """A dashed line at the baseline mean across the plot, and a star on the baseline itself."""
    rows = summary[summary["cell"] == baseline]
    if rows.empty or not np.isfinite(rows["mean"].iloc[0]):
        return
    mean = float(rows["mean"].iloc[0]) * scale
    ax.axhline(mean, ls="--", lw=1, color="C3", label=f"baseline ({baseline})", gid="baseline")
    if baseline in positions:
        ax.plot(positions[baseline], mean, "*", ms=14, color="C3", zorder=4)


def _mark_missing(ax: Axes, x: np.ndarray) -> None:
    """Crosses at the bottom of the axes where a cell has no completed trial."""
    if len(x) == 0:
        return
    ax.plot(
        x,
        np.full(len(x), 0.04),
        "x",
        ms=9,
        mew=2,
        color="C3",
        transform=ax.get_xaxis_transform(),  # x in data units, y in axes units
        label="no completed trial",
        gid="missing",
    )


def _is_numeric_key(summary: pd.DataFrame, key: str) -> bool:
    """Real numbers (not bools), distinct, for every cell whose key value is known.

    A cell with no trial at all has no key value; it cannot make the key categorical, while a
    run cell whose value is None (e.g. `ohem_thresh: null`) does.
    """
    known = summary[summary[key].notna() | (summary["n"] > 0)][key]
    values = known.tolist()
    if not values:
        return False
    real = all(
        isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) and not math.isnan(v)
        for v in values
    )
    return real and len(set(values)) == len(values)


def _category_labels(summary: pd.DataFrame, key: str | None) -> list[str]:
    """Key values as labels, or cell names for variants and when values repeat."""
    if key is None:
        return [str(c) for c in summary["cell"]]
    labels = [value_label(v) for v in summary[key]]
    missing_key = summary[key].isna() & (summary["n"] == 0)
    labels = [
        str(c) if m else lab for c, m, lab in zip(summary["cell"], missing_key, labels, strict=True)
    ]
    if len(set(labels)) < len(labels):
        return [str(c) for c in summary["cell"]]
    return labels
