"""Companion-loss weights over training, and the loss of one intermediate head.

Deep supervision (Lee et al. 2015, "Deeply-Supervised Nets") adds a companion loss at hidden
layers with a weight α_t that decays over training; the paper's experiments in fact switch the
companion terms off after a fixed number of epochs (`step`), while the linear decay
α_t = α·(1 − t/T) is the form most often cited. PSPNet (Zhao et al. 2017) keeps a constant 0.4.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ablate.losses.pooling import cpp_pool, nearest_pool
from ablate.names import AUX_TARGETS, SCHEDULES


def aux_weight_at(
    schedule: str, weight: float, progress: float, until: float = 0.5, gamma: float = 0.1
) -> float:
    """The companion weight α_t at `progress` = t/T in [0, 1].

    constant: α;  linear: α(1 − t/T);  step: α while t/T < `until`, then 0;
    cosine: α·½(1 + cos πt/T);  exp: α·γ^(t/T), so the weight ends at γ·α.
    """
    t = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return weight
    if schedule == "linear":
        return weight * (1.0 - t)
    if schedule == "step":
        return weight if t < until else 0.0
    if schedule == "cosine":
        return weight * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "exp":
        return weight * gamma**t
    raise ValueError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")


def cross_entropy(logits: Tensor, labels: Tensor, ignore_index: int = 255) -> Tensor:
    """Mean cross-entropy over the non-ignored pixels; 0 (with a zero gradient) when all are
    ignored, where `F.cross_entropy` would return NaN."""
    total = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index, reduction="sum")
    n_valid = (labels != ignore_index).sum().clamp(min=1)
    return total / n_valid


def cpp_kl(logits: Tensor, labels: Tensor, ignore_index: int = 255) -> Tensor:
    """KL(q‖p) of the CPP-pooled label distribution q (SeeThroughNet, 2022) and the head's
    softmax p, summed over classes and averaged over the cells that hold a valid pixel."""
    q = cpp_pool(
        labels, (logits.shape[-2], logits.shape[-1]), logits.shape[1], ignore_index
    )  # (B, C, h, w)
    log_p = F.log_softmax(logits.float(), dim=1)
    q_log_q = torch.where(q > 0, q * torch.log(q.clamp(min=1e-12)), torch.zeros_like(q))
    kl = (q_log_q - q * log_p).sum(dim=1)  # (B, h, w)
    has_valid = q.sum(dim=1) > 0
    return (kl * has_valid).sum() / has_valid.sum().clamp(min=1)


def head_loss(logits: Tensor, labels: Tensor, target: str, ignore_index: int = 255) -> Tensor:
    """The loss of one (possibly coarse) head against full-resolution labels.

    full: upsample the logits bilinearly to the labels, cross-entropy (PSPNet);
    nearest: downsample the labels by nearest neighbour to the head, cross-entropy;
    cpp: downsample the labels to class shares (CPP pooling) and take the KL divergence.
    """
    size = (logits.shape[-2], logits.shape[-1])
    if target == "full" or size == (labels.shape[-2], labels.shape[-1]):
        if size != (labels.shape[-2], labels.shape[-1]):
            logits = F.interpolate(logits, labels.shape[-2:], mode="bilinear", align_corners=False)
        return cross_entropy(logits, labels, ignore_index)
    if target == "nearest":
        return cross_entropy(logits, nearest_pool(labels, size), ignore_index)
    if target == "cpp":
        return cpp_kl(logits, labels, ignore_index)
    raise ValueError(f"unknown aux target {target!r}; allowed: {', '.join(AUX_TARGETS)}")
