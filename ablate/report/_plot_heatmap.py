"""Two-key studies: a grid of one summary column over the two keys' values, annotated, a star
where the difference from the baseline is significant after Holm's correction."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ablate.names import metric_scale
from ablate.report._figure import (
    FigureData,
    save,
    set_category_ticks,
    show_grid,
    text_color,
    value_label,
)

STAR_ALPHA = 0.05  # a heatmap cell gets a star when p_holm is below this
# Summary columns measured in the metric's unit, hence shown ×100 for fraction metrics.
_METRIC_UNIT_COLUMNS = {"mean", "std", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high"}
_METRIC_UNIT_COLUMNS |= {"boot_low", "boot_high"}


def report_heatmap(data: FigureData) -> list[Path]:
    """Two crossed keys whose trials measured the metric: the differences over the grid."""
    if len(data.factors) != 2 or not data.complete[data.metric].notna().any():
        return []
    return plot_heatmap(
        data.summary.frame(),
        row_key=data.factors[0],
        col_key=data.factors[1],
        out_dir=data.out,
        stem="diff_heatmap",
        metric=data.metric,
        baseline=data.baseline,
    )


def plot_heatmap(
    summary: pd.DataFrame,
    *,
    row_key: str,
    col_key: str,
    value: str = "diff",
    out_dir: Path | str,
    stem: str,
    metric: str | None = None,
    baseline: str | None = None,
) -> list[Path]:
    """Two-key studies: a grid of `value` (default: mean difference from baseline), annotated.

    A star marks cells with p_holm < 0.05; the `baseline` cell and cells without data are
    labelled as such. Pass `metric` so that fraction metrics are shown in points.
    """
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    _draw_heatmap(
        ax, summary, row_key=row_key, col_key=col_key, value=value, metric=metric, baseline=baseline
    )
    return save(fig, out_dir, stem)


def _draw_heatmap(
    ax: Axes,
    summary: pd.DataFrame,
    *,
    row_key: str,
    col_key: str,
    value: str,
    metric: str | None,
    baseline: str | None = None,
) -> np.ndarray:
    """Draw the grid and return the plotted matrix (rows: row_key values, cols: col_key values)."""
    scale = metric_scale(metric) if metric is not None and value in _METRIC_UNIT_COLUMNS else 1.0
    # A cell that never ran has no key values to place it by; it shows as a grey "missing" slot.
    unknown = (summary[row_key].isna() | summary[col_key].isna()) & (summary["n"] == 0)
    placed = summary[~unknown]
    row_labels = list(dict.fromkeys(value_label(v) for v in placed[row_key]))
    col_labels = list(dict.fromkeys(value_label(v) for v in placed[col_key]))
    grid = np.full((len(row_labels), len(col_labels)), np.nan)
    notes = np.full(grid.shape, "missing", dtype=object)
    filled = np.zeros(grid.shape, dtype=bool)
    for row in placed.to_dict("records"):
        i = row_labels.index(value_label(row[row_key]))
        j = col_labels.index(value_label(row[col_key]))
        if filled[i, j]:
            raise ValueError(
                f"two cells share {row_key}={row_labels[i]}, {col_key}={col_labels[j]}"
            )
        filled[i, j] = True
        grid[i, j] = float(row[value]) * scale
        notes[i, j] = "baseline" if row["cell"] == baseline else _heatmap_note(row, grid[i, j])

    diverging = value.startswith("diff") or value == "d_z"
    image, norm = show_grid(ax, grid, diverging=diverging)
    for (i, j), note in np.ndenumerate(notes):
        color = text_color(float(norm(grid[i, j])), diverging=diverging)
        ax.text(j, i, note, ha="center", va="center", fontsize="small", color=color)
    set_category_ticks(ax, np.arange(len(col_labels)), col_labels)
    ax.set_yticks(np.arange(len(row_labels)), row_labels)
    ax.set_xlabel(col_key)
    ax.set_ylabel(row_key)
    unit = " (points)" if scale == 100.0 else ""
    what = f"{value} of {metric}" if metric else value
    colorbar = ax.figure.colorbar(image, ax=ax)
    colorbar.set_label(f"{what}{unit}")
    ax.set_title(f"* p_holm < {STAR_ALPHA:g}", fontsize="small", loc="right")
    return grid


def _heatmap_note(row: dict[str, Any], shown: float) -> str:
    if not np.isfinite(shown):
        return "missing"
    star = "*" if row.get("p_holm", math.nan) < STAR_ALPHA else ""
    return f"{shown:+.2f}{star}"
