"""The training objective: named loss terms, weighted and summed in exactly one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.losses.aux import aux_weight_at, cross_entropy, head_loss
from ablate.losses.center import CenterLoss
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
    (its class centers) that must be saved with the model."""

    def __init__(
        self, spec: LossSpec, num_classes: int, embed_dim: int | None, ignore_index: int = 255
    ) -> None:
        super().__init__()
        self.spec = spec
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.ohem = (
            OhemCrossEntropy(spec.ce.ohem_thresh, spec.ce.min_kept, ignore_index)
            if spec.ce.ohem_thresh is not None
            else None
        )
        self.center = (
            CenterLoss(num_classes, embed_dim, spec.center.alpha)
            if spec.center.weight > 0 and embed_dim is not None
            else None
        )

    def aux_weight(self, progress: float) -> float:
        aux = self.spec.aux
        return aux_weight_at(aux.schedule, aux.weight, progress, until=aux.until, gamma=aux.gamma)

    def forward(self, outputs: Mapping[str, object], labels: Tensor, progress: float) -> LossOutput:
        """`outputs` as a model returns them; labels (B, H, W); progress = t/T in [0, 1]."""
        spec, ignore = self.spec, self.ignore_index
        out = outputs["out"]
        assert isinstance(out, Tensor)
        logits = F.interpolate(out, labels.shape[-2:], mode="bilinear", align_corners=False)
        logits = logits.float()  # (B, C, H, W); losses in float32 under autocast too

        terms: dict[str, Tensor] = {}
        weights: dict[str, float] = {}
        terms["ce"] = (
            self.ohem(logits, labels) if self.ohem else cross_entropy(logits, labels, ignore)
        )
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
            weights["center"] = spec.center.weight

        total = sum(
            (weights[k] * terms[k] for k in terms), start=torch.zeros((), device=labels.device)
        )
        return LossOutput(total, terms, weights)

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
