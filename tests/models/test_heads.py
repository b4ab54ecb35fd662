"""The built-in networks' heads and knobs: dsnet's plain depth, unet_ds's decoder scales."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablate.models import ModelContractError, build_model
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


def _first_and_last_relative_grad(init: str) -> tuple[float, float]:
    """|grad| / |weight| of the first and last stage conv of a BN-free dsnet, main loss only."""
    torch.manual_seed(0)
    model = build_model("dsnet", 4, {"batch_norm": False, "init": init})
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.stages.modules())
    outputs = model(torch.randn(4, 3, 32, 32))
    F.cross_entropy(outputs["out"], torch.randint(0, 4, (4, 4, 4))).backward()
    convs = [m for m in model.stages.modules() if isinstance(m, nn.Conv2d)]

    def relative_grad(c: nn.Conv2d) -> float:
        assert c.weight.grad is not None
        return float(c.weight.grad.norm() / c.weight.detach().norm())

    return relative_grad(convs[0]), relative_grad(convs[-1])


def test_dsnet_without_batch_norm_under_torchs_init_starves_its_first_layer_of_gradient() -> None:
    # The regime of Lee et al. and Wang et al. (2015): only the main loss, no BN, a small init.
    first, last = _first_and_last_relative_grad("torch")
    assert first < 0.01 * last


def test_dsnet_he_init_lets_the_gradient_reach_the_first_layer() -> None:
    first, last = _first_and_last_relative_grad("he")
    assert first > 0.1 * last


@pytest.mark.parametrize("batch_norm", [True, False])
def test_dsnet_convs_start_from_he_init(batch_norm: bool) -> None:
    # Kaiming normal, fan_out, ReLU gain: std = sqrt(2 / (out_channels × 3 × 3)), zero bias
    torch.manual_seed(0)
    model = build_model("dsnet", 4, {"width": 32, "batch_norm": batch_norm})
    conv = model.stages[2][1][0]  # a 128 -> 128 3×3 conv in stage 3
    weight = conv.weight.detach()
    assert weight.shape == (128, 128, 3, 3)
    expected = (2 / (128 * 9)) ** 0.5
    assert abs(float(weight.std()) - expected) < 0.02 * expected
    assert abs(float(weight.mean())) < 0.02 * expected
    assert conv.bias is None if batch_norm else torch.equal(conv.bias, torch.zeros(128))
    # PyTorch's default (kaiming_uniform, a=√5) is 1/√(3·fan_in): √6 times smaller here
    torch_init = build_model("dsnet", 4, {"width": 32, "init": "torch"}).stages[2][1][0]
    assert float(torch_init.weight.detach().std()) < 0.5 * expected


def test_dsnet_refuses_an_unknown_init() -> None:
    with pytest.raises(ModelContractError, match="init must be one of he, torch, got 'xavier'"):
        build_model("dsnet", 4, {"init": "xavier"})


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
