"""What every report figure shares: what a report draws from (`FigureData`), the check on its
table, axis units and labels, category ticks, a grid drawn as an image with readable text on
it, and writing it as PNG and SVG."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.mathtext import MathTextParser
from matplotlib.text import Text

from ablate.names import is_fraction_metric
from ablate.report._files import write_bytes

if TYPE_CHECKING:
    from ablate.report._summary import Summary

DPI = 150
PAGE_HEIGHT_IN = 24.0  # taller figures are written as PNG only
_MAX_FLAT_LABEL = 8  # longer category labels are rotated so neighbours cannot overlap


@dataclass(frozen=True)
class FigureData:
    """What a report's common figures are drawn from: the compared cells' trials and summary
    rows (training curves and gradients: the cells the console shows), the per-class
    differences and the auxiliary weight's schedule, and where the figures go."""

    out: Path  # the report's plots folder
    metric: str
    baseline: str
    against: str | None  # what the cells are compared with, in words, when not the baseline
    factors: Sequence[str]  # two crossed keys: a heatmap
    axis: str | None  # the one key the cells lie along
    trials: pd.DataFrame  # the compared cells' trials (an `outcome` column among them)
    complete: pd.DataFrame  # those that ended COMPLETE
    summary: Summary  # the compared cells' rows
    history: pd.DataFrame  # per-epoch metrics of the COMPLETE trials
    gradients: pd.DataFrame  # gradient-flow samples of the COMPLETE trials
    per_class: pd.DataFrame  # per-class IoU differences (`per_class_diff`)
    aux: pd.DataFrame  # α_t against progress, where a schedule moves it


def require(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """A table to plot must have these columns and at least one row."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(table.columns)}")
    if not len(table):
        raise ValueError(f"{what} is empty: nothing to plot")


def text_color(shade: float, *, diverging: bool) -> str:
    """White on the dark ends of the colormap, black elsewhere (and on grey NaN cells)."""
    if math.isnan(shade):
        return "black"
    dark = abs(shade - 0.5) > 0.3 if diverging else shade < 0.35
    return "white" if dark else "black"


def show_grid(ax: Axes, grid: np.ndarray, *, diverging: bool) -> tuple[AxesImage, Normalize]:
    """Draw a grid as an image, NaN cells grey; a diverging grid is centred at 0 (RdBu, white is
    exactly 0), any other spans its finite values (viridis). Returns the image and its norm."""
    finite = grid[np.isfinite(grid)]
    if diverging:
        vmax = float(np.max(np.abs(finite))) if finite.size and np.any(finite) else 1.0
        norm = Normalize(-vmax, vmax)
    else:
        norm = Normalize(*(finite.min(), finite.max()) if finite.size else (0.0, 1.0))
    cmap = colormaps["RdBu" if diverging else "viridis"].with_extremes(bad="0.88")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    return image, norm


def value_label(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "None"
    return str(value)


def set_category_ticks(ax: Axes, positions: np.ndarray, labels: Sequence[str]) -> None:
    """Tick labels at positions; rotated when long or crowded so neighbours cannot overlap."""
    crowded = len(labels) > 6 or max((len(s) for s in labels), default=0) > _MAX_FLAT_LABEL
    if crowded:
        ax.set_xticks(positions, labels, rotation=30, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(positions, labels)


def axis_label(metric: str) -> str:
    return f"{metric} (%)" if is_fraction_metric(metric) else metric


def save(fig: Figure, out_dir: Path | str, stem: str) -> list[Path]:
    """Write `stem`.png (150 dpi) and, for a figure no taller than a page, `stem`.svg into
    out_dir, and release the figure's artists. A taller one (a row per cell of a study of
    hundreds) is read on screen, not printed, and drawing it again as SVG cost seconds. Each
    file replaces an earlier one whole or not at all (`write_bytes`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _plain_where_not_math(fig)
    paths = [out / f"{stem}.png"]
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI)
    write_bytes(paths[0], png.getvalue())
    if fig.get_figheight() <= PAGE_HEIGHT_IN:
        paths.append(out / f"{stem}.svg")
        svg = io.BytesIO()
        # text stays text (searchable, and smaller); no timestamp and a fixed salt for the
        # element ids (random by default): re-runs give identical files
        with rc_context({"svg.fonttype": "none", "svg.hashsalt": "ablate"}):
            fig.savefig(svg, format="svg", metadata={"Date": None})
        write_bytes(paths[1], svg.getvalue())
    fig.clear()
    return paths


def _plain_where_not_math(fig: Figure) -> None:
    """Text of the figure that holds "$" but is no valid mathtext (a cell named
    "$\\frac{a$") is drawn as it is written: matplotlib would otherwise fail to draw it."""
    parser = MathTextParser("path")
    for text in fig.findobj(Text):
        written = text.get_text()
        if "$" not in written:
            continue
        try:
            parser.parse(written)
        except ValueError:
            text.set_parse_math(False)
