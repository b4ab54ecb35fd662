"""What `ablate run` checks before it trains, and `ablate validate` with it, so that a study
validate calls ok is not refused later. It reads a loaded study (`ablate.study_file`) and builds
its data layouts and models (`ablate.data`, `ablate.models`): a step above both, which imports
torch, so the commands import it where they need it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ablate.data import load_disk_splits, load_disk_test
from ablate.errors import DatasetError, ModelArgsError, ModelContractError, one_line
from ablate.models import build_model, check_args, check_outputs
from ablate.spec import Recipe
from ablate.study_file import Study


def preflight(study: Study) -> None:
    """Everything `run` checks before it trains, and `ablate validate` with it, so that a study
    validate calls ok is not refused later: each disk dataset's layout (file names only), each
    distinct model's arguments against its builder's signature, and one forward pass of a
    (1, 3, H, W) batch of zeros checked against the output contract. A failure raises one
    UserError naming the study file and the key: `base.…`, or the cell whose overrides changed
    it. A builder or forward pass that raises is reported by its exception's first line."""
    file = study.path
    overrides = {cell.name: cell.overrides for cell in study.cells}
    seen: set[str] = set()
    for cell, recipe in study.recipes.items():
        changed = overrides.get(cell, {})
        d = recipe.data
        data_key = d.model_dump_json(
            include={"name", "root", "image_size", "train_size", "val_size"}
        )
        if d.root is not None and data_key not in seen:
            seen.add(data_key)
            at = f"{file}: {_where(cell, changed, 'data.')}data.root = {d.root!r}"
            try:
                load_disk_splits(d.name, Path(d.root), d.image_size, d.train_size, d.val_size)
                if d.test_split is not None:
                    load_disk_test(d.name, d.root, d.test_split, d.image_size, d.test_size or None)
            except DatasetError as exc:
                raise DatasetError(f"{at}: {exc}") from None
        model_key = recipe.model.model_dump_json() + str(d.num_classes) + str(d.image_size)
        if model_key not in seen:
            seen.add(model_key)
            _preflight_model(recipe, f"{file}: {_where(cell, changed, 'model.', 'data.')}")
    _preflight_search_args(study)


def _preflight_search_args(study: Study) -> None:
    """A search samples model arguments only once a trial is claimed: check their names now."""
    search = study.spec.sweep.search
    sampled = (
        [k.removeprefix("model.args.") for k in search.space if k.startswith("model.args.")]
        if search
        else []
    )
    if not sampled:
        return
    model = study.spec.base.model
    try:
        check_args(model.name, [*model.args, *sampled])
    except ModelArgsError as exc:
        at = f"{study.path}: sweep.search.space.model.args.{exc.arg}"
        raise ModelArgsError(f"{at}: {exc}", exc.arg) from None


def _where(cell: str, changed: Mapping[str, Any], *prefixes: str) -> str:
    """Where a recipe value came from, as the start of a key path: `base.`, or the cell whose
    overrides changed it."""
    return f"cell {cell!r}: " if any(k.startswith(prefixes) for k in changed) else "base."


def _preflight_model(recipe: Recipe, at: str) -> None:
    """Build the recipe's model and check its outputs on a batch of zeros; `at` starts each
    message (the file and where the model's keys came from)."""
    name, num_classes = recipe.model.name, recipe.data.num_classes
    try:
        model = build_model(name, num_classes, recipe.model.args)
    except ModelArgsError as exc:
        raise ModelArgsError(f"{at}model.args.{exc.arg}: {exc}", exc.arg) from None
    except ModelContractError as exc:
        raise ModelContractError(f"{at}model: {exc}") from None
    height, width = recipe.data.image_size
    try:
        with torch.no_grad():
            outputs = model.eval()(torch.zeros(1, 3, height, width))
    except Exception as exc:
        raise ModelContractError(
            f"{at}model: model {name!r} failed its check on a (1, 3, {height}, {width}) batch "
            f"of zeros: {one_line(exc)}"
        ) from None
    try:
        check_outputs(outputs, num_classes, name=f"model {name!r}")
    except ModelContractError as exc:
        raise ModelContractError(f"{at}model: {exc}") from None
