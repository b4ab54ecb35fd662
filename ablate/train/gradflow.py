"""Gradient-flow diagnostics: the mean |gradient| of each layer's weights during training.

Wang et al. (2015, "Training deeper convolutional networks with deep supervision") place a
companion head where the mean gradient of the layers below falls under ~1e-7: the point where
early layers stop learning. Logging it per layer makes that visible for every cell of a study.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class GradientProbe:
    """Groups a model's weight tensors by their top-level module ("stage1", "ppm", ...) and
    measures the mean absolute gradient of each group in one fused pass."""

    def __init__(self, model: nn.Module) -> None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.dim() > 1]
        self.layers: list[str] = list(dict.fromkeys(n.split(".")[0] for n, _ in named))
        self._params = [p for _, p in named]
        group = torch.tensor([self.layers.index(n.split(".")[0]) for n, _ in named])
        device = self._params[0].device if self._params else torch.device("cpu")
        self._group = group.to(device)
        counts = torch.tensor([p.numel() for p in self._params], dtype=torch.float64)
        self._numel = (
            torch.zeros(len(self.layers), dtype=torch.float64)
            .index_add_(0, group, counts)
            .to(device)
        )

    def measure(self, scale: float = 1.0) -> dict[str, float]:
        """{layer: mean |grad|} from the gradients now held by the parameters. `scale` undoes a
        GradScaler's loss scale."""
        grads: Sequence[Tensor] = [p.grad for p in self._params if p.grad is not None]
        if len(grads) != len(self._params):  # a head unused this step has no gradient
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._params]
        l1 = torch.stack(torch._foreach_norm(list(grads), 1)).double()  # (n_params,)
        sums = torch.zeros_like(self._numel).index_add_(0, self._group, l1)
        means = (sums / self._numel / scale).tolist()  # one device sync
        return dict(zip(self.layers, means, strict=True))
