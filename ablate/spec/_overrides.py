"""Dotted keys inside `base`: checking them, their types, and applying `--set` overrides and a
cell's overrides to a recipe."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import (
    Any,
)

import yaml
from pydantic import (
    BaseModel,
)

from ablate.errors import SpecError, did_you_mean
from ablate.spec._recipe import ModelSpec, Recipe
from ablate.spec._yaml import _Refused, load_yaml, shown


def format_value(value: Any) -> str:
    """A compact, stable text form of a swept value, used in cell names."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix (at least two parts) telling each key apart from the others."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for n in range(min(2, len(parts)), len(parts) + 1):
            candidate = ".".join(parts[-n:])
            if sum(k.endswith(candidate) for k in keys) == 1:
                break
        short[key] = candidate
    return short


# --------------------------------------------------------------------------- overrides


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `tree[a][b][c] = value` for `dotted = "a.b.c"`, creating mappings on the way."""
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`"base.train.epochs=1"` -> `("base.train.epochs", 1)`; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z0-9_/\-]+(\.[A-Za-z0-9_/\-]+)*", key):
        raise SpecError(
            f"--set {shown(text)}: expected KEY=VALUE with a dotted key, e.g. base.train.epochs=1"
        )
    try:
        value = load_yaml(raw, key.split(".")) if raw.strip() else None
    except _Refused as exc:
        raise SpecError(f"--set {shown(text)}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"--set {shown(text)}: the value is not valid YAML ({exc})") from None
    return key, value


def apply_overrides(recipe: Recipe, overrides: Mapping[str, Any]) -> Recipe:
    """The recipe with dotted overrides (paths inside `base`) applied, validated again."""
    tree = recipe.model_dump(mode="python")
    for key, value in overrides.items():
        set_path(tree, key, value)
    return Recipe.model_validate(tree)


def _valid_path(dotted: str) -> bool:
    """Whether a sweep key names a leaf of the recipe (anything below `model.args` is free)."""
    model: Any = Recipe
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return False
        field = model.model_fields.get(part)
        if field is None:
            return False
        if model is ModelSpec and part == "args":
            return i < len(parts) - 1
        model = field.annotation
    return not (isinstance(model, type) and issubclass(model, BaseModel))


def _leaf_paths(model: type[BaseModel] = Recipe, prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            paths += _leaf_paths(ann, f"{prefix}{name}.")
        else:
            paths.append(f"{prefix}{name}")
    return paths


def check_key(file: Path, where: str, key: str) -> None:
    if not _valid_path(key):
        raise SpecError(
            f"{file}: {where}.{key}: not a key of the recipe{did_you_mean(key, _leaf_paths())}; "
            "sweep keys are dotted paths inside 'base', e.g. loss.aux.weight"
        )


def leaf_annotation(dotted: str) -> Any:
    """The type annotation of a recipe leaf; None below `model.args` (free keys)."""
    model: Any = Recipe
    for part in dotted.split("."):
        if model is ModelSpec and part == "args":
            return None
        model = model.model_fields[part].annotation
    return model
