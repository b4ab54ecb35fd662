"""`fit` on every kind of data source: generated digits and a folder dataset streamed from disk."""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ablate.cli import app
from ablate.spec import Recipe
from ablate.train import fit

TRAIN = {"epochs": 1, "batch_size": 4, "lr": 0.02}
MODEL = {"name": "pspnet_tiny", "args": {"width": 4}}


def _folder_dataset(root: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for k in range(n):
            labels = np.zeros((40, 48), np.uint8)
            labels[8 + k : 24 + k, 10:30] = 1 + k % 2
            labels[0, :] = 255
            image = (rng.uniform(0, 60, (40, 48, 3)) + labels[..., None] % 255 * 80).astype(
                np.uint8
            )
            for sub, array in (("images", image), ("masks", labels)):
                (root / sub / split).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(root / sub / split / f"{k}.png")
    return root


def test_fit_on_digits() -> None:
    recipe = Recipe.model_validate(
        {
            "data": {
                "name": "digits",
                "num_classes": 11,
                "image_size": [48, 48],
                "train_size": 8,
                "val_size": 4,
            },
            "model": MODEL,
            "train": TRAIN,
        }
    )
    result = fit(recipe, seed=0)
    assert not result.diverged
    assert "val/iou/7" in result.final and "val/small_iou/tiny" in result.final


def test_fit_streams_a_folder_dataset_from_disk(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path / "data")
    recipe = Recipe.model_validate(
        {
            "data": {
                "name": "folder",
                "root": str(root),
                "num_classes": 3,
                "image_size": [32, 32],
                "train_size": 6,
                "val_size": 6,
                "num_workers": 0,
            },
            "model": MODEL,
            "train": {**TRAIN, "epochs": 2},
        }
    )
    result = fit(recipe, seed=0)
    assert len(result.history) == 2 and not result.diverged
    assert math.isfinite(result.final["val/mIoU"])
    assert "val/small_iou" not in result.final  # no instances recorded on disk


def test_a_missing_dataset_folder_is_a_clear_error_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(
        "name: s\nbase:\n  data: {name: cityscapes, num_classes: 19, root: nowhere}\n"
        "sweep: {grid: {loss.aux.weight: [0.0, 0.4]}, seeds: [0]}\n"
    )
    result = CliRunner().invoke(app, ["run", "s.yaml"])
    assert result.exit_code == 2, result.output
    assert "nowhere" in result.output and "leftImg8bit" in result.output
    assert not (tmp_path / "results").exists()


def test_fixed_class_counts_are_checked() -> None:
    with pytest.raises(ValueError, match="cityscapes has 19 classes"):
        Recipe.model_validate({"data": {"name": "cityscapes", "num_classes": 6, "root": "x"}})
