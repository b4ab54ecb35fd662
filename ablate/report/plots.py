"""Comparison plots for a study: the paired differences from the baseline (the main figure),
the metric against a swept key, training curves, two-key heatmaps, per-class differences,
gradient flow and auxiliary-weight schedules.

Figures are built on a bare `matplotlib.figure.Figure` with the object API and never enter
pyplot's figure registry, so plotting needs no GUI backend, leaves no global state behind and
cannot leak open figures across a long report run. Each public function writes a PNG (150 dpi)
and an SVG with the same stem and returns both paths. Metrics in [0, 1] (IoU, accuracy) are
drawn ×100 with a "(%)" axis label, the unit papers report them in.
"""

# The underscored names (figure builders and drawers) are re-exported for the tests, which draw
# onto their own axes and inspect the artists.
from ablate.report._figure import DPI
from ablate.report._plot_classes import _draw_per_class_diff as _draw_per_class_diff
from ablate.report._plot_classes import _per_class_figure as _per_class_figure
from ablate.report._plot_classes import plot_per_class_diff
from ablate.report._plot_forest import _draw_diff_vs_baseline as _draw_diff_vs_baseline
from ablate.report._plot_forest import plot_diff_vs_baseline
from ablate.report._plot_gradients import WANG_THRESHOLD, plot_gradient_flow
from ablate.report._plot_gradients import _gradient_flow_figure as _gradient_flow_figure
from ablate.report._plot_heatmap import STAR_ALPHA, plot_heatmap
from ablate.report._plot_heatmap import _draw_heatmap as _draw_heatmap
from ablate.report._plot_metric import _draw_metric_vs_key as _draw_metric_vs_key
from ablate.report._plot_metric import plot_metric_vs_key
from ablate.report._plot_training import _aux_weight_figure as _aux_weight_figure
from ablate.report._plot_training import _draw_training_curve as _draw_training_curve
from ablate.report._plot_training import plot_aux_weight, plot_training_curves

__all__ = [
    "DPI",
    "STAR_ALPHA",
    "WANG_THRESHOLD",
    "plot_aux_weight",
    "plot_diff_vs_baseline",
    "plot_gradient_flow",
    "plot_heatmap",
    "plot_metric_vs_key",
    "plot_per_class_diff",
    "plot_training_curves",
]
