import math

import torch

from ablate.spec import Recipe
from ablate.train import EpochResult, autocast_for, fit

TINY = {
    "data": {"num_classes": 4, "image_size": [32, 32], "train_size": 16, "val_size": 8},
    "model": {"name": "pspnet_tiny", "args": {"width": 8}},
    "train": {"epochs": 2, "batch_size": 8, "lr": 0.02},
}


def test_fit_logs_every_epoch_and_is_reproducible_per_seed() -> None:
    recipe = Recipe.model_validate(TINY)
    seen: list[EpochResult] = []
    first = fit(recipe, seed=0, on_epoch=seen.append)
    assert [e.epoch for e in seen] == [1, 2] and not first.diverged
    metrics = first.final
    for key in (
        "train/loss",
        "train/loss/ce",
        "train/loss/aux",
        "train/aux_weight",
        "val/mIoU",
        "val/pixel_acc",
        "val/loss",
        "val/iou/background",
        "train/images_per_s",
    ):
        assert key in metrics, key
    assert 0 <= metrics["val/mIoU"] <= 1
    assert first.best["val/mIoU"] == max(e.metrics["val/mIoU"] for e in seen)
    again = fit(recipe, seed=0)
    assert again.final["train/loss"] == metrics["train/loss"]
    other = fit(recipe, seed=1)
    assert other.final["train/loss"] != metrics["train/loss"]


def test_training_reduces_the_loss() -> None:
    recipe = Recipe.model_validate({**TINY, "train": {**TINY["train"], "epochs": 4}})
    history = fit(recipe, seed=0).history
    assert history[-1].metrics["train/loss"] < history[0].metrics["train/loss"]


def test_a_non_finite_loss_stops_training_as_diverged() -> None:
    recipe = Recipe.model_validate({**TINY, "train": {**TINY["train"], "lr": 1e12, "epochs": 3}})
    result = fit(recipe, seed=0)
    assert result.diverged
    assert len(result.history) < 3
    assert all(math.isfinite(e.metrics["train/loss"]) for e in result.history)


def test_amp_auto_is_off_on_the_cpu_and_bf16_on_request() -> None:
    cpu = torch.device("cpu")
    assert autocast_for("auto", cpu) == (None, False)
    assert autocast_for("off", cpu) == (None, False)
    assert autocast_for("bf16", cpu) == (torch.bfloat16, False)


def test_bf16_autocast_trains_on_the_cpu() -> None:
    recipe = Recipe.model_validate({**TINY, "train": {**TINY["train"], "amp": "bf16", "epochs": 1}})
    result = fit(recipe, seed=0)
    assert not result.diverged and math.isfinite(result.final["val/mIoU"])


def test_save_model_returns_the_network_and_the_center_loss_centers() -> None:
    recipe = Recipe.model_validate(
        {
            **TINY,
            "train": {**TINY["train"], "epochs": 1, "save_model": True},
            "loss": {"center": {"weight": 0.01}},
        }
    )
    result = fit(recipe, seed=0)
    assert result.checkpoint is not None
    centers = result.checkpoint["objective"]["center.centers"]
    assert centers.shape == (4, 32) and centers.abs().sum() > 0  # moved from their zero start
    assert any(k.startswith("stage1.") for k in result.checkpoint["model"])
    assert fit(Recipe.model_validate(TINY), seed=0).checkpoint is None
