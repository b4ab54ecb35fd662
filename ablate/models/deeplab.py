"""`deeplabv3plus`: DeepLabv3+ (Chen et al. 2018, "Encoder-Decoder with Atrous Separable
Convolution for Semantic Image Segmentation") on a dilated ResNet.

Encoder: ASPP (DeepLabv3, Chen et al. 2017, §3.3) on stage 4 — a 1×1 conv and three 3×3 convs
at rates 6, 12, 18 for output stride 16 (doubled at 8), plus image pooling, each to 256
channels with BN and ReLU, concatenated, projected by a 1×1 conv to 256 (BN, ReLU, dropout 0.1
as in the reference TensorFlow code). Decoder (§3.1): the stage-1 features (stride 4) reduced to
48 channels by a 1×1 conv, concatenated with the ASPP output upsampled to stride 4, two 3×3 convs
to 256 and a 1×1 classifier: `out` is at stride 4. Plain (not depthwise-separable) convs, as in
most re-implementations with a ResNet backbone. SeeThroughNet (2022) reports its class-share
(CPP) targets on this model: aux heads go after any of `aux_stages`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.models._blocks import OnBackbone, conv_bn_relu, scaled
from ablate.models.resnet import Backbone, resnet

ASPP_RATES_AT_16 = (6, 12, 18)  # the paper's rates at output stride 16; scaled for others


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: parallel 1×1, dilated 3×3 and image-level branches."""

    def __init__(self, c_in: int, c_out: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(c_in, c_out, kernel_size=1)]
            + [conv_bn_relu(c_in, c_out, dilation=r) for r in rates]
        )
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), conv_bn_relu(c_in, c_out, kernel_size=1)
        )
        n_branches = len(rates) + 2
        self.project = nn.Sequential(
            conv_bn_relu(n_branches * c_out, c_out, kernel_size=1), nn.Dropout(0.1)
        )

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        pooled = self.image_pool(x).expand(-1, -1, h, w)  # (B, c_out, 1, 1) broadcast to h×w
        return self.project(torch.cat([*(b(x) for b in self.branches), pooled], dim=1))


class DeepLabV3Plus(OnBackbone):
    def __init__(
        self,
        num_classes: int,
        backbone: Backbone,
        output_stride: int,
        aux_stages: Sequence[int],
        width: int,
    ) -> None:
        c_aspp, c_low, c_dec = scaled(256, width), scaled(48, width), scaled(256, width)
        super().__init__(backbone, num_classes, c_dec, aux_stages, width, dropout=0.0)
        channels = backbone.channels
        rates = [r * 16 // output_stride for r in ASPP_RATES_AT_16]
        self.aspp = ASPP(channels[-1], c_aspp, rates)
        self.reduce = conv_bn_relu(channels[0], c_low, kernel_size=1)
        self.decoder = nn.Sequential(
            conv_bn_relu(c_aspp + c_low, c_dec), conv_bn_relu(c_dec, c_dec)
        )

    def embed(self, features: dict[str, Tensor]) -> Tensor:
        low = self.reduce(features["stage1"])  # (B, 48, H/4, W/4)
        high = self.aspp(features["stage4"])  # (B, 256, H/os, W/os)
        high = F.interpolate(high, low.shape[-2:], mode="bilinear", align_corners=False)
        return self.decoder(torch.cat([high, low], dim=1))  # (B, 256, H/4, W/4)


def deeplabv3plus(
    num_classes: int,
    backbone: str = "resnet50",
    pretrained: bool | str = False,
    output_stride: int = 16,
    aux_stages: Sequence[int] = (),
    deep_stem: bool = False,
    width: int = 64,
) -> nn.Module:
    """DeepLabv3+ on a dilated ResNet (`resnet18` … `resnet101`; `pretrained`: False, True for
    torchvision's ImageNet file, or a path), output stride 16 as the paper trains (8 doubles the
    ASPP rates), aux heads f"stage{k}" after each of `aux_stages` (none by default). `width` < 64
    shrinks the backbone and heads in proportion (for tests)."""
    net = resnet(backbone, output_stride, deep_stem, width, pretrained)
    return DeepLabV3Plus(num_classes, net, output_stride, aux_stages, width)
