"""The name → builder table, and building a model (built-in or the user's) with checks."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ablate.errors import ModelArgsError, ModelContractError, did_you_mean, one_line
from ablate.models.deeplab import deeplabv3plus
from ablate.models.dsn import dsn
from ablate.models.dsnet import dsnet
from ablate.models.pspnet import pspnet, pspnet_tiny
from ablate.models.unet import unet_ds

# name -> builder(num_classes, **args); a new built-in model is one line here
MODELS: dict[str, Callable[..., nn.Module]] = {
    "pspnet_tiny": pspnet_tiny,
    "dsnet": dsnet,
    "unet_ds": unet_ds,
    "pspnet": pspnet,
    "deeplabv3plus": deeplabv3plus,
    "dsn": dsn,
}


def _import(path: str) -> Callable[..., nn.Module]:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a missing module, or one that raises while it is imported
        raise ModelContractError(
            f"model {path!r}: cannot import {module_name!r} ({one_line(exc)})"
        ) from None
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise ModelContractError(f"model {path!r}: {module_name} has no callable {attr!r}")
    return builder


def builder_of(name: str) -> Callable[..., nn.Module]:
    """The function that builds model `name`: a built-in, or `pkg.module:function` imported."""
    return MODELS[name] if name in MODELS else _import(name)


def check_args(name: str, names: Iterable[str]) -> None:
    """Raise ModelArgsError unless model `name`'s builder takes every argument in `names`
    (besides `num_classes`, its first) and `names` holds every argument it requires. A builder
    taking **kwargs accepts any name; one whose signature cannot be read is not checked."""
    builder = builder_of(name)
    try:
        first, *params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):  # no signature to read, or not even num_classes
        return
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    allowed = [p.name for p in params if p.kind in named]
    takes = f"its arguments: {', '.join(allowed)}" if allowed else "it takes no arguments"
    given = list(names)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        for arg in given:
            if arg not in allowed:
                hint = did_you_mean(arg, allowed)
                if arg == first.name:
                    hint = f" (its first argument, {arg}, is set from data.num_classes)"
                raise ModelArgsError(
                    f"model {name!r} takes no argument {arg!r}{hint}; {takes}", arg
                )
    for p in params:
        if p.kind in named and p.default is inspect.Parameter.empty and p.name not in given:
            raise ModelArgsError(f"model {name!r} needs argument {p.name!r}; {takes}", p.name)


def build_model(name: str, num_classes: int, args: Mapping[str, Any] | None = None) -> nn.Module:
    """Build a registered model, or import `pkg.module:function` and call it the same way.
    Arguments are checked against the builder's signature first; whatever the builder raises
    becomes one ModelContractError naming the model."""
    builder = builder_of(name)
    kwargs = dict(args or {})
    check_args(name, kwargs)
    try:
        model = builder(num_classes, **kwargs)
    except ModelContractError as exc:  # already a message for the user: missing weights, …
        raise ModelContractError(f"model {name!r}: {exc}") from None
    except Exception as exc:
        raise ModelContractError(f"model {name!r}: building it raised {one_line(exc)}") from None
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
