"""The built-in networks' heads and knobs: dsnet's plain depth, unet_ds's decoder scales."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablate.models import build_model
from ablate.models._blocks import ResidualBlock


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_dsnet_is_a_plain_chain_of_3x3_convs() -> None:
    model = build_model("dsnet", 4, {"depth": 4, "convs_per_stage": 3})
    assert not any(isinstance(m, ResidualBlock) for m in model.modules())
    # nn.Sequential all the way down, with nothing but conv, BN and ReLU: a chain, no path around
    assert all(isinstance(stage, nn.Sequential) for stage in model.stages)
    units = [unit for stage in model.stages for unit in stage]
    assert all(isinstance(unit, nn.Sequential) for unit in units)
    layers = [layer for unit in units for layer in unit]
    assert {type(layer) for layer in layers} == {nn.Conv2d, nn.BatchNorm2d, nn.ReLU}
    convs = [layer for layer in layers if isinstance(layer, nn.Conv2d)]
    assert len(convs) == 12  # 4 stages × 3, and no 1×1 projection a residual would need
    assert all(c.kernel_size == (3, 3) for c in convs)


@pytest.mark.parametrize("depth", [2, 4, 6])
def test_dsnet_has_a_companion_head_after_every_stage_but_the_last(depth: int) -> None:
    outputs = build_model("dsnet", 4, {"depth": depth})(torch.randn(1, 3, 32, 32))
    assert list(outputs["aux"]) == [f"stage{k}" for k in range(1, depth)]


def test_dsnet_output_stride_stops_at_8() -> None:
    outputs = build_model("dsnet", 4, {"depth": 6, "convs_per_stage": 1})(torch.randn(1, 3, 64, 96))
    assert outputs["out"].shape[-2:] == (8, 12)
    assert outputs["aux"]["stage5"].shape[-2:] == (8, 12)


def test_dsnet_without_batch_norm_starves_its_first_layer_of_gradient() -> None:
    # The regime of Lee et al. and Wang et al. (2015): only the main loss, no BN, default init.
    torch.manual_seed(0)
    model = build_model("dsnet", 4, {"batch_norm": False})
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.stages.modules())
    outputs = model(torch.randn(4, 3, 32, 32))
    F.cross_entropy(outputs["out"], torch.randint(0, 4, (4, 4, 4))).backward()
    convs = [m for m in model.stages.modules() if isinstance(m, nn.Conv2d)]

    def relative_grad(c: nn.Conv2d) -> float:
        assert c.weight.grad is not None
        return float(c.weight.grad.norm() / c.weight.detach().norm())

    assert relative_grad(convs[0]) < 0.01 * relative_grad(convs[-1])


def test_unet_ds_heads_sit_at_every_decoder_scale_of_a_non_square_input() -> None:
    outputs = build_model("unet_ds", 4)(torch.randn(2, 3, 32, 96))
    assert outputs["out"].shape == (2, 4, 32, 96)
    assert {k: tuple(v.shape[-2:]) for k, v in outputs["aux"].items()} == {
        "d8": (4, 12),
        "d4": (8, 24),
        "d2": (16, 48),
    }
    assert outputs["embed"].shape[-2:] == (16, 48)


def test_unet_ds_depth_adds_a_coarser_head() -> None:
    outputs = build_model("unet_ds", 4, {"depth": 4})(torch.randn(1, 3, 32, 48))
    assert {k: tuple(v.shape[-2:]) for k, v in outputs["aux"].items()} == {
        "d16": (2, 3),
        "d8": (4, 6),
        "d4": (8, 12),
        "d2": (16, 24),
    }


def test_unet_ds_rejects_a_size_its_depth_cannot_halve() -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        build_model("unet_ds", 4)(torch.randn(1, 3, 36, 32))


@pytest.mark.parametrize("name", ["dsnet", "unet_ds"])
def test_width_knob_scales_the_parameters(name: str) -> None:
    small = _n_params(build_model(name, 4, {"width": 8}))
    big = _n_params(build_model(name, 4, {"width": 16}))
    assert big > 3 * small
