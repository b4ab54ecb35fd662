import math

import pytest
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
        "val/boundary_iou",
        "val/boundary_iou/disc",
        "val/small_iou",
        "val/small_iou/tiny",
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
    model = {"name": "tests.study.crashing_model:build_nan", "args": {"at": 3}}
    recipe = Recipe.model_validate(
        {**TINY, "model": model, "train": {**TINY["train"], "epochs": 3}}
    )
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


class _Oracle(torch.nn.Module):
    """Reads the label hidden in channel 0 of the image and predicts it with certainty."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        labels = ((x[:, 0] * 0.25 + 0.5) * 255).round().long()
        out = torch.nn.functional.one_hot(labels, self.num_classes).permute(0, 3, 1, 2).float()
        return {"out": out * 10, "aux": {}, "embed": out}


def test_evaluate_scores_a_perfect_prediction_as_one_everywhere() -> None:
    from contextlib import nullcontext

    from ablate.data import load_splits
    from ablate.train import evaluate

    _, val = load_splits("shapes", 6, (96, 96), 1, 16, 0, torch.device("cpu"))
    hidden = val.labels.to(torch.uint8)[:, None].expand(-1, 3, -1, -1).contiguous()
    split = type(val)(hidden, val.labels, val.instances)
    names = [str(i) for i in range(6)]
    metrics = evaluate(_Oracle(6), split, 6, names, 8, 255, nullcontext)
    for key in ("val/mIoU", "val/pixel_acc", "val/boundary_iou", "val/small_iou"):
        assert metrics[key] == 1.0, key
    assert metrics["val/small_iou/tiny"] == 1.0 and metrics["val/small_iou/large"] == 1.0


def test_center_warmup_logs_the_lambda_in_use_and_balanced_ce_its_weights() -> None:
    from ablate.data import class_names, load_splits
    from ablate.losses import median_frequency_weights

    loss = {"center": {"weight": 0.1, "warmup": 0.5}, "ce": {"class_weight": "balanced"}}
    recipe = Recipe.model_validate({**TINY, "loss": loss})  # 2 epochs of 2 steps: t/T = i/4
    result = fit(recipe, seed=0)
    assert not result.diverged
    # epoch 1 steps at t/T = 0, 1/4 → λ = 0, 0.05; epoch 2 at 2/4, 3/4 → λ = 0.1
    lambdas = [e.metrics["train/center_weight"] for e in result.history]
    assert lambdas == [pytest.approx(0.025), pytest.approx(0.1)]
    d = recipe.data
    train, _ = load_splits("shapes", 4, d.image_size, 16, 8, d.seed, torch.device("cpu"))
    expected = median_frequency_weights([train.labels], 4)  # the whole (small) split
    assert list(result.class_weights) == class_names("shapes", 4)
    assert list(result.class_weights.values()) == pytest.approx(expected.tolist())


def test_class_weight_bound_is_the_one_the_spec_documents() -> None:
    from ablate.spec import CeSpec
    from ablate.train.fit import CLASS_WEIGHT_BATCHES

    description = CeSpec.model_fields["class_weight"].description or ""
    assert f"at most the first {CLASS_WEIGHT_BATCHES} batches" in description
