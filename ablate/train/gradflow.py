"""Gradient-flow diagnostics: the mean |gradient| of each stage's weights during training.

Wang et al. (2015, "Training deeper convolutional networks with deep supervision") place a
companion head where the mean gradient of the layers below falls under ~1e-7: the point where
early layers stop learning. Logging it per stage makes that visible for every cell of a study.

Which weights form a group, and which groups are *stages* (the input-to-output path a companion
head can follow) — one rule, by module name and container type, so that every built-in model and
most user models are split at their stages without declaring anything:

1. A model may define `gradient_stages() -> {name: module}`, its stages from input to output:
   those are the stages, under those names. The rest of the model groups by 2–4.
2. A top-level `nn.ModuleList` is a sequence of stages, numbered from 1 after its name without
   a final "s": `dsnet.stages[0]` → `stage1`, `unet_ds.down[1]` → `down2`.
3. A top-level `nn.ModuleDict` holds heads, one group each as `<dict>.<key>`:
   `companions.stage1`, `aux_heads.stage3`.
4. A top-level child with a `layer1` child is a backbone in torchvision's ResNet layout:
   `layer<k>` → the stage `stage<k>` (the name the ResNet's features carry), everything else in
   it (`conv1`, …) → `stem`.
5. Any other top-level child is one group under its name; it is a stage when that name is
   `stem`, `stage<k>` or `layer<k>` (`pspnet_tiny`: `stem`, `stage1` … `stage4`).

Only weight tensors (dim > 1) are measured: biases and norm scales have gradients of another
scale and would blur the comparison. Groups are listed in the order their first weight is
registered, which for the stages of the built-in models is the order of the forward pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

_STAGE_NAME = re.compile(r"stem|stage\d+|layer\d+")
_RESNET_LAYER = re.compile(r"layer(\d+)")


def _claims(model: nn.Module) -> Iterator[tuple[str, str, bool]]:
    """(module path, group name, is a stage) for the modules the rule names, hook first."""
    hook = getattr(model, "gradient_stages", None)
    if callable(hook):
        path_of = {id(m): path for path, m in model.named_modules()}
        for name, module in hook().items():
            yield path_of[id(module)], name, True
    for child, module in model.named_children():
        if isinstance(module, nn.ModuleList):
            base = child.removesuffix("s")
            for k in range(len(module)):
                yield f"{child}.{k}", f"{base}{k + 1}", True
        elif isinstance(module, nn.ModuleDict):
            for key in module:
                yield f"{child}.{key}", f"{child}.{key}", False
        elif hasattr(module, "layer1"):
            yield child, "stem", True
            for sub, _ in module.named_children():
                if found := _RESNET_LAYER.fullmatch(sub):
                    yield f"{child}.{sub}", f"stage{found[1]}", True
        else:
            yield child, child, bool(_STAGE_NAME.fullmatch(child))


class GradientProbe:
    """Groups a model's weight tensors by stage and head (see the module's rule) and measures
    the mean absolute gradient of each group in one fused pass."""

    def __init__(self, model: nn.Module) -> None:
        claims = _claims_of(model)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.dim() > 1]
        groups = [_group_of(n, claims) for n, _ in named]
        self.layers: list[str] = list(dict.fromkeys(name for name, _ in groups))
        # the groups a companion head can follow, input to output
        self.stages: list[str] = list(dict.fromkeys(name for name, stage in groups if stage))
        self._params = [p for _, p in named]
        group = torch.tensor([self.layers.index(name) for name, _ in groups], dtype=torch.long)
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


def _claims_of(model: nn.Module) -> dict[str, tuple[str, bool]]:
    """Module path -> (group name, is a stage); the model's own hook wins."""
    claims: dict[str, tuple[str, bool]] = {}
    for path, name, stage in _claims(model):
        claims.setdefault(path, (name, stage))
    return claims


def parameter_groups(model: nn.Module) -> dict[str, str]:
    """The group `GradientProbe` reports each parameter under, by parameter name."""
    claims = _claims_of(model)
    return {n: _group_of(n, claims)[0] for n, _ in model.named_parameters()}


def _group_of(param: str, claims: dict[str, tuple[str, bool]]) -> tuple[str, bool]:
    """The group of a parameter path: its longest claimed module prefix, else its top-level
    name (a parameter held by the model itself)."""
    parts = param.split(".")
    for end in range(len(parts) - 1, 0, -1):
        if (claim := claims.get(".".join(parts[:end]))) is not None:
            return claim
    return parts[0], False
