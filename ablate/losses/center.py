"""Center loss on pixel (or any) embeddings.

Wen, Zhang, Li, Qiao, "A Discriminative Feature Learning Approach for Deep Face Recognition",
ECCV 2016: pull every feature towards a running center of its class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CenterLoss"]


class CenterLoss(nn.Module):
    """L_C = 1/(2N) · Σ_i ||x_i − c_{y_i}||²  (Wen et al. 2016, Eq. 2, averaged over the batch).

    The value uses the centers as they were before the call, so its gradient with respect to x_i is
    (x_i − c_{y_i}) / N (Eq. 3 divided by N). The centers are not learned by back-propagation: they
    are a buffer (saved in ``state_dict``, moved by ``.to()``, never seen by the optimizer),
    initialised to zeros, and in training mode every call then applies the paper's update
    (the Δc_j of Eq. 3 and the step of Algorithm 1):

        Δc_j = Σ_{i: y_i = j} (c_j − x_i) / (1 + n_j),   c_j ← c_j − α · Δc_j,

    with n_j the number of rows of class j in the batch and detached features. A class absent from
    the batch keeps its center. In eval mode the centers do not move.

    Rows labelled ``ignore_index`` are dropped (N counts the remaining rows); with no row left the
    loss is a finite 0 with zero gradient. Computed in float32 (also under autocast), or in float64
    when the features are float64.
    """

    centers: Tensor

    def __init__(
        self, num_classes: int, feat_dim: int, alpha: float = 0.5, ignore_index: int = 255
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.feat_dim = int(feat_dim)
        self.alpha = float(alpha)
        self.ignore_index = int(ignore_index)
        self.register_buffer("centers", torch.zeros(self.num_classes, self.feat_dim))

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, feat_dim={self.feat_dim}, alpha={self.alpha}, "
            f"ignore_index={self.ignore_index}"
        )

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        if features.dim() != 2 or features.shape[1] != self.feat_dim:
            raise ValueError(f"features must be [N, {self.feat_dim}], got {tuple(features.shape)}")
        if labels.shape != features.shape[:1]:
            raise ValueError(f"labels must be [N], got {tuple(labels.shape)}")
        dtype = torch.promote_types(features.dtype, self.centers.dtype)  # float32 under autocast
        x = features.to(dtype)  # (N, D)
        keep = labels != self.ignore_index  # (N,)
        if not bool(keep.all()):
            x, labels = x[keep], labels[keep]  # (N', D), (N',)
        n = labels.numel()
        if n == 0:
            return features.sum() * 0.0
        if int(labels.min()) < 0 or int(labels.max()) >= self.num_classes:
            raise ValueError(
                f"labels must be in [0, {self.num_classes}) or equal ignore_index="
                f"{self.ignore_index}"
            )
        target = self.centers.index_select(0, labels).to(dtype)  # (N, D) a copy, not a view
        # one fused pass for Σ ||x − c||², no (N, D) difference tensor kept for backward
        loss = F.mse_loss(x, target, reduction="sum") / (2 * n)
        if self.training and self.alpha != 0.0:
            self._update_centers(x.detach().to(self.centers.dtype), labels)
        return loss

    @torch.no_grad()
    def _update_centers(self, x: Tensor, labels: Tensor) -> None:
        """c_j ← c_j − α · (n_j c_j − Σ_{y_i=j} x_i) / (1 + n_j), for every class at once."""
        count = torch.bincount(labels, minlength=self.num_classes).to(x.dtype)  # (C,)
        feature_sum = torch.zeros_like(self.centers).index_add_(0, labels, x)  # (C, D)
        delta = (count[:, None] * self.centers - feature_sum) / (1.0 + count[:, None])  # (C, D)
        self.centers.sub_(self.alpha * delta)
