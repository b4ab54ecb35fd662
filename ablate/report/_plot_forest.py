"""The report's main figure: each cell's paired difference from the baseline, its interval, and
the band of differences the study could not have detected (a forest plot)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ablate.formats import Units
from ablate.report._figure import FigureData, save
from ablate.report._summary import SummaryRow
from ablate.report._verdict import Kind

# the verdict's kind → colour; any other (missing, one seed, diverged, ...) is drawn grey
_COLORS = {Kind.BETTER: "#1a7f37", Kind.WORSE: "#cf222e", Kind.NO_DIFFERENCE: "#0969da"}
_GREY = "0.45"
_NAMED_VERDICTS = 20


def report_forest(data: FigureData) -> list[Path]:
    """The report's main figure, where a cell besides the baseline has a row and some row has
    a paired seed."""
    rows = list(data.summary)
    if not any(r.cell != data.baseline for r in rows) or not any(r.paired.n_pairs for r in rows):
        return []
    return plot_diff_vs_baseline(
        rows,
        metric=data.metric,
        baseline=data.baseline,
        out_dir=data.out,
        stem="diff_vs_baseline",
        against=data.against,
    )


def plot_diff_vs_baseline(
    summary: Sequence[SummaryRow],
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
    cells = [row for row in summary if row.cell != baseline]
    # two lines of small text per row (cell, verdict); beyond _NAMED_VERDICTS rows one (the
    # colour gives the verdict)
    height = 2.2 + (0.5 if len(cells) <= _NAMED_VERDICTS else 0.22) * max(1, len(cells))
    labels = [*(row.cell for row in cells), *(row.verdict.short for row in cells)]
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
    summary: Sequence[SummaryRow],
    *,
    metric: str,
    baseline: str,
    confidence: float = 0.95,
    against: str | None = None,
) -> None:
    """Draw onto `ax`; artists carry gids ("diff", "ci", "mde", "zero") for the tests."""
    cells = [row for row in summary if row.cell != baseline]
    if not cells:
        raise ValueError("summary has no cell besides the baseline: nothing to compare")
    units = Units.of(metric)
    y = np.arange(len(cells))[::-1].astype(float)  # first cell on top
    diff = np.array([row.paired.diff for row in cells], dtype=float) * units.scale
    low = np.array([row.paired.diff_ci_low for row in cells], dtype=float) * units.scale
    high = np.array([row.paired.diff_ci_high for row in cells], dtype=float) * units.scale
    mde = np.array([row.paired.mde for row in cells], dtype=float) * units.scale
    colors = [_COLORS.get(row.verdict.kind, _GREY) for row in cells]

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
        [f"{row.cell}\n{row.verdict.short}" if named else row.cell for row in cells],
        fontsize="small",
    )
    ax.set_ylim(-0.7, len(cells) - 0.3)
    name = metric.split("/")[-1]
    ax.set_xlabel(f"{name} − {against or f'baseline ({baseline})'}, {units.name}")
    ax.grid(axis="x", alpha=0.3)
    level = f"{confidence * 100:g}%"
    handles = [
        Patch(color="0.3", label=f"paired {level} t-interval of the mean difference"),
        Patch(color="0.85", label="± MDE: undetectable at 80% power (Holm-corrected α)"),
    ]
    if not named:  # the verdicts are not written beside the cells: their colours say them
        handles += [Patch(color=c, label=f"verdict: {k.value}") for k, c in _COLORS.items()]
        handles.append(Patch(color=_GREY, label="verdict: other"))
    ax.figure.legend(handles=handles, fontsize="small", loc="outside lower center", frameon=False)
    ax.set_title(f"Paired difference from {against or 'the baseline'}", fontsize="medium")
