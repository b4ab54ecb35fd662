"""Which metrics are fractions in [0, 1], shown ×100 as points in sentences, tables and plots."""

from __future__ import annotations


def is_fraction_metric(metric: str) -> bool:
    """Whether a metric lives in [0, 1] (IoU, accuracy) and is best read in points (×100)."""
    name = metric.lower()
    return "iou" in name or "acc" in name


def metric_scale(metric: str) -> float:
    """The factor a metric's values are shown at: 100 for fraction metrics, else 1."""
    return 100.0 if is_fraction_metric(metric) else 1.0
