"""Class-balanced cross-entropy by median-frequency balancing.

Eigen & Fergus, "Predicting Depth, Surface Normals and Semantic Labels with a Common Multi-Scale
Convolutional Architecture", ICCV 2015 (§4.3; also SegNet's class balancing): weight each pixel's
cross-entropy by w_c = median_freq / freq(c) of its true class c. A control for OHEM and
Lovász-Softmax: another way to stop the frequent classes from dominating the mean.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["median_frequency_weights", "weighted_cross_entropy"]


def median_frequency_weights(
    labels: Iterable[Tensor], num_classes: int, ignore_index: int = 255
) -> Tensor:
    """w_c = median_c(f_c) / f_c over the label maps in `labels` (each (B, H, W) or (H, W)).

    f_c follows Eigen & Fergus: the pixels of class c divided by the total (non-ignored) pixels
    of the images where c is present — not by every pixel of the split, so a small object that
    appears in few images is not weighted as if it were rare everywhere. Ignored pixels count
    nowhere. The median is over the classes present (the mean of the two middle values for an
    even count); a class with no pixel at all has no frequency, is left out of the median and
    gets weight 0. Returns float32 (C,) on the labels' device; all zeros when no pixel is valid.
    """
    class_pixels = torch.zeros(num_classes, dtype=torch.float64)  # (C,)
    image_pixels = torch.zeros(num_classes, dtype=torch.float64)  # (C,) pixels of images with c
    device = torch.device("cpu")
    for batch in labels:
        device = batch.device
        flat = batch.reshape(-1, batch.shape[-2] * batch.shape[-1])  # (B, H·W)
        valid = flat != ignore_index
        if bool(((flat < 0) | (flat >= num_classes))[valid].any()):
            raise ValueError(f"labels must be in [0, {num_classes}) or equal {ignore_index}")
        index = torch.arange(flat.shape[0], device=flat.device)[:, None] * num_classes + flat
        counts = torch.bincount(index[valid], minlength=flat.shape[0] * num_classes)
        counts = counts.reshape(flat.shape[0], num_classes).double().cpu()  # (B, C)
        class_pixels += counts.sum(0)
        image_pixels += ((counts > 0) * counts.sum(1, keepdim=True)).sum(0)
    present = class_pixels > 0  # (C,)
    weights = torch.zeros(num_classes, dtype=torch.float64)
    if bool(present.any()):
        freq = class_pixels[present] / image_pixels[present]
        weights[present] = torch.quantile(freq, 0.5) / freq
    return weights.float().to(device)


def weighted_cross_entropy(
    logits: Tensor, labels: Tensor, weight: Tensor, ignore_index: int = 255
) -> Tensor:
    """Σ_i w_{y_i} · CE_i / Σ_i w_{y_i} over the non-ignored pixels: PyTorch's weighted mean
    (``F.cross_entropy(weight=…)``), except that it is a finite 0 with zero gradient where
    PyTorch gives NaN (every pixel ignored, or only classes of weight 0)."""
    total = F.cross_entropy(
        logits.float(), labels, weight=weight.float(), ignore_index=ignore_index, reduction="sum"
    )
    valid = labels != ignore_index  # (B, H, W)
    norm = (weight.float()[labels.masked_fill(~valid, 0)] * valid).sum()
    return total / torch.where(norm > 0, norm, torch.ones_like(norm))
