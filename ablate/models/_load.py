"""The name → builder table, and building a model (built-in or the user's) with checks."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ablate.errors import ModelContractError
from ablate.models.dsnet import dsnet
from ablate.models.pspnet import pspnet_tiny
from ablate.models.unet import unet_ds

# name -> builder(num_classes, **args); a new built-in model is one line here
MODELS: dict[str, Callable[..., nn.Module]] = {
    "pspnet_tiny": pspnet_tiny,
    "dsnet": dsnet,
    "unet_ds": unet_ds,
}


def _import(path: str) -> Callable[..., nn.Module]:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelContractError(f"model {path!r}: cannot import {module_name!r} ({exc})") from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise ModelContractError(f"model {path!r}: {module_name} has no callable {attr!r}")
    return builder


def build_model(name: str, num_classes: int, args: Mapping[str, Any] | None = None) -> nn.Module:
    """Build a registered model, or import `pkg.module:function` and call it the same way."""
    builder = MODELS[name] if name in MODELS else _import(name)
    try:
        model = builder(num_classes, **dict(args or {}))
    except TypeError as exc:
        raise ModelContractError(f"model {name!r}: bad args {dict(args or {})} ({exc})") from None
    if not isinstance(model, nn.Module):
        raise ModelContractError(f"model {name!r}: the builder returned {type(model).__name__}")
    return model


def check_outputs(outputs: object, num_classes: int, name: str = "model") -> None:
    """Raise ModelContractError naming what is missing or malformed in a model's outputs."""
    if not isinstance(outputs, Mapping):
        raise ModelContractError(
            f"{name} must return a dict with 'out', 'aux' and 'embed', got {type(outputs).__name__}"
        )
    missing = [k for k in ("out", "aux", "embed") if k not in outputs]
    if missing:
        raise ModelContractError(f"{name} output lacks {', '.join(map(repr, missing))}")
    out, aux = outputs["out"], outputs["aux"]
    if not isinstance(aux, Mapping):
        raise ModelContractError(f"{name}: 'aux' must be a dict of head name -> logits")
    heads: dict[str, Any] = {"out": out, **{f"aux.{k}": v for k, v in aux.items()}}
    for key, logits in heads.items():
        if not (
            isinstance(logits, Tensor) and logits.dim() == 4 and logits.shape[1] == num_classes
        ):
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ModelContractError(
                f"{name}: {key!r} must be logits (B, {num_classes}, h, w), got {shape}"
            )
    embed = outputs["embed"]
    if not (isinstance(embed, Tensor) and embed.dim() == 4):
        raise ModelContractError(f"{name}: 'embed' must be a feature map (B, D, h, w)")
    if not torch.is_floating_point(out):
        raise ModelContractError(f"{name}: 'out' must be floating point")
