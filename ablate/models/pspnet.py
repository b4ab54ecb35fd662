"""PSPNet (Zhao et al. 2017, "Pyramid Scene Parsing Network"): `pspnet` on a dilated ResNet,
and `pspnet_tiny`, shrunk to train on a CPU in seconds.

`pspnet` is the paper's network: a dilated ResNet (output stride 8), the pyramid pooling module
(bins 1, 2, 3, 6; each bin: adaptive average pool, 1×1 conv to a quarter of the channels, BN,
ReLU, bilinear upsampling; concatenated with its input), then 3×3 conv to 512, BN, ReLU,
Dropout2d 0.1 and a 1×1 classifier; the auxiliary head on stage 3 (3×3 conv to 256, BN, ReLU,
Dropout2d 0.1, 1×1 conv), whose loss weight the paper sets to 0.4, as in the authors' code.

`pspnet_tiny`: a residual backbone of four stages (strides 2, 4, 8, 8 — the last stage dilated
instead of strided, as in the paper's dilated ResNet), the same pyramid pooling and aux head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.models._blocks import OnBackbone, ResidualBlock, conv_bn_relu, head, scaled
from ablate.models.resnet import Backbone, resnet


class PyramidPooling(nn.Module):
    """Average-pool the features to b×b for each bin b, reduce, upsample and concatenate."""

    def __init__(self, c_in: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        c_branch = max(c_in // len(bins), 8)
        self.bins = bins
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c_in, c_branch, 1, bias=False),
                nn.BatchNorm2d(c_branch),
                nn.ReLU(inplace=True),
            )
            for _ in bins
        )
        self.out_channels = c_in + c_branch * len(bins)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(
                branch(F.adaptive_avg_pool2d(x, b)), size, mode="bilinear", align_corners=False
            )
            for b, branch in zip(self.bins, self.branches, strict=True)
        ]
        return torch.cat([x, *pooled], dim=1)


class PSPNetTiny(nn.Module):
    def __init__(self, num_classes: int, width: int = 16, blocks: int = 1) -> None:
        super().__init__()
        w = (width, 2 * width, 4 * width, 6 * width)  # stage widths

        def stage(c_in: int, c_out: int, stride: int, dilation: int = 1) -> nn.Sequential:
            layers = [ResidualBlock(c_in, c_out, stride, dilation)]
            layers += [ResidualBlock(c_out, c_out, 1, dilation) for _ in range(blocks - 1)]
            return nn.Sequential(*layers)

        self.stem = conv_bn_relu(3, w[0], stride=2)  # 1/2
        self.stage1 = stage(w[0], w[0], 1)  # 1/2
        self.stage2 = stage(w[0], w[1], 2)  # 1/4
        self.stage3 = stage(w[1], w[2], 2)  # 1/8
        self.stage4 = stage(w[2], w[3], 1, dilation=2)  # 1/8, dilated
        self.ppm = PyramidPooling(w[3])
        self.fuse = conv_bn_relu(self.ppm.out_channels, w[2])  # the embedding map
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(w[2], num_classes, 1))
        self.aux_head = head(w[2], w[1], num_classes)

    def forward(self, x: Tensor) -> dict[str, object]:
        x = self.stage2(self.stage1(self.stem(x)))  # (B, w1, H/4, W/4)
        c3 = self.stage3(x)  # (B, w2, H/8, W/8)
        embed = self.fuse(self.ppm(self.stage4(c3)))  # (B, w2, H/8, W/8)
        return {
            "out": self.classifier(embed),  # (B, C, H/8, W/8)
            "aux": {"stage3": self.aux_head(c3)},  # (B, C, H/8, W/8)
            "embed": embed,
        }


def pspnet_tiny(num_classes: int, width: int = 16, blocks: int = 1) -> nn.Module:
    """PSPNet-tiny: `width` channels in stage 1 (×2, ×4, ×6 after), `blocks` per stage."""
    return PSPNetTiny(num_classes, width=width, blocks=blocks)


class PSPNet(OnBackbone):
    def __init__(
        self, num_classes: int, backbone: Backbone, aux_stages: Sequence[int], width: int
    ) -> None:
        c_fuse = scaled(512, width)
        super().__init__(backbone, num_classes, c_fuse, aux_stages, width)
        self.ppm = PyramidPooling(backbone.channels[-1])  # 2048 -> 2048 + 4 × 512 for ResNet-50
        self.fuse = conv_bn_relu(self.ppm.out_channels, c_fuse)  # the embedding map

    def embed(self, features: dict[str, Tensor]) -> Tensor:
        return self.fuse(self.ppm(features["stage4"]))  # (B, 512, H/8, W/8) at stride 8


def pspnet(
    num_classes: int,
    backbone: str = "resnet50",
    pretrained: bool | str = False,
    output_stride: int = 8,
    aux_stages: Sequence[int] = (3,),
    deep_stem: bool = False,
    width: int = 64,
) -> nn.Module:
    """PSPNet on a dilated ResNet (`resnet18` … `resnet101`; `pretrained`: False, True for
    torchvision's ImageNet file, or a path), aux heads f"stage{k}" after each of `aux_stages`.
    `width` < 64 shrinks the backbone and heads in proportion (for tests)."""
    net = resnet(backbone, output_stride, deep_stem, width, pretrained)
    return PSPNet(num_classes, net, aux_stages, width)
