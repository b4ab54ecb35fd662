"""Online hard example mining (OHEM) on the pixel-wise cross-entropy.

Shrivastava et al., "Training Region-based Object Detectors with Online Hard Example Mining",
CVPR 2016, adapted to pixels as in HRNet / MMSegmentation: back-propagate only through the pixels
the network finds hard.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.losses._threads import one_thread

__all__ = ["OhemCrossEntropy"]


class OhemCrossEntropy(nn.Module):
    """Cross-entropy averaged over the hard pixels only.

    With p_i the softmax probability of the true class at valid pixel i, the kept set is

        K = {i : p_i < thresh}  ∪  {i : p_i <= p_(k)},   k = min(min_kept, n_valid),

    where p_(k) is the k-th smallest p over the batch's valid pixels (``min_kept`` counts per
    batch). The loss is (1/|K|) Σ_{i∈K} −log p_i. The selection itself carries no gradient.

    Ties: the second set is a threshold on the k-th smallest value, so every pixel whose p equals
    p_(k) is kept and |K| may exceed k when probabilities tie. No pixel is ever dropped to break a
    tie, which makes the result independent of pixel order.

    When nothing is kept (every pixel ignored, or ``min_kept=0`` and no p below ``thresh``) the loss
    is a finite 0 that stays connected to the logits with zero gradient.

    With class weights w (``weight``, e.g. median-frequency balancing, ``ablate.losses.balance``)
    the selection is unchanged (by p alone) and the weights apply to the kept pixels' mean:
    Σ_{i∈K} w_{y_i}·(−log p_i) / Σ_{i∈K} w_{y_i}, a finite 0 when that sum is 0.

    Cost: one cross-entropy pass plus counting; a k-th-value selection (a radix select, no sort)
    only runs when fewer than k pixels fall below ``thresh``.
    On CPU the forward pass runs on one intra-op thread (see ``ablate.losses._threads``).
    """

    def __init__(self, thresh: float = 0.7, min_kept: int = 100_000, ignore_index: int = 255):
        super().__init__()
        if min_kept < 0:
            raise ValueError(f"min_kept must be >= 0, got {min_kept}")
        self.thresh = float(thresh)
        self.min_kept = int(min_kept)
        self.ignore_index = int(ignore_index)

    def extra_repr(self) -> str:
        return f"thresh={self.thresh}, min_kept={self.min_kept}, ignore_index={self.ignore_index}"

    def forward(self, logits: Tensor, labels: Tensor, weight: Tensor | None = None) -> Tensor:
        with one_thread(logits.device):  # the backward pass keeps torch's thread count
            return self._loss(logits, labels, weight)

    def _loss(self, logits: Tensor, labels: Tensor, weight: Tensor | None) -> Tensor:
        # at least float32 for the log-softmax: in bf16 p would only have ~3 significant digits
        logits32 = logits.to(torch.promote_types(logits.dtype, torch.float32))  # (B, C, H, W)
        valid = labels != self.ignore_index  # (B, H, W)
        target = labels.masked_fill(~valid, 0)[:, None]  # (B, 1, H, W)
        # log_softmax + gather is ~20% faster than cross_entropy(reduction="none") on CPU
        nll = -F.log_softmax(logits32, 1).gather(1, target)[:, 0]  # (B, H, W); junk where ignored
        with torch.no_grad():
            prob = torch.exp(-nll).masked_fill_(~valid, float("inf"))  # (B, H, W); inf: never kept
            kept = prob < self.thresh  # (B, H, W)
            k = min(self.min_kept, int(valid.sum()))
            if k > 0 and int(kept.sum()) < k:
                # the k smallest p include every p < thresh, so one threshold covers both sets;
                # ignored pixels hold +inf and never reach the k-th place because k <= n_valid
                kept = prob <= _kth_smallest(prob.reshape(-1), k)
            n_kept = int(kept.sum())
        if n_kept == 0:
            return logits.sum() * 0.0
        if weight is None:
            return torch.where(kept, nll, 0.0).sum() / n_kept
        w = torch.where(kept, weight.to(nll.dtype)[target[:, 0]], 0.0)  # (B, H, W)
        norm = w.sum()
        return (w * nll).sum() / torch.where(norm > 0, norm, torch.ones_like(norm))


def _kth_smallest(values: Tensor, k: int) -> Tensor:
    """k-th smallest (1-based) of non-negative float32 values, exactly, without sorting them.

    Non-negative floats order like their bit patterns, so a histogram of the top 16 bits finds the
    bucket that holds the k-th value; ``torch.kthvalue`` then only runs on that bucket's members.
    On 262k values this takes ~0.5 ms against ~2.3 ms for ``torch.kthvalue`` on all of them.
    """
    if values.dtype != torch.float32:
        return torch.kthvalue(values, k).values
    bucket_of = values.view(torch.int32) >> 16  # (n,) monotone in the value
    counts = torch.bincount(bucket_of)  # (n_buckets,)
    cumulative = torch.cumsum(counts, 0)  # (n_buckets,)
    bucket = int(torch.searchsorted(cumulative, k))  # first bucket reaching k values
    below = int(cumulative[bucket] - counts[bucket])  # values in lower buckets
    members = values[bucket_of == bucket]  # (m,)
    return torch.kthvalue(members, k - below).values
