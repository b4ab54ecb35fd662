"""Comparison plots for a study: the metric against a swept key, training curves, two-key heatmaps,
per-class differences, gradient flow and auxiliary-weight schedules.

Figures are built on a bare `matplotlib.figure.Figure` with the object API and never enter
pyplot's figure registry, so plotting needs no GUI backend, leaves no global state behind and
cannot leak open figures across a long report run. Each public function writes a PNG (150 dpi)
and an SVG with the same stem and returns both paths. Metrics in [0, 1] (IoU, accuracy) are
drawn ×100 with a "(%)" axis label, the unit papers report them in.
"""

from __future__ import annotations

import math
import numbers
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ablate.report.stats import is_fraction_metric

DPI = 150
STAR_ALPHA = 0.05  # a heatmap cell gets a star when p_holm is below this
_MAX_FLAT_LABEL = 8  # longer category labels are rotated so neighbours cannot overlap
_CATEGORY_JITTER = 0.12  # seed points spread ± this around a category (categories are 1 apart)
_NUMERIC_JITTER = 0.015  # seed points spread ± this share of the key's range
# Summary columns measured in the metric's unit, hence shown ×100 for fraction metrics.
_METRIC_UNIT_COLUMNS = {"mean", "std", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high"}
_METRIC_UNIT_COLUMNS |= {"boot_low", "boot_high"}
# Wang et al. (2015) add a companion head where the layers' mean |gradient| falls below this.
WANG_THRESHOLD = 1e-7
_ANNOTATED_CLASSES = 10  # per-class heatmaps print values up to this many classes, else stars only
_PANEL_COLUMNS = 3  # gradient-flow panels per row (two rows hold the ~6 cells of a study)


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
    return _save(fig, out_dir, stem)


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
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(len(cells), 4),
        title="cell (mean over seeds, band ±1 std)",
        fontsize="small",
    )
    return _save(fig, out_dir, stem)


def plot_heatmap(
    summary: pd.DataFrame,
    *,
    row_key: str,
    col_key: str,
    value: str = "diff",
    out_dir: Path | str,
    stem: str,
    metric: str | None = None,
) -> list[Path]:
    """Two-key studies: a grid of `value` (default: mean difference from baseline), annotated.

    A star marks cells with p_holm < 0.05; the baseline and cells without data are labelled as
    such. Pass `metric` so that fraction metrics are shown in points.
    """
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    _draw_heatmap(ax, summary, row_key=row_key, col_key=col_key, value=value, metric=metric)
    return _save(fig, out_dir, stem)


def plot_per_class_diff(per_class: pd.DataFrame, *, out_dir: Path | str, stem: str) -> list[Path]:
    """Cells × classes: the per-class IoU difference from the baseline in points (×100).

    `per_class` is the long table `per_class_diff` returns. A diverging colormap is centred at
    0; a star marks a difference whose CI excludes 0, grey a class with no paired seeds. Values
    are printed in the cells up to 10 classes; the figure widens with the number of classes.
    """
    return _save(_per_class_figure(per_class), out_dir, stem)


def plot_gradient_flow(grad: pd.DataFrame, *, out_dir: Path | str, stem: str) -> list[Path]:
    """One panel per cell: each layer's mean |gradient| (mean over seeds) over training, log y.

    `grad` is long: columns `cell`, `seed`, `progress` (0-1), `layer`, `value`. Panels wrap three
    to a row and share both axes, so cells compare at a glance; a dashed line marks the 1e-7
    under which Wang et al. (2015) consider a layer's learning stalled. Layers keep one colour
    across panels, in order of first appearance (input to output, as the probe lists them). A
    mean of exactly 0 cannot be drawn on the log axis and leaves a gap.
    """
    return _save(_gradient_flow_figure(grad), out_dir, stem)


def plot_aux_weight(series: pd.DataFrame, *, out_dir: Path | str, stem: str) -> list[Path]:
    """The auxiliary-loss weight α_t against training progress, one line per cell.

    `series` is long: columns `cell`, `progress` (0-1), `weight`; repeated (cell, progress)
    rows, e.g. one per seed, are averaged. Line styles cycle as well as colours so that cells
    sharing a schedule stay visible on top of each other.
    """
    return _save(_aux_weight_figure(series), out_dir, stem)


def _per_class_figure(per_class: pd.DataFrame) -> Figure:
    _require(per_class, ["cell", "class", "diff", "ci_low", "ci_high"], "per-class table")
    cells = [str(c) for c in pd.unique(per_class["cell"])]
    classes = pd.unique(per_class["class"])
    annotate = len(classes) <= _ANNOTATED_CLASSES
    # Room for the cell names (~0.08 in a character), the colour bar, then fixed-width columns.
    names = 0.08 * max(len(c) for c in cells)
    width = 1.8 + names + (0.62 if annotate else 0.36) * len(classes)
    fig = Figure(figsize=(max(4.8, width), 1.9 + 0.32 * len(cells)), layout="constrained")
    ax = fig.subplots()
    _draw_per_class_diff(ax, per_class)
    return fig


