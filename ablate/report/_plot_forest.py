"""The report's main figure: each cell's paired difference from the baseline, its interval, and
the band of differences the study could not have detected (a forest plot)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ablate.names import metric_info
from ablate.report._figure import require, save

# verdict → colour; anything else (missing, one seed, diverged) is drawn grey
_COLORS = {"better": "#1a7f37", "worse": "#cf222e", "no detectable": "#0969da"}
_GREY = "0.45"
_NAMED_VERDICTS = 20


def plot_diff_vs_baseline(
    summary: pd.DataFrame,
    *,
    metric: str,
    baseline: str,
    out_dir: Path | str,
    stem: str,
    confidence: float = 0.95,
    against: str | None = None,
) -> list[Path]:
    """One row per compared cell: the mean paired difference from the baseline (a dot), its
    paired Student-t interval (a bar) and ±MDE around zero (a shaded band: true differences
    inside it the study would usually have missed). Colours follow the verdict. `against`
    names what the differences are from where it is not the baseline ("the row above")."""
    cells = summary[summary["cell"] != baseline]
    # two lines of small text per row (cell, verdict); beyond _NAMED_VERDICTS rows one (the
    # colour gives the verdict)
    height = 2.2 + (0.5 if len(cells) <= _NAMED_VERDICTS else 0.22) * max(1, len(cells))
    labels = [*cells["cell"].astype(str), *(_short(str(v)) for v in cells["verdict"])]
    names = 0.075 * max((len(t) for t in labels), default=4)
    fig = Figure(figsize=(max(7.2, 4.4 + names), height), layout="constrained")
    _draw_diff_vs_baseline(
        fig.subplots(),
        summary,
        metric=metric,
        baseline=baseline,
        confidence=confidence,
        against=against,
    )
    return save(fig, out_dir, stem)


def _draw_diff_vs_baseline(
    ax: Axes,
    summary: pd.DataFrame,
    *,
    metric: str,
    baseline: str,
    confidence: float = 0.95,
    against: str | None = None,
) -> None:
    """Draw onto `ax`; artists carry gids ("diff", "ci", "mde", "zero") for the tests."""
    require(summary, ["cell", "diff", "diff_ci_low", "diff_ci_high", "verdict"], "summary")
    cells = summary[summary["cell"] != baseline].reset_index(drop=True)
    if not len(cells):
        raise ValueError("summary has no cell besides the baseline: nothing to compare")
    info = metric_info(metric)
    y = np.arange(len(cells))[::-1].astype(float)  # first cell on top
    diff = cells["diff"].to_numpy(dtype=float) * info.scale
    low = cells["diff_ci_low"].to_numpy(dtype=float) * info.scale
    high = cells["diff_ci_high"].to_numpy(dtype=float) * info.scale
    mde = cells.get("mde", pd.Series(np.nan, index=cells.index)).to_numpy(dtype=float)
    mde = mde * info.scale
    colors = [_color(str(v)) for v in cells["verdict"]]

    for yi, m in zip(y, mde, strict=True):
        if math.isfinite(m) and m > 0:
            ax.fill_betweenx([yi - 0.4, yi + 0.4], -m, m, color="0.85", lw=0, gid="mde")
    ax.axvline(0.0, color="0.2", lw=1, gid="zero")
    has_ci = np.isfinite(low) & np.isfinite(high)
    for yi, d, lo, hi, c, ok in zip(y, diff, low, high, colors, has_ci, strict=True):
        if ok:
            ax.plot([lo, hi], [yi, yi], color=c, lw=2, solid_capstyle="butt", gid="ci")
        if math.isfinite(d):
            ax.plot(d, yi, "o", color=c, ms=7, zorder=3, gid="diff")
        else:
            ax.text(0.0, yi, "  no paired result", va="center", color=_GREY, fontsize="small")

    reach = np.concatenate([np.abs(diff), np.abs(low), np.abs(high), mde])
    reach = reach[np.isfinite(reach)]
    span = float(reach.max()) if reach.size and reach.max() > 0 else 1.0
    ax.set_xlim(-1.1 * span, 1.1 * span)  # zero in the middle: direction reads at a glance
    named = len(cells) <= _NAMED_VERDICTS
    ax.set_yticks(
        y,
        [
            f"{c}\n{_short(v)}" if named else str(c)
            for c, v in zip(cells["cell"], cells["verdict"], strict=True)
        ],
        fontsize="small",
    )
    ax.set_ylim(-0.7, len(cells) - 0.3)
    unit = "points" if info.scale != 1.0 else (info.unit or "units")
    name = metric.split("/")[-1]
    ax.set_xlabel(f"{name} − {against or f'baseline ({baseline})'}, {unit}")
    ax.grid(axis="x", alpha=0.3)
    level = f"{confidence * 100:g}%"
    handles = [
        Patch(color="0.3", label=f"paired {level} t-interval of the mean difference"),
        Patch(color="0.85", label="± MDE: undetectable at 80% power (Holm-corrected α)"),
    ]
    if not named:  # the verdicts are not written beside the cells: their colours say them
        handles += [
            Patch(color=c, label=f"verdict: {v}{' difference' if v == 'no detectable' else ''}")
            for v, c in [*_COLORS.items(), ("other", _GREY)]
        ]
    ax.figure.legend(handles=handles, fontsize="small", loc="outside lower center", frameon=False)
    ax.set_title(f"Paired difference from {against or 'the baseline'}", fontsize="medium")


def _color(verdict: str) -> str:
    for start, color in _COLORS.items():
        if verdict.startswith(start):
            return color
    return _GREY


def _short(verdict: str) -> str:
    """The verdict cut to its first clause, for a tick label."""
    head = verdict.split(" (")[0].split(";")[0]
    return head if len(head) <= 48 else head[:45] + "…"
