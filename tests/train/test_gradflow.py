import pytest
import torch

from ablate.models import build_model
from ablate.train.gradflow import GradientProbe


def test_probe_gives_the_mean_abs_gradient_of_each_top_level_module() -> None:
    torch.manual_seed(0)
    model = build_model("pspnet_tiny", 3, {"width": 8})
    outputs = model(torch.randn(2, 3, 32, 32))
    (outputs["out"].square().mean() + outputs["aux"]["stage3"].mean()).backward()
    measured = GradientProbe(model).measure()
    for layer in ("stem", "stage1", "stage3", "classifier", "aux_head"):
        weights = [
            p for n, p in model.named_parameters() if n.split(".")[0] == layer and p.dim() > 1
        ]
        total = sum(float(p.grad.abs().sum()) for p in weights)
        count = sum(p.numel() for p in weights)
        assert measured[layer] == pytest.approx(total / count, rel=1e-5)
    assert next(iter(measured)) == "stem"  # layers in model order, input to output


def test_probe_undoes_the_loss_scale_and_tolerates_unused_heads() -> None:
    torch.manual_seed(0)
    model = build_model("pspnet_tiny", 3, {"width": 8})
    model(torch.randn(2, 3, 32, 32))["out"].mean().backward()  # aux head unused: no gradient
    probe = GradientProbe(model)
    plain, scaled = probe.measure(), probe.measure(scale=4.0)
    assert plain["aux_head"] == 0.0
    assert scaled["stem"] == pytest.approx(plain["stem"] / 4)


def test_fit_records_gradients_every_k_steps() -> None:
    from ablate.spec import Recipe
    from ablate.train import fit

    recipe = Recipe.model_validate(
        {
            "data": {"num_classes": 4, "image_size": [32, 32], "train_size": 32, "val_size": 4},
            "model": {"name": "pspnet_tiny", "args": {"width": 4}},
            "train": {"epochs": 2, "batch_size": 4, "diagnostics": {"grad_every": 3}},
        }
    )
    result = fit(recipe, seed=0)
    iterations = [i for e in result.history for i, _ in e.gradients]
    assert iterations == [0, 3, 6, 9, 12, 15] and result.total_steps == 16
    off = recipe.train.diagnostics.model_copy(update={"grad_every": None})
    quiet = recipe.model_copy(
        update={"train": recipe.train.model_copy(update={"diagnostics": off})}
    )
    assert all(not e.gradients for e in fit(quiet, seed=0).history)


def test_probe_splits_a_plain_net_at_its_stages_and_heads() -> None:
    model = build_model("dsnet", 3, {"width": 4, "depth": 3})
    probe = GradientProbe(model)
    assert probe.stages == ["stage1", "stage2", "stage3"]  # dsnet.stages[k] -> stage{k+1}
    assert probe.layers == [*probe.stages, "companions.stage1", "companions.stage2", "classifier"]


def test_probe_splits_a_resnet_backbone_into_stem_and_its_four_stages() -> None:
    torch.manual_seed(0)
    model = build_model("pspnet", 3, {"backbone": "resnet18", "width": 8})
    model(torch.randn(2, 3, 32, 32))["out"].mean().backward()
    measured = GradientProbe(model).measure()
    assert list(measured)[:5] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    layer2 = [p for n, p in model.named_parameters() if n.startswith("backbone.layer2.")]
    weights = [p for p in layer2 if p.dim() > 1]
    mean = sum(float(p.grad.abs().sum()) for p in weights) / sum(p.numel() for p in weights)
    assert measured["stage2"] == pytest.approx(mean, rel=1e-5)
    assert "aux_heads.stage3" in measured and "backbone" not in measured


def test_a_model_may_name_its_own_stages() -> None:
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 3))
            self.head = torch.nn.Conv2d(4, 2, 1)

        def gradient_stages(self) -> dict[str, torch.nn.Module]:
            return {"low": self.encoder[0], "high": self.encoder[1]}

    probe = GradientProbe(Net())
    assert probe.stages == ["low", "high"] and probe.layers == ["low", "high", "head"]
