"""Gradient flow: each layer's mean |gradient| over training, one panel per cell, against the
threshold under which Wang et al. (2015) consider a layer's learning stalled."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ablate.names import VANISHING_GRADIENT
from ablate.report._figure import FigureData, require, save

# Wang et al. (2015) add a companion head where the layers' mean |gradient| falls below this.
WANG_THRESHOLD = VANISHING_GRADIENT
_PANEL_COLUMNS = 3  # gradient-flow panels per row (two rows hold the ~6 cells of a study)


def report_gradient_flow(data: FigureData) -> list[Path]:
    """Where trials sampled their gradients: one panel per cell."""
    if not len(data.gradients):
        return []
    return plot_gradient_flow(data.gradients, out_dir=data.out, stem="gradient_flow")


def plot_gradient_flow(grad: pd.DataFrame, *, out_dir: Path | str, stem: str) -> list[Path]:
    """One panel per cell: each layer's mean |gradient| (mean over seeds) over training, log y.

    `grad` is long: columns `cell`, `seed`, `progress` (0-1), `layer`, `value`. Panels wrap three
    to a row and share both axes, so cells compare at a glance; a dashed line marks the 1e-7
    under which Wang et al. (2015) consider a layer's learning stalled. Layers keep one colour
    across panels, in order of first appearance (input to output, as the probe lists them). A
    mean of exactly 0 cannot be drawn on the log axis and leaves a gap.
    """
    return save(_gradient_flow_figure(grad), out_dir, stem)


def _gradient_flow_figure(grad: pd.DataFrame) -> Figure:
    require(grad, ["cell", "seed", "progress", "layer", "value"], "gradient table")
    cells = list(pd.unique(grad["cell"]))
    layers = list(pd.unique(grad["layer"]))
    ncols = max(1, min(_PANEL_COLUMNS, len(cells)))
    nrows = max(1, math.ceil(len(cells) / ncols))
    fig = Figure(figsize=(3.3 * ncols + 0.4, 2.5 * nrows + 0.9), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    axes = list(grid.ravel())
    palette = _layer_colors(layers)
    for index, (ax, cell) in enumerate(zip(axes, cells, strict=False)):
        _draw_gradient_flow(ax, grad[grad["cell"] == cell], colors=palette)
        ax.set_title(textwrap.fill(str(cell), 34, break_long_words=True), fontsize="medium")
        if index % ncols == 0:
            ax.set_ylabel(r"mean $|\partial L / \partial w|$ of layer")
        if index + ncols >= len(cells):  # lowest panel of its column: it carries the x axis
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("training progress (fraction of steps)")
    for ax in axes[len(cells) :]:
        ax.set_axis_off()
    # From the palette, not from one panel: a layer missing from the first cell keeps its entry.
    handles = [Line2D([], [], color=color, label=str(layer)) for layer, color in palette.items()]
    handles += [line for line in axes[0].lines if line.get_gid() == "threshold"]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 5),
        title="layer (mean over seeds)",
        fontsize="small",
    )
    return fig


def _draw_gradient_flow(ax: Axes, grad: pd.DataFrame, *, colors: dict[Any, str]) -> None:
    """One line per layer (gid = layer name): the mean over seeds at each progress value."""
    value = pd.to_numeric(grad["value"], errors="coerce")
    means = value.groupby([grad["layer"], grad["progress"]], sort=False).mean()
    for layer, color in colors.items():
        if layer not in means.index.get_level_values(0):
            continue
        curve = means.loc[layer].sort_index().dropna()
        x = curve.index.to_numpy(dtype=float)
        ax.plot(x, curve.to_numpy(dtype=float), color=color, label=str(layer), gid=str(layer))
    ax.axhline(
        WANG_THRESHOLD,
        ls="--",
        lw=1,
        color="0.3",
        label=r"Wang et al. threshold ($10^{-7}$)",
        gid="threshold",
    )
    ax.set_yscale("log")
    ax.set_xlim(0.0, 1.0)
    ax.grid(alpha=0.3, which="major")


def _layer_colors(layers: Sequence[Any]) -> dict[Any, str]:
    """Distinct colours up to ten layers; beyond that a viridis ramp from input to output."""
    if len(layers) <= 10:
        return {layer: f"C{i}" for i, layer in enumerate(layers)}
    ramp = colormaps["viridis"](np.linspace(0.0, 0.92, len(layers)))
    return {layer: to_hex(c) for layer, c in zip(layers, ramp, strict=True)}