def _gradient_flow_figure(grad: pd.DataFrame) -> Figure:
    _require(grad, ["cell", "seed", "progress", "layer", "value"], "gradient table")
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


def _aux_weight_figure(series: pd.DataFrame) -> Figure:
    _require(series, ["cell", "progress", "weight"], "aux-weight table")
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    cells = _draw_aux_weight(ax, series)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(len(cells), 3), fontsize="small"
    )
    return fig


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
    scale = _scale(metric)
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
    level = f"{confidence * 100:g}% CI"

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
        _set_category_ticks(ax, x, _category_labels(placed, key))

    positions = dict(zip(placed["cell"], x, strict=True))
    _draw_seeds(ax, trials, positions, metric=metric, scale=scale, jitter=jitter)
    _mark_baseline(ax, summary, positions, baseline=baseline, scale=scale)
    _mark_missing(ax, x[~np.isfinite(mean)])

    xlabel = key or "cell"
    if unplaced:
        xlabel += f"\n(no completed trial: {', '.join(map(str, unplaced))})"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_axis_label(metric))
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
    done = trials[(trials["state"] == "COMPLETE") & trials["cell"].isin(list(positions))]
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


def _draw_training_curve(ax: Axes, history: pd.DataFrame, *, metric: str, cells: list[Any]) -> None:
    """One line per cell (mean over seeds at each epoch) with a ±1 std band; gid = cell name."""
    scale = _scale(metric)
    for i, cell in enumerate(cells):
        rows = history[history["cell"] == cell]
        values = pd.to_numeric(rows[metric], errors="coerce") * scale
        by_epoch = values.groupby(rows["epoch"]).agg(["mean", "std"]).dropna(subset=["mean"])
        epoch = by_epoch.index.to_numpy(dtype=float)
        mean = by_epoch["mean"].to_numpy(dtype=float)
        std = by_epoch["std"].to_numpy(dtype=float)
        color = f"C{i % 10}"
        ax.plot(epoch, mean, color=color, label=str(cell), gid=str(cell))
        ax.fill_between(epoch, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel(_axis_label(metric))
    ax.grid(alpha=0.3)


def _draw_heatmap(
    ax: Axes,
    summary: pd.DataFrame,
    *,
    row_key: str,
    col_key: str,
    value: str,
    metric: str | None,
) -> np.ndarray:
    """Draw the grid and return the plotted matrix (rows: row_key values, cols: col_key values)."""
    scale = _scale(metric) if metric is not None and value in _METRIC_UNIT_COLUMNS else 1.0
    # A cell that never ran has no key values to place it by; it shows as a grey "missing" slot.
    unknown = (summary[row_key].isna() | summary[col_key].isna()) & (summary["n"] == 0)
    placed = summary[~unknown]
    row_labels = list(dict.fromkeys(_value_label(v) for v in placed[row_key]))
    col_labels = list(dict.fromkeys(_value_label(v) for v in placed[col_key]))
    grid = np.full((len(row_labels), len(col_labels)), np.nan)
    notes = np.full(grid.shape, "missing", dtype=object)
    filled = np.zeros(grid.shape, dtype=bool)
    for row in placed.to_dict("records"):
        i = row_labels.index(_value_label(row[row_key]))
        j = col_labels.index(_value_label(row[col_key]))
        if filled[i, j]:
            raise ValueError(
                f"two cells share {row_key}={row_labels[i]}, {col_key}={col_labels[j]}"
            )
        filled[i, j] = True
        grid[i, j] = float(row[value]) * scale
        notes[i, j] = _heatmap_note(row, grid[i, j])

    diverging = value.startswith("diff") or value == "d_z"
    finite = grid[np.isfinite(grid)]
    if diverging:
        vmax = float(np.max(np.abs(finite))) if finite.size and np.any(finite) else 1.0
        norm = Normalize(-vmax, vmax)
    else:
        norm = Normalize(*(finite.min(), finite.max()) if finite.size else (0.0, 1.0))
    cmap = colormaps["RdBu" if diverging else "viridis"].with_extremes(bad="0.88")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    for (i, j), note in np.ndenumerate(notes):
        color = _text_color(float(norm(grid[i, j])), diverging=diverging)
        ax.text(j, i, note, ha="center", va="center", fontsize="small", color=color)
    _set_category_ticks(ax, np.arange(len(col_labels)), col_labels)
    ax.set_yticks(np.arange(len(row_labels)), row_labels)
    ax.set_xlabel(col_key)
    ax.set_ylabel(row_key)
    unit = " (points)" if scale == 100.0 else ""
    what = f"{value} of {metric}" if metric else value
    colorbar = ax.figure.colorbar(image, ax=ax)
    colorbar.set_label(f"{what}{unit}")
    ax.set_title(f"* p_holm < {STAR_ALPHA:g}", fontsize="small", loc="right")
    return grid


def _draw_per_class_diff(ax: Axes, per_class: pd.DataFrame) -> np.ndarray:
    """Draw the cells × classes grid and return it (IoU points; NaN where not measured)."""
    _require(per_class, ["cell", "class", "diff", "ci_low", "ci_high"], "per-class table")
    cells = list(pd.unique(per_class["cell"]))
    classes = list(pd.unique(per_class["class"]))
    grid = np.full((len(cells), len(classes)), np.nan)
    significant = np.zeros(grid.shape, dtype=bool)
    filled = np.zeros(grid.shape, dtype=bool)
    for row in per_class.to_dict("records"):
        i, j = cells.index(row["cell"]), classes.index(row["class"])
        if filled[i, j]:
            raise ValueError(f"cell {row['cell']!r} has two rows for class {row['class']!r}")
        filled[i, j] = True
        grid[i, j] = float(row["diff"]) * 100.0
        significant[i, j] = bool(row["ci_low"] > 0 or row["ci_high"] < 0)  # NaN CI: False
    finite = grid[np.isfinite(grid)]
    vmax = float(np.max(np.abs(finite))) if finite.size and np.any(finite) else 1.0
    norm = Normalize(-vmax, vmax)  # symmetric: white is exactly 0
    cmap = colormaps["RdBu"].with_extremes(bad="0.88")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    annotate = len(classes) <= _ANNOTATED_CLASSES
    for (i, j), shown in np.ndenumerate(grid):
        star = "*" if significant[i, j] else ""
        note = f"{shown:+.1f}{star}" if annotate and np.isfinite(shown) else star
        if note:
            color = _text_color(float(norm(shown)), diverging=True)
            ax.text(j, i, note, ha="center", va="center", fontsize="small", color=color)
    # Class names ("traffic light") are wider than a column: always slanted.
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, [str(c) for c in classes], rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(np.arange(len(cells)), [str(c) for c in cells])
    ax.set_xlabel("class")
    ax.set_ylabel("cell")
    colorbar = ax.figure.colorbar(image, ax=ax)
    colorbar.set_label("IoU − baseline (points)")
    ax.set_title("* CI excludes 0; grey: no paired seeds", fontsize="small", loc="right")
    return grid


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


def _require(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """A table to plot must have these columns and at least one row."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(table.columns)}")
    if not len(table):
        raise ValueError(f"{what} is empty: nothing to plot")


def _text_color(shade: float, *, diverging: bool) -> str:
    """White on the dark ends of the colormap, black elsewhere (and on grey NaN cells)."""
    if math.isnan(shade):
        return "black"
    dark = abs(shade - 0.5) > 0.3 if diverging else shade < 0.35
    return "white" if dark else "black"


def _heatmap_note(row: dict[str, Any], shown: float) -> str:
    if row.get("verdict") == "baseline":
        return "baseline"
    if not np.isfinite(shown):
        return "missing"
    star = "*" if row.get("p_holm", math.nan) < STAR_ALPHA else ""
    return f"{shown:+.2f}{star}"


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
    labels = [_value_label(v) for v in summary[key]]
    missing_key = summary[key].isna() & (summary["n"] == 0)
    labels = [
        str(c) if m else lab for c, m, lab in zip(summary["cell"], missing_key, labels, strict=True)
    ]
    if len(set(labels)) < len(labels):
        return [str(c) for c in summary["cell"]]
    return labels


def _value_label(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "None"
    return str(value)


def _set_category_ticks(ax: Axes, positions: np.ndarray, labels: Sequence[str]) -> None:
    """Tick labels at positions; rotated when long or crowded so neighbours cannot overlap."""
    crowded = len(labels) > 6 or max((len(s) for s in labels), default=0) > _MAX_FLAT_LABEL
    if crowded:
        ax.set_xticks(positions, labels, rotation=30, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(positions, labels)


def _scale(metric: str) -> float:
    return 100.0 if is_fraction_metric(metric) else 1.0


def _axis_label(metric: str) -> str:
    return f"{metric} (%)" if is_fraction_metric(metric) else metric


def _save(fig: Figure, out_dir: Path | str, stem: str) -> list[Path]:
    """Write `stem`.png (150 dpi) and `stem`.svg into out_dir and release the figure's artists."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=DPI)
    fig.savefig(paths[1], metadata={"Date": None})  # no timestamp: re-runs give identical files
    fig.clear()
    return paths
