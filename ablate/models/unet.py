"""`unet_ds`: a U-Net (Ronneberger et al. 2015) with a head at every decoder scale.

An encoder of `depth` 2× downsamplings, a decoder that upsamples back with a skip connection from
the encoder at each scale, and the main logits at full resolution. Deep supervision of the
decoder, as in the deeply-supervised 3D U-Net of Dou et al. (2017) and UNet++ (Zhou et al. 2018),
puts a head at every coarser decoder scale: "d8" (1/8, on the bottleneck), "d4" (1/4) and "d2"
(1/2) for `depth` 3. Those heads predict on grids coarser than the labels, so how the labels meet
them — upsampled logits (`full`), nearest-neighbour labels, or class shares (CPP, SeeThroughNet
2022) — matters more here than for one head at 1/8: this model exists for that ablation.

By default the heads are training signals only and are dropped at inference. With `fuse=True`
their logits, upsampled bilinearly, are added to the main logits, so the coarse predictions are
part of the output, as in SeeThroughNet's decoder, which couples its multi-scale predictions
into the final one: there what a coarse head was trained to predict (an object's share of a
cell, or only the label that nearest pooling kept) reaches the prediction itself.

To cost about what `pspnet_tiny` costs on a CPU, no 3×3 conv runs at full resolution (there,
every channel costs four times what it costs at 1/2): the encoder starts with a stride-2 conv,
and the main classifier is a 2×2 up-convolution from the last decoder scale (1/2) to the input
grid — U-Net's final up-conv and 1×1 classifier folded into one linear map. Widths: `width`
channels at 1/2, doubling at each coarser scale. Inputs must be multiples of 2^depth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.models._blocks import conv_bn_relu, head


def _double_conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """U-Net's unit: two 3×3 conv blocks at one scale (the first may stride)."""
    return nn.Sequential(conv_bn_relu(c_in, c_out, stride), conv_bn_relu(c_out, c_out))


class UpBlock(nn.Module):
    """2×2 up-convolution halving the channels, concatenation with the skip, double conv."""

    def __init__(self, c_deep: int, c_skip: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(c_deep, c_skip, 2, stride=2)
        self.conv = _double_conv(2 * c_skip, c_skip)

    def forward(self, deep: Tensor, skip: Tensor) -> Tensor:
        up = self.up(deep)  # (B, c_skip, 2h, 2w)
        return self.conv(torch.cat([up, skip], dim=1))  # (B, c_skip, 2h, 2w)


class UNetDS(nn.Module):
    def __init__(
        self, num_classes: int, width: int = 16, depth: int = 3, fuse: bool = False
    ) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"unet_ds needs depth and width >= 1, got {depth}, {width}")
        self.depth = depth
        self.fuse = fuse
        c = [width * 2**k for k in range(depth)]  # c[k]: channels at scale 1/2^(k+1)
        self.stem = _double_conv(3, c[0], stride=2)  # (B, c0, H/2, W/2)
        self.down = nn.ModuleList(_double_conv(c[k - 1], c[k]) for k in range(1, depth))
        self.pool = nn.MaxPool2d(2)
        # coarse to fine, as the decoder runs: up[i] brings scale 1/2^(depth-i) to 1/2^(depth-i-1)
        self.up = nn.ModuleList(UpBlock(c[k], c[k - 1]) for k in range(depth - 1, 0, -1))
        # a head at every decoder scale, coarse to fine: "d8", "d4", "d2" for depth 3
        self.heads = nn.ModuleDict(
            {
                f"d{2 ** (k + 1)}": head(c[k], max(c[k] // 2, 8), num_classes)
                for k in range(depth - 1, -1, -1)
            }
        )
        self.classifier = nn.ConvTranspose2d(c[0], num_classes, 2, stride=2)  # 1/2 -> 1/1

    def forward(self, x: Tensor) -> dict[str, object]:
        step = 2**self.depth
        if x.shape[-2] % step or x.shape[-1] % step:
            raise ValueError(
                f"unet_ds with depth {self.depth} needs H and W divisible by {step}, "
                f"got {tuple(x.shape[-2:])}"
            )
        skips = [self.stem(x)]  # (B, c0, H/2, W/2)
        for block in self.down:
            skips.append(block(self.pool(skips[-1])))  # (B, c_k, H/2^(k+1), W/2^(k+1))
        x = skips.pop()  # the bottleneck, (B, c_{depth-1}, H/2^depth, W/2^depth)
        aux: dict[str, Tensor] = {}
        for i, name in enumerate(self.heads):  # coarse to fine
            if i > 0:
                x = self.up[i - 1](x, skips.pop())  # (B, c, 2h, 2w): one scale finer
            aux[name] = self.heads[name](x)  # (B, C, h, w) at this decoder scale
        out = self.classifier(x)  # (B, C, H, W)
        if self.fuse:  # each head's prediction, upsampled, is part of the output
            size = out.shape[-2:]
            for logits in aux.values():
                out = out + F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return {
            "out": out,
            "aux": aux,
            "embed": x,  # the last decoder features, (B, width, H/2, W/2)
        }


def unet_ds(num_classes: int, width: int = 16, depth: int = 3, fuse: bool = False) -> nn.Module:
    """U-Net with deep supervision: `width` channels at 1/2 (×2 per coarser scale), `depth`
    downsamplings, heads f"d{2**k}" for k = depth … 1, main logits at full resolution;
    `fuse=True` adds every head's upsampled logits to the main ones (SeeThroughNet's use: the
    coarse predictions are part of the output, so their training targets reach inference)."""
    return UNetDS(num_classes, width=width, depth=depth, fuse=fuse)
