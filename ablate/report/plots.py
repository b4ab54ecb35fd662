"""Comparison plots for a study: the paired differences from the baseline (the main figure),
the metric against a swept key, training curves, two-key heatmaps, per-class differences,
gradient flow and auxiliary-weight schedules; and `ablate diagnose`'s stage gradients.

Figures are built on a bare `matplotlib.figure.Figure` with the object API and never enter
pyplot's figure registry, so plotting needs no GUI backend, leaves no global state behind and
cannot leak open figures across a long report run. Each public function writes a PNG (150 dpi)
and an SVG with the same stem and returns both paths. Metrics in [0, 1] (IoU, accuracy) are
drawn ×100 with a "(%)" axis label, the unit papers report them in.

`REPORT_FIGURES` are the figures every report draws, in the order report.md shows them: each
takes the study's `FigureData` and returns the files it wrote, none where the study has
nothing for it to show. A new kind of plot is a module beside these and a line here.
"""

from collections.abc import Callable
from pathlib import Path

from ablate.report._figure import DPI, FigureData
from ablate.report._plot_classes import plot_per_class_diff, report_per_class_diff
from ablate.report._plot_forest import plot_diff_vs_baseline, report_forest
from ablate.report._plot_gradients import (
    WANG_THRESHOLD,
    plot_gradient_flow,
    report_gradient_flow,
)
from ablate.report._plot_heatmap import STAR_ALPHA, plot_heatmap, report_heatmap
from ablate.report._plot_metric import plot_metric_vs_key, report_metric_vs_key
from ablate.report._plot_stages import plot_stage_gradients
from ablate.report._plot_training import (
    plot_aux_weight,
    plot_training_curves,
    report_aux_weight,
    report_training_curves,
)

REPORT_FIGURES: tuple[Callable[[FigureData], list[Path]], ...] = (
    report_forest,
    report_heatmap,
    report_metric_vs_key,
    report_training_curves,
    report_per_class_diff,
    report_aux_weight,
    report_gradient_flow,
)

__all__ = [
    "DPI",
    "REPORT_FIGURES",
    "STAR_ALPHA",
    "WANG_THRESHOLD",
    "FigureData",
    "plot_aux_weight",
    "plot_diff_vs_baseline",
    "plot_gradient_flow",
    "plot_heatmap",
    "plot_metric_vs_key",
    "plot_per_class_diff",
    "plot_stage_gradients",
    "plot_training_curves",
]
