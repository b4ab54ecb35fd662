"""Cells × classes: the per-class IoU difference from the baseline, in points, where a small mIoU
change can hide a large gain on thin or rare classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ablate.report._figure import FigureData, require, save, show_grid, text_color
from ablate.report._plot_heatmap import STAR_ALPHA

_ANNOTATED_CLASSES = 10  # per-class heatmaps print values up to this many classes, else stars only
_ROOMY_ROWS = 40  # beyond this many cells, rows are narrower
_ANNOTATED_SQUARES = 400  # ... and up to this many squares (beyond, the colours carry the values)


def report_per_class_diff(data: FigureData) -> list[Path]:
    """Where a class was compared: the cells × classes grid of IoU differences."""
    if not len(data.per_class) or not data.per_class["diff"].notna().any():
        return []
    return plot_per_class_diff(data.per_class, out_dir=data.out, stem="per_class_diff")


def plot_per_class_diff(per_class: pd.DataFrame, *, out_dir: Path | str, stem: str) -> list[Path]:
    """Cells × classes: the per-class IoU difference from the baseline in points (×100).

    `per_class` is the long table `per_class_diff` returns. A diverging colormap is centred at
    0; a star marks a difference with p_holm < 0.05 (paired t-test, Holm-corrected over the
    classes of the cell; without p_holm: a CI excluding 0), grey a class with no paired seeds
    or one no trial learned ("n/l": IoU 0 everywhere, so its 0 difference means nothing).
    Values are printed in the squares up to 10 classes and 400 squares; the figure widens with
    the number of classes.
    """
    return save(_per_class_figure(per_class), out_dir, stem)


def _per_class_figure(per_class: pd.DataFrame) -> Figure:
    require(per_class, ["cell", "class", "diff", "ci_low", "ci_high"], "per-class table")
    cells = [str(c) for c in pd.unique(per_class["cell"])]
    classes = pd.unique(per_class["class"])
    annotate = _annotated(len(cells), len(classes))
    # Room for the cell names (~0.08 in a character), the colour bar, then fixed-width columns.
    names = 0.08 * max(len(c) for c in cells)
    width = 1.8 + names + (0.62 if annotate else 0.36) * len(classes)
    row = 0.32 if len(cells) <= _ROOMY_ROWS else 0.2  # the names' font: small, then x-small
    fig = Figure(figsize=(max(4.8, width), 1.9 + row * len(cells)), layout="constrained")
    ax = fig.subplots()
    _draw_per_class_diff(ax, per_class)
    return fig


def _annotated(cells: int, classes: int) -> bool:
    return classes <= _ANNOTATED_CLASSES and cells * classes <= _ANNOTATED_SQUARES


def _draw_per_class_diff(ax: Axes, per_class: pd.DataFrame) -> np.ndarray:
    """Draw the cells × classes grid and return it (IoU points; NaN where not measured)."""
    require(per_class, ["cell", "class", "diff", "ci_low", "ci_high"], "per-class table")
    cells = list(pd.unique(per_class["cell"]))
    classes = list(pd.unique(per_class["class"]))
    grid = np.full((len(cells), len(classes)), np.nan)
    significant = np.zeros(grid.shape, dtype=bool)
    unlearned = np.zeros(grid.shape, dtype=bool)
    filled = np.zeros(grid.shape, dtype=bool)
    for row in per_class.to_dict("records"):
        i, j = cells.index(row["cell"]), classes.index(row["class"])
        if filled[i, j]:
            raise ValueError(f"cell {row['cell']!r} has two rows for class {row['class']!r}")
        filled[i, j] = True
        if row.get("never_learned"):
            unlearned[i, j] = True
            continue
        grid[i, j] = float(row["diff"]) * 100.0
        if "p_holm" in row:
            significant[i, j] = bool(row["p_holm"] < STAR_ALPHA)  # NaN: False
        else:
            significant[i, j] = bool(row["ci_low"] > 0 or row["ci_high"] < 0)
    image, norm = show_grid(ax, grid, diverging=True)  # symmetric: white is exactly 0
    annotate = _annotated(len(cells), len(classes))
    for (i, j), shown in np.ndenumerate(grid):
        star = "*" if significant[i, j] else ""
        note = f"{shown:+.1f}{star}" if annotate and np.isfinite(shown) else star
        if unlearned[i, j]:
            note = "n/l"
        if note:
            color = text_color(float(norm(shown)), diverging=True)
            ax.text(j, i, note, ha="center", va="center", fontsize="small", color=color)
    # Class names ("traffic light") are wider than a column: always slanted.
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, [str(c) for c in classes], rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(
        np.arange(len(cells)),
        [str(c) for c in cells],
        fontsize="medium" if len(cells) <= _ROOMY_ROWS else "x-small",
    )
    ax.set_xlabel("class")
    ax.set_ylabel("cell")
    colorbar = ax.figure.colorbar(image, ax=ax)
    colorbar.set_label("IoU − baseline (points)")
    ax.set_title(
        f"* p_holm < {STAR_ALPHA:g}, Holm-corrected over classes\n"
        "grey: no paired seeds; n/l: never learned",
        fontsize="small",
        loc="right",
    )
    return grid
