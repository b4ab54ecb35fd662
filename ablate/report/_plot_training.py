"""Per-epoch training curves and the auxiliary-loss weight schedule, one line per cell."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ablate.names import metric_scale
from ablate.report._figure import FigureData, axis_label, require, save

NAMED_CURVES = 12  # up to this many cells each curve has a band and a legend entry


def report_training_curves(data: FigureData) -> list[Path]:
    """Where trials kept a history: the CE term (not the total: totals with different aux
    weights are not comparable), the metric and the other validation metrics, per epoch."""
    if not len(data.history):
        return []
    wanted = ["train/loss/ce", data.metric, "val/loss", "val/boundary_iou", "val/small_iou"]
    metrics = [m for m in dict.fromkeys(wanted) if m in data.history.columns]
    return plot_training_curves(
        data.history, metrics=metrics, out_dir=data.out, stem="training_curves"
    )


def report_aux_weight(data: FigureData) -> list[Path]:
    """Where a cell's schedule moves the auxiliary weight: α_t over training."""
    if not len(data.aux):
        return []
    return plot_aux_weight(data.aux, out_dir=data.out, stem="aux_weight")


def plot_training_curves(
    history: pd.DataFrame, *, metrics: Sequence[str], out_dir: Path | str, stem: str
) -> list[Path]:
    """One panel per metric, one line per cell: the mean over seeds per epoch, band = ±1 std.

    `history` is long: columns `cell`, `seed`, `epoch` and one column per metric.
    """
    missing = [c for c in ("cell", "seed", "epoch", *metrics) if c not in history.columns]
    if missing:
        raise ValueError(f"history lacks column(s) {missing}")
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(3.6 * ncols, 2.8 * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    cells = list(pd.unique(history["cell"]))
    for ax, metric in zip(axes, metrics, strict=False):
        _draw_training_curve(ax, history, metric=metric, cells=cells)
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    if len(cells) <= NAMED_CURVES:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=min(len(cells), 4),
            title="cell (mean over seeds, band ±1 std)",
            fontsize="small",
        )
    else:  # a legend of this many entries would leave no room for the curves
        fig.suptitle(
            f"{len(cells)} cells, one line each (mean over seeds); trials.csv names them",
            fontsize="small",
        )
    return save(fig, out_dir, stem)


def plot_aux_weight(series: pd.DataFrame, *, out_dir: Path | str, stem: str) -> list[Path]:
    """The auxiliary-loss weight α_t against training progress, one line per cell.

    `series` is long: columns `cell`, `progress` (0-1), `weight`; repeated (cell, progress)
    rows, e.g. one per seed, are averaged. Line styles cycle as well as colours so that cells
    sharing a schedule stay visible on top of each other.
    """
    return save(_aux_weight_figure(series), out_dir, stem)


def _draw_training_curve(ax: Axes, history: pd.DataFrame, *, metric: str, cells: list[Any]) -> None:
    """One line per cell (mean over seeds at each epoch) with a ±1 std band, gid = cell name;
    beyond NAMED_CURVES cells, thin lines without bands (hundreds of bands hide each other)."""
    scale = metric_scale(metric)
    many = len(cells) > NAMED_CURVES
    values = pd.to_numeric(history[metric], errors="coerce") * scale
    grouped = values.groupby([history["cell"], history["epoch"]]).agg(["mean", "std"])
    empty = grouped.iloc[0:0].droplevel(0)
    per_cell = {c: table.droplevel(0) for c, table in grouped.groupby(level=0, sort=False)}
    for i, cell in enumerate(cells):
        by_epoch = per_cell.get(cell, empty).dropna(subset=["mean"])
        epoch = by_epoch.index.to_numpy(dtype=float)
        mean = by_epoch["mean"].to_numpy(dtype=float)
        std = by_epoch["std"].to_numpy(dtype=float)
        color = f"C{i % 10}"
        ax.plot(epoch, mean, color=color, label=str(cell), gid=str(cell), lw=0.6 if many else 1.5)
        if not many:
            ax.fill_between(epoch, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel(axis_label(metric))
    ax.grid(alpha=0.3)


def _aux_weight_figure(series: pd.DataFrame) -> Figure:
    require(series, ["cell", "progress", "weight"], "aux-weight table")
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    cells = _draw_aux_weight(ax, series)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(len(cells), 3), fontsize="small"
    )
    return fig


def _draw_aux_weight(ax: Axes, series: pd.DataFrame) -> list[Any]:
    """One line per cell (gid = cell name), averaged over repeated progress values."""
    cells = list(pd.unique(series["cell"]))
    weight = pd.to_numeric(series["weight"], errors="coerce")
    styles = ("-", "--", ":", "-.")
    # Earlier lines are wider, so a later cell with the same schedule leaves them as an outline.
    widths = np.linspace(2.8, 1.2, len(cells)) if len(cells) > 1 else [1.6]
    for i, cell in enumerate(cells):
        rows = series["cell"] == cell
        curve = weight[rows].groupby(series.loc[rows, "progress"]).mean().dropna()
        ax.plot(
            curve.index.to_numpy(dtype=float),
            curve.to_numpy(dtype=float),
            color=f"C{i % 10}",
            ls=styles[i % len(styles)],
            lw=widths[i],
            label=str(cell),
            gid=str(cell),
        )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("training progress (fraction of steps)")
    ax.set_ylabel(r"auxiliary-loss weight $\alpha_t$")
    ax.grid(alpha=0.3)
    return cells
