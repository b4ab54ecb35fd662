"""A held-out test split: scenes or files neither training nor validation sees, measured once
on the final model as test/<metric>, summarised beside (never instead of) the verdicts."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from ablate.data import load_splits, load_test_split
from ablate.errors import DatasetError
from ablate.report import summarize
from ablate.spec import Recipe
from ablate.study import Outcome
from ablate.train import fit
from tests.train.test_fit_data import MODEL, TRAIN, _folder_dataset

CPU = torch.device("cpu")


def test_generated_test_scenes_are_apart_from_training_and_validation() -> None:
    train, val = load_splits("shapes", 4, (32, 32), 8, 8, 0, CPU)
    test = load_test_split("shapes", 4, (32, 32), 8, 0, CPU)
    assert test is not None and len(test) == 8
    for other in (train, val):
        assert not any(torch.equal(t, o) for t in test.images for o in other.images)
    again = load_test_split("shapes", 4, (32, 32), 8, 0, CPU)
    assert again is not None and torch.equal(again.images, test.images)  # a function of seed
    assert load_test_split("shapes", 4, (32, 32), 0, 0, CPU) is None


def _recipe(**data: object) -> Recipe:
    return Recipe.model_validate(
        {
            "data": {"num_classes": 4, "image_size": [32, 32], "train_size": 8, "val_size": 4}
            | data,
            "model": MODEL,
            "train": TRAIN,
        }
    )


def test_fit_measures_the_test_split_once_on_the_final_model() -> None:
    result = fit(_recipe(test_size=6), seed=0)
    assert set(result.test) >= {"test/mIoU", "test/pixel_acc", "test/loss"}
    assert all(k.startswith("test/") for k in result.test)
    assert not any(k.startswith("test/") for e in result.history for k in e.metrics)
    assert fit(_recipe(), seed=0).test == {}


def test_a_folder_dataset_s_named_test_split_is_read_and_a_missing_one_refused(
    tmp_path: Path,
) -> None:
    root = _folder_dataset(tmp_path / "data")
    shutil.copytree(root / "images" / "val", root / "images" / "test")
    shutil.copytree(root / "masks" / "val", root / "masks" / "test")
    recipe = _recipe(name="folder", root=str(root), image_size=[32, 32], test_split="test")
    recipe = recipe.model_copy(update={"data": recipe.data.model_copy(update={"num_classes": 3})})
    assert 0.0 <= fit(recipe, seed=0).test["test/mIoU"] <= 1.0
    with pytest.raises(DatasetError, match="holdout"):
        load_test_split("folder", 3, (32, 32), 0, 0, CPU, root=str(root), test_split="holdout")


def test_generated_data_take_a_test_size_not_a_test_split() -> None:
    with pytest.raises(ValidationError, match="set test_size, not test_split"):
        _recipe(test_split="test")


def test_the_summary_shows_the_test_metric_beside_the_verdicts() -> None:
    rows = []
    for cell, shift in (("base", 0.0), ("trick", 0.05)):
        for seed in range(3):
            rows.append(
                {
                    "number": len(rows),
                    "outcome": Outcome.COMPLETE,
                    "cell": cell,
                    "seed": seed,
                    "val/mIoU": 0.5 + shift + 0.01 * seed,
                    "test/mIoU": 0.4 + 2 * shift + 0.01 * seed,
                }
            )
    summary = summarize(
        pd.DataFrame(rows), metric="val/mIoU", goal="maximize", baseline="base", keys=[]
    ).set_index("cell")
    assert summary.loc["base", "test_mean"] == pytest.approx(0.41)
    assert summary.loc["trick", "test_diff"] == pytest.approx(0.10)
    assert pd.isna(summary.loc["base", "test_diff"])
