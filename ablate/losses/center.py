"""Center loss on pixel (or any) embeddings.

Wen, Zhang, Li, Qiao, "A Discriminative Feature Learning Approach for Deep Face Recognition",
ECCV 2016: pull every feature towards a running center of its class.

Two departures from the paper, both off in a plain ``CenterLoss(num_classes, feat_dim)`` and on
in a study's default recipe (``loss.center``), because on a segmentation net's unnormalised
embedding, with centers starting at zero, the term mostly shrinks every feature towards the
origin: ``normalize`` (compare unit-length features with unit-length centers) and
``init="first_batch"`` (a class's center starts at the mean of its first batch, not at zero).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CENTER_INITS", "CenterInit", "CenterLoss", "center_weight_at"]

CenterInit = Literal["zero", "first_batch"]
CENTER_INITS: tuple[CenterInit, ...] = ("zero", "first_batch")  # = loss.center.init (a test)


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

    ``normalize=True``: every x_i is replaced by x_i / ||x_i|| before all of the above, and each
    center is rescaled to unit length after every update (and after its initialisation). The
    features then live on the unit sphere and a center is a direction, so the value is
    ½||x̂ − ĉ||² = 1 − cos(x, c) per row, in [0, 2] whatever the embedding's scale, and every
    class pulls its features with the same strength. Left unnormalised, a center would be the
    mean of unit vectors, whose length (< 1, near 0 for a class whose features point every way)
    would scale the pull: weakest for the class that is least compact. A center of length 0 (only
    at ``init="zero"`` before its class is seen) stays 0; its rows then carry no gradient. The
    update keeps the paper's rule followed by the projection to the sphere, whose fixed point is
    the normalised mean direction of the class.

    ``init="first_batch"``: a per-class ``initialized`` buffer (saved with the centers) starts
    False; the first time a class has rows in a training-mode call, its center is set to the mean
    of those rows (of x̂ with ``normalize``, then rescaled to unit length) *before* the value is
    computed. On that call the class's rows thus contribute their distance to their own batch mean
    (their spread; the gradient pulls them towards it), and the paper's update leaves that center
    where it is (Δc_j = 0 at the batch mean). Classes already initialised follow the contract
    above; a class not yet seen keeps a zero center. ``init="zero"`` (the default, the paper's)
    marks every class initialised from the start. In eval mode nothing is initialised.

    Rows labelled ``ignore_index`` are dropped (N counts the remaining rows); with no row left the
    loss is a finite 0 with zero gradient. Computed in float32 (also under autocast), or in float64
    when the features are float64.
    """

    centers: Tensor
    initialized: Tensor

    def __init__(
        self,
        num_classes: int,
        feat_dim: int,
        alpha: float = 0.5,
        ignore_index: int = 255,
        *,
        normalize: bool = False,
        init: CenterInit = "zero",
    ):
        super().__init__()
        if init not in CENTER_INITS:
            raise ValueError(f"unknown center init {init!r}; allowed: {', '.join(CENTER_INITS)}")
        self.num_classes = int(num_classes)
        self.feat_dim = int(feat_dim)
        self.alpha = float(alpha)
        self.ignore_index = int(ignore_index)
        self.normalize = bool(normalize)
        self.init = init
        self.register_buffer("centers", torch.zeros(self.num_classes, self.feat_dim))
        self.register_buffer(
            "initialized", torch.full((self.num_classes,), init == "zero", dtype=torch.bool)
        )

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, feat_dim={self.feat_dim}, alpha={self.alpha}, "
            f"ignore_index={self.ignore_index}, normalize={self.normalize}, init={self.init!r}"
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
        if self.normalize:
            x = F.normalize(x, dim=1)  # (N, D) unit rows; the gradient flows through the norm
        if self.training and not bool(self.initialized.all()):
            self._initialise_centers(x.detach().to(self.centers.dtype), labels)
        target = self.centers.index_select(0, labels).to(dtype)  # (N, D) a copy, not a view
        # one fused pass for Σ ||x − c||², no (N, D) difference tensor kept for backward
        loss = F.mse_loss(x, target, reduction="sum") / (2 * n)
        if self.training and self.alpha != 0.0:
            self._update_centers(x.detach().to(self.centers.dtype), labels)
        return loss

    @torch.no_grad()
    def _class_sums(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(rows per class (C,), sum of their features (C, D))."""
        count = torch.bincount(labels, minlength=self.num_classes).to(x.dtype)  # (C,)
        return count, torch.zeros_like(self.centers).index_add_(0, labels, x)  # (C,), (C, D)

    @torch.no_grad()
    def _initialise_centers(self, x: Tensor, labels: Tensor) -> None:
        """c_j ← mean of class j's rows, for every class seen now for the first time."""
        count, feature_sum = self._class_sums(x, labels)
        new = (count > 0) & ~self.initialized  # (C,)
        mean = feature_sum / count.clamp(min=1)[:, None]  # (C, D)
        if self.normalize:
            mean = F.normalize(mean, dim=1)
        self.centers.copy_(torch.where(new[:, None], mean, self.centers))
        self.initialized.logical_or_(new)

    @torch.no_grad()
    def _update_centers(self, x: Tensor, labels: Tensor) -> None:
        """c_j ← c_j − α · (n_j c_j − Σ_{y_i=j} x_i) / (1 + n_j), for every class at once; then
        back to unit length with ``normalize`` (a class absent from the batch is unchanged)."""
        count, feature_sum = self._class_sums(x, labels)
        delta = (count[:, None] * self.centers - feature_sum) / (1.0 + count[:, None])  # (C, D)
        self.centers.sub_(self.alpha * delta)
        if self.normalize:
            seen = (count > 0)[:, None]  # (C, 1)
            self.centers.copy_(torch.where(seen, F.normalize(self.centers, dim=1), self.centers))


def center_weight_at(weight: float, warmup: float, progress: float) -> float:
    """λ_t at `progress` = t/T in [0, 1]: a linear ramp from 0 to `weight` over the first
    `warmup` of training, then `weight`; `warmup` = 0 is the constant λ."""
    t = min(max(progress, 0.0), 1.0)
    if warmup <= 0.0 or t >= warmup:
        return weight
    return weight * t / warmup
