"""The real networks on ResNet backbones: `pspnet`, `deeplabv3plus`, `dsn`."""

from pathlib import Path

import pytest
import torch
from torch import nn

from ablate.models import ModelContractError, build_model
from ablate.models.resnet import resnet

TINY = {"backbone": "resnet18", "width": 8}


def _layer_types(module: nn.Module) -> list[type]:
    return [type(m) for m in module.modules() if not isinstance(m, nn.Sequential)]


def test_pspnet_has_the_papers_pyramid_and_aux_head() -> None:
    # the paper's head widths (width 64) on the smallest backbone: stage 4 has 512 channels
    model = build_model("pspnet", 6, {"backbone": "resnet18"})
    assert model.ppm.bins == (1, 2, 3, 6)
    assert [b[0].out_channels for b in model.ppm.branches] == [128] * 4  # a quarter of 512
    assert model.fuse[0].in_channels == 512 * 2 and model.fuse[0].out_channels == 512
    aux = model.aux_heads["stage3"]
    assert _layer_types(aux) == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Dropout2d, nn.Conv2d]
    assert aux[0][0].kernel_size == (3, 3) and aux[0][0].out_channels == 256
    assert aux[1].p == 0.1 and aux[2].kernel_size == (1, 1) and aux[2].out_channels == 6
    outputs = model.eval()(torch.randn(1, 3, 32, 32))
    assert outputs["embed"].shape == (1, 512, 4, 4)  # the features before the classifier


def test_aux_stages_choose_where_heads_go() -> None:
    for name in ("pspnet", "deeplabv3plus", "dsn"):
        model = build_model(name, 3, {**TINY, "aux_stages": [1, 3]})
        outputs = model.eval()(torch.randn(1, 3, 32, 32))
        assert sorted(outputs["aux"]) == ["stage1", "stage3"], name
        assert outputs["aux"]["stage1"].shape == (1, 3, 8, 8)


def test_an_aux_stage_that_does_not_exist_is_a_clear_error() -> None:
    with pytest.raises(ModelContractError, match=r"aux_stages: 5 is not a stage; .* 1 … 4"):
        build_model("pspnet", 3, {**TINY, "aux_stages": [5]})


def test_deeplabv3plus_aspp_rates_follow_the_output_stride() -> None:
    def rates(output_stride: int) -> list[int]:
        model = build_model("deeplabv3plus", 3, {**TINY, "output_stride": output_stride})
        return [b[0].dilation[0] for b in model.aspp.branches[1:]]

    assert rates(16) == [6, 12, 18]
    assert rates(8) == [12, 24, 36]


def test_deeplabv3plus_decodes_at_stride_4_with_48_low_level_channels() -> None:
    model = build_model("deeplabv3plus", 4, {"backbone": "resnet18"}).eval()
    assert model.reduce[0].out_channels == 48
    assert [m[0].out_channels for m in model.decoder] == [256, 256]
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 64, 96))
    assert outputs["out"].shape == (1, 4, 16, 24)
    assert outputs["embed"].shape == (1, 256, 16, 24)
    assert outputs["aux"] == {}


def test_dsn_puts_a_companion_after_stages_1_2_3_by_default() -> None:
    outputs = build_model("dsn", 3, TINY).eval()(torch.randn(1, 3, 64, 64))
    assert {k: v.shape[-1] for k, v in outputs["aux"].items()} == {
        "stage1": 16,
        "stage2": 8,
        "stage3": 8,
    }


def test_pretrained_backbone_weights_load_into_the_network(tmp_path: Path) -> None:
    source = resnet("resnet18", width=8)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    args = {**TINY, "pretrained": str(tmp_path / "r18.pth")}
    model = build_model("pspnet", 3, args)
    assert torch.equal(model.backbone.layer3[0].conv1.weight, source.layer3[0].conv1.weight)


def test_missing_pretrained_weights_stop_the_build_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelContractError) as error:
        build_model("deeplabv3plus", 3, {"backbone": "resnet18", "pretrained": True})
    message = str(error.value)
    assert message.startswith("model 'deeplabv3plus': pretrained weights for resnet18 not found")
    assert "resnet18-f37072fd.pth" in message and "ablate fetch-weights resnet18" in message


def test_pretrained_true_refuses_a_shape_torchvision_does_not_ship() -> None:
    with pytest.raises(ModelContractError, match="no ImageNet checkpoint for resnet18 with"):
        build_model("dsn", 3, {**TINY, "pretrained": True})
