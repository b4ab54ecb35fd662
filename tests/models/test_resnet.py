"""The ResNet backbones: torchvision's checkpoint keys, dilation, and pretrained weights."""

from pathlib import Path

import pytest
import torch

from ablate.models import ModelContractError
from ablate.models.resnet import BACKBONES, resnet

# torchvision's resnet18 state dict, written out from its architecture: the stem (conv1 + bn1),
# then per BasicBlock conv1, bn1, conv2, bn2 (+ downsample.0 conv, downsample.1 BN where the
# shape changes: the first block of layer2..4). A BN holds 5 entries (weight, bias,
# running_mean, running_var, num_batches_tracked). Without fc.weight / fc.bias: 122 - 2 keys.
RESNET18_KEYS = 6 + 2 * 12 + 3 * (18 + 12)
RESNET18_SAMPLE = [
    "conv1.weight",
    "bn1.num_batches_tracked",
    "layer1.0.conv1.weight",
    "layer1.1.bn2.running_mean",
    "layer2.0.downsample.0.weight",
    "layer2.0.downsample.1.running_var",
    "layer3.1.conv2.weight",
    "layer4.1.bn2.bias",
]
# resnet50's Bottleneck adds conv3/bn3 and a projection on layer1.0 too (64 -> 256 channels)
RESNET50_SAMPLE = ["layer1.0.downsample.0.weight", "layer4.2.bn3.weight", "layer3.5.conv3.weight"]


def test_resnet18_has_torchvisions_keys() -> None:
    keys = list(resnet("resnet18").state_dict())
    assert len(keys) == RESNET18_KEYS == 120
    assert set(RESNET18_SAMPLE) <= set(keys)
    assert not any(k.startswith("fc.") for k in keys)
    assert resnet("resnet18").state_dict()["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)


@pytest.mark.parametrize(
    ("backbone", "n_keys", "channels"),
    [
        ("resnet18", 120, (64, 128, 256, 512)),
        ("resnet34", 6 + 3 * 12 + 4 * 12 + 6 * 12 + 3 * 12 + 3 * 6, (64, 128, 256, 512)),
        ("resnet50", 6 + 16 * 18 + 4 * 6, (256, 512, 1024, 2048)),
        ("resnet101", 6 + 33 * 18 + 4 * 6, (256, 512, 1024, 2048)),
    ],
)
def test_every_depth_has_torchvisions_layout(
    backbone: str, n_keys: int, channels: tuple[int, ...]
) -> None:
    model = resnet(backbone)
    assert len(model.state_dict()) == n_keys
    assert model.channels == channels
    if backbone in ("resnet50", "resnet101"):
        assert set(RESNET50_SAMPLE) <= set(model.state_dict())


def test_a_saved_checkpoint_with_an_fc_reloads_strictly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = resnet("resnet18", width=16)
    state = {**source.state_dict(), "fc.weight": torch.zeros(10, 128), "fc.bias": torch.zeros(10)}
    torch.save(state, tmp_path / "r18.pth")
    model = resnet("resnet18", width=16, pretrained=str(tmp_path / "r18.pth"))
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_a_checkpoint_of_another_depth_is_a_clear_error(tmp_path: Path) -> None:
    torch.save(resnet("resnet18", width=8).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ModelContractError, match=r"r18\.pth do not fit resnet34: .*layer1\.2"):
        resnet("resnet34", width=8, pretrained=str(tmp_path / "r18.pth"))


def test_missing_official_weights_name_the_file_url_and_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    with pytest.raises(ModelContractError) as error:
        resnet("resnet50", pretrained=True)
    message = str(error.value)
    assert str(expected) in message
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in message
    assert "ablate fetch-weights resnet50" in message


def test_official_weights_load_from_torch_hubs_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    source = resnet("resnet18")
    torch.save(source.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    model = resnet("resnet18", output_stride=16, pretrained=True)
    assert torch.equal(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)


def test_deep_stem_uses_timms_resnet_c_keys() -> None:
    keys = set(resnet("resnet50", deep_stem=True, width=8).state_dict())
    stem = {k.split(".")[1] for k in keys if k.startswith("conv1.")}
    assert stem == {"0", "1", "3", "4", "6"}
    assert "bn1.running_var" in keys
    assert resnet("resnet50", deep_stem=True).conv1[6].weight.shape == (64, 32, 3, 3)


@pytest.mark.parametrize(
    ("output_stride", "strides"), [(8, (4, 8, 8, 8)), (16, (4, 8, 16, 16)), (32, (4, 8, 16, 32))]
)
@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_output_stride_sets_the_stage_sizes(
    backbone: str, output_stride: int, strides: tuple[int, ...]
) -> None:
    model = resnet(backbone, output_stride=output_stride, width=8).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, 64, 96))
    assert list(features) == ["stage1", "stage2", "stage3", "stage4"]
    assert [f.shape[-2:] for f in features.values()] == [(64 // s, 96 // s) for s in strides]
    assert [f.shape[1] for f in features.values()] == list(model.channels)


def test_dilation_replaces_stride_as_deeplab_does() -> None:
    model = resnet("resnet50", output_stride=8, width=8)
    # the first block of a dilated stage keeps the previous dilation where it used to stride
    assert model.layer3[0].conv2.dilation == (1, 1) and model.layer3[0].conv2.stride == (1, 1)
    assert model.layer3[1].conv2.dilation == (2, 2)
    assert model.layer4[0].conv2.dilation == (2, 2)
    assert model.layer4[2].conv2.dilation == (4, 4)


def test_full_resnet50_forward() -> None:
    model = resnet("resnet50", output_stride=8).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, 64, 64))
    assert features["stage4"].shape == (1, 2048, 8, 8)


def test_unknown_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="resnet18, resnet34, resnet50, resnet101"):
        resnet("resnet152")
    assert BACKBONES == ("resnet18", "resnet34", "resnet50", "resnet101")
