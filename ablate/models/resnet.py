"""ResNet-18/34/50/101 backbones (He et al. 2016), dilated for segmentation, in plain torch.

Module names and state-dict keys are torchvision's (`conv1`, `bn1`, `layer1.0.conv1`,
`layer2.0.downsample.0` / `.1`, …), so the official ImageNet checkpoints load by state dict; the
classifier (`fc.*`) is not built and its keys are dropped on loading.

Output stride: the strides of the last stages become dilations, as DeepLab (Chen et al. 2017)
and PSPNet (Zhao et al. 2017) do — stride 8 dilates layer3 by 2 and layer4 by 4, stride 16
dilates layer4 by 2. As in torchvision and timm, the first block of a dilated stage keeps the
dilation of the stage before it for its first 3×3 conv (the one that used to stride).

`deep_stem=True` replaces the 7×7 stem conv by three 3×3 convs (width/2, width/2, width): the
ResNet-C stem of Bag of Tricks (He et al. 2019), i.e. mmsegmentation's ResNetV1c that its PSPNet
configs use; PSPNet's own Caffe net had the same three convs at 64, 64, 128. Its keys are
timm's `resnet50c`: `conv1.0` (conv), `conv1.1` (BN), `conv1.3`, `conv1.4`, `conv1.6`, then `bn1`.
torchvision ships no checkpoint for it: load one with `pretrained: PATH`.

`forward` returns the features of the four stages, named `stage1` … `stage4` (= `layer1` …
`layer4`), at strides 4, 8, 8|16|32, 8|16|32.
"""

from __future__ import annotations

from torch import Tensor, nn

from ablate.models._timm import PREFIX as TIMM
from ablate.models._timm import TimmBackbone
from ablate.models._weights import load_backbone_weights

# depth -> (block, blocks per stage), as in torchvision's resnet18 … resnet101
_LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3))}
_LAYOUTS |= {50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}
BACKBONES = tuple(f"resnet{d}" for d in _LAYOUTS)  # the names `backbone:` takes
OUTPUT_STRIDES = (8, 16, 32)


def _conv3x3(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convs and the identity (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self, c_in: int, planes: int, stride: int, first_dilation: int, dilation: int
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, planes, stride, first_dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(c_in, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (strided or dilated), 1×1 expand ×4 (ResNet-50/101, torchvision's v1.5:
    the stride sits on the 3×3 conv)."""

    expansion = 4

    def __init__(
        self, c_in: int, planes: int, stride: int, first_dilation: int, dilation: int
    ) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, first_dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


def _downsample(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    """torchvision's projection shortcut (`downsample.0` conv, `.1` BN) where the shape changes."""
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


def _stem(width: int, deep: bool) -> nn.Module:
    if not deep:
        return nn.Conv2d(3, width, 7, 2, padding=3, bias=False)
    half = width // 2
    return nn.Sequential(
        _conv3x3(3, half, stride=2),
        nn.BatchNorm2d(half),
        nn.ReLU(inplace=True),
        _conv3x3(half, half),
        nn.BatchNorm2d(half),
        nn.ReLU(inplace=True),
        _conv3x3(half, width),
    )


class ResNet(nn.Module):
    """A ResNet without its classifier; `channels[k]` is stage k+1's width."""

    def __init__(
        self, depth: int = 50, output_stride: int = 8, deep_stem: bool = False, width: int = 64
    ) -> None:
        super().__init__()
        if depth not in _LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(_LAYOUTS)}, got {depth}")
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
        if width < 2 or width % 2:
            raise ValueError(f"ResNet width must be an even number >= 2, got {width}")
        kind, counts = _LAYOUTS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = _stem(width, deep_stem)  # (B, w, H/2, W/2)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)  # (B, w, H/4, W/4)
        c_in, stride_so_far, dilation = width, 4, 1
        channels = []
        for k, (n_blocks, stride) in enumerate(zip(counts, (1, 2, 2, 2), strict=True), start=1):
            first_dilation = dilation
            if stride_so_far * stride > output_stride:  # trade this stride for dilation
                dilation, stride = dilation * stride, 1
            stride_so_far *= stride
            planes = width * 2 ** (k - 1)
            blocks = [block(c_in, planes, stride, first_dilation, dilation)]
            c_in = planes * block.expansion
            blocks += [block(c_in, planes, 1, dilation, dilation) for _ in range(n_blocks - 1)]
            self.add_module(f"layer{k}", nn.Sequential(*blocks))
            channels.append(c_in)
        self.channels: tuple[int, ...] = tuple(channels)
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, w, H/4, W/4)
        features = {}
        for k in range(1, 5):
            x = getattr(self, f"layer{k}")(x)  # (B, channels[k-1], H/s_k, W/s_k)
            features[f"stage{k}"] = x
        return features


Backbone = ResNet | TimmBackbone  # a module whose forward gives stage1 … stage4, and `channels`


def resnet(
    backbone: str = "resnet50",
    output_stride: int = 8,
    deep_stem: bool = False,
    width: int = 64,
    pretrained: bool | str = False,
) -> Backbone:
    """A dilated ResNet backbone by name (`resnet18` … `resnet101`). `width` is the stem's and
    stage 1's channel count (64 in the paper; smaller shrinks every stage in proportion, for
    tests). `pretrained`: False, True (torchvision's ImageNet file in torch hub's cache), or the
    path of a state dict with torchvision's keys; missing weights raise ModelContractError."""
    if backbone.startswith(TIMM):  # the optional extra
        if deep_stem or width != 64 or isinstance(pretrained, str):
            raise ValueError(f"{backbone}: deep_stem, width and pretrained: PATH are ResNet's")
        return TimmBackbone(backbone.removeprefix(TIMM), output_stride, pretrained)
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    model = ResNet(int(backbone.removeprefix("resnet")), output_stride, deep_stem, width)
    if pretrained is not False:
        if pretrained is True and (deep_stem or width != 64):
            raise ValueError(
                f"torchvision has no ImageNet checkpoint for {backbone} with deep_stem={deep_stem}"
                f" and width={width}; give pretrained: PATH to a state dict for it"
            )
        load_backbone_weights(model, backbone, pretrained)
    return model
