"""The training objective: named loss terms, weighted and summed in exactly one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.losses.aux import aux_weight_at, cross_entropy, head_loss
from ablate.losses.balance import weighted_cross_entropy
from ablate.losses.center import CenterLoss, center_weight_at
from ablate.losses.lovasz import lovasz_softmax
from ablate.losses.ohem import OhemCrossEntropy
from ablate.losses.pooling import nearest_pool
from ablate.spec import LossSpec


@dataclass(frozen=True)
class LossOutput:
    """`total` drives the backward pass; `terms` are the unweighted named terms and `weights`
    the weight each one carried at this step (total = Σ weights[k] · terms[k])."""

    total: Tensor
    terms: Mapping[str, Tensor]
    weights: Mapping[str, float]


class Objective(nn.Module):
    """Builds the total loss from a LossSpec. A module because the center loss owns buffers
    (its class centers) and the balanced cross-entropy its class weights, which are saved with
    the model.

    `class_weight` (C,): the cross-entropy's class weights, required by and only taken with
    `loss.ce.class_weight: balanced` (the caller computes them from the training labels with
    `median_frequency_weights`)."""

    class_weight: Tensor | None

    def __init__(
        self,
        spec: LossSpec,
        num_classes: int,
        embed_dim: int | None,
        ignore_index: int = 255,
        class_weight: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        if (spec.ce.class_weight == "balanced") != (class_weight is not None):
            raise ValueError(
                "class_weight is needed with loss.ce.class_weight = 'balanced', and only then"
            )
        if class_weight is not None and class_weight.shape != (num_classes,):
            raise ValueError(
                f"class_weight must be [{num_classes}], got {tuple(class_weight.shape)}"
            )
        self.register_buffer(
            "class_weight", None if class_weight is None else class_weight.float().clone()
        )
        self.ohem = (
            OhemCrossEntropy(spec.ce.ohem_thresh, spec.ce.min_kept, ignore_index)
            if spec.ce.ohem_thresh is not None
            else None
        )
        c = spec.center
        self.center = (
            CenterLoss(
                num_classes, embed_dim, c.alpha, ignore_index, normalize=c.normalize, init=c.init
            )
            if c.weight > 0 and embed_dim is not None
            else None
        )

    def aux_weight(self, progress: float) -> float:
        aux = self.spec.aux
        return aux_weight_at(aux.schedule, aux.weight, progress, until=aux.until, gamma=aux.gamma)

    def center_weight(self, progress: float) -> float:
        """λ_t: `loss.center.weight` after its linear warm-up over `loss.center.warmup` of t/T."""
        center = self.spec.center
        return center_weight_at(center.weight, center.warmup, progress)

    def forward(self, outputs: Mapping[str, object], labels: Tensor, progress: float) -> LossOutput:
        """`outputs` as a model returns them; labels (B, H, W); progress = t/T in [0, 1]."""
        spec, ignore = self.spec, self.ignore_index
        out = outputs["out"]
        assert isinstance(out, Tensor)
        logits = F.interpolate(out, labels.shape[-2:], mode="bilinear", align_corners=False)
        logits = logits.float()  # (B, C, H, W); losses in float32 under autocast too

        terms: dict[str, Tensor] = {}
        weights: dict[str, float] = {}
        terms["ce"] = self._ce_term(logits, labels)
        weights["ce"] = 1.0

        heads = outputs.get("aux") or {}
        assert isinstance(heads, Mapping)
        if spec.aux.weight > 0 and heads:
            terms["aux"] = sum(
                (head_loss(h, labels, spec.aux.target, ignore) for h in heads.values()),
                start=torch.zeros((), device=labels.device),
            )
            weights["aux"] = self.aux_weight(progress)

        if spec.lovasz > 0:
            terms["lovasz"] = lovasz_softmax(logits.softmax(dim=1), labels, ignore_index=ignore)
            weights["lovasz"] = spec.lovasz

        if self.center is not None:
            embed = outputs["embed"]
            assert isinstance(embed, Tensor)
            terms["center"] = self._center_term(embed, labels)
            weights["center"] = self.center_weight(progress)

        total = sum(
            (weights[k] * terms[k] for k in terms), start=torch.zeros((), device=labels.device)
        )
        return LossOutput(total, terms, weights)

    def _ce_term(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Plain or OHEM cross-entropy; with class weights, the weighted mean over the pixels
        (OHEM: over the kept pixels, chosen by probability alone)."""
        if self.ohem is not None:
            return self.ohem(logits, labels, self.class_weight)
        if self.class_weight is not None:
            return weighted_cross_entropy(logits, labels, self.class_weight, self.ignore_index)
        return cross_entropy(logits, labels, self.ignore_index)

    def _center_term(self, embed: Tensor, labels: Tensor) -> Tensor:
        """Center loss (Wen et al. 2016) on at most `max_pixels` embedding pixels, with labels
        nearest-pooled to the embedding's size and ignored pixels dropped."""
        assert self.center is not None
        small = nearest_pool(labels, (embed.shape[-2], embed.shape[-1])).flatten()  # (B·h·w,)
        feats = embed.float().permute(0, 2, 3, 1).reshape(small.numel(), -1)  # (B·h·w, D)
        keep = (small != self.ignore_index).nonzero().squeeze(1)
        if keep.numel() > self.spec.center.max_pixels:
            pick = torch.randperm(keep.numel(), device=keep.device)[: self.spec.center.max_pixels]
            keep = keep[pick]
        return self.center(feats[keep], small[keep])
