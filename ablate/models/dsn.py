"""`dsn`: deep supervision on a real backbone — a dilated ResNet with a companion head after each
chosen stage.

Deeply-Supervised Nets (Lee et al. 2015) attach a companion classifier to hidden layers and add
its loss to the main one; for segmentation the companions are per-pixel heads on intermediate
stages (PSPNet's aux head is one of them, on stage 3). Here the main head is the FCN head on
stage 4 (Long et al. 2015, as torchvision's FCN builds it: 3×3 conv to 512, BN, ReLU, Dropout2d
0.1, 1×1 conv) and each stage in `aux_stages` gets PSPNet's aux head, so studies can place
companions (stages 1, 2, 3 by default) on a residual network of real depth, where `dsnet` is the
plain network whose early layers need them most.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ablate.models._blocks import OnBackbone, conv_bn_relu, scaled
from ablate.models.resnet import Backbone, resnet


class DSN(OnBackbone):
    def __init__(
        self, num_classes: int, backbone: Backbone, aux_stages: Sequence[int], width: int
    ) -> None:
        c_head = scaled(512, width)
        super().__init__(backbone, num_classes, c_head, aux_stages, width)
        self.fuse = conv_bn_relu(backbone.channels[-1], c_head)  # the embedding map

    def embed(self, features: dict[str, Tensor]) -> Tensor:
        return self.fuse(features["stage4"])  # (B, 512, H/os, W/os)


def dsn(
    num_classes: int,
    backbone: str = "resnet50",
    pretrained: bool | str = False,
    output_stride: int = 8,
    aux_stages: Sequence[int] = (1, 2, 3),
    deep_stem: bool = False,
    width: int = 64,
) -> nn.Module:
    """A dilated ResNet (`resnet18` … `resnet101`; `pretrained`: False, True for torchvision's
    ImageNet file, or a path) with the FCN head on stage 4 and a companion head f"stage{k}"
    after each of `aux_stages`. `width` < 64 shrinks the backbone and heads (for tests)."""
    net = resnet(backbone, output_stride, deep_stem, width, pretrained)
    return DSN(num_classes, net, aux_stages, width)
