"""Segmentation metrics from a confusion matrix accumulated on the device."""

from __future__ import annotations

import torch
from torch import Tensor


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255
) -> Tensor:
    """Counts (C, C), rows = target class, columns = predicted class; ignored pixels skipped."""
    valid = target != ignore_index
    index = target[valid] * num_classes + pred[valid]
    counts = torch.bincount(index.flatten(), minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes)


def iou_per_class(cm: Tensor) -> Tensor:
    """TP / (TP + FP + FN) per class; NaN for a class absent from both target and prediction."""
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(cm: Tensor) -> float:
    """Mean of the per-class IoU over the classes present in target or prediction."""
    return float(torch.nanmean(iou_per_class(cm)))


def pixel_accuracy(cm: Tensor) -> float:
    """Share of valid pixels predicted correctly (NaN when there is none)."""
    total = cm.sum()
    return float(cm.diagonal().sum().double() / total) if total > 0 else float("nan")
