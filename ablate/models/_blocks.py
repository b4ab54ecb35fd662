"""Small building blocks shared by the built-in networks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import Tensor, nn


def conv_bn_relu(
    c_in: int, c_out: int, stride: int = 1, dilation: int = 1, kernel_size: int = 3
) -> nn.Sequential:
    """3×3 (or `kernel_size`) convolution, batch norm, ReLU: the unit every built-in network is
    made of."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size, stride, padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """A basic residual block (He et al. 2016); a 1×1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(c_in, c_out, stride, dilation)
        self.conv2 = nn.Sequential(
            nn.Conv2d(c_out, c_out, 3, 1, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.skip(x))


def head(c_in: int, c_mid: int, num_classes: int, dropout: float = 0.1) -> nn.Sequential:
    """A segmentation head: 3×3 conv block, dropout, 1×1 classifier."""
    return nn.Sequential(
        conv_bn_relu(c_in, c_mid), nn.Dropout2d(dropout), nn.Conv2d(c_mid, num_classes, 1)
    )


def scaled(channels: int, width: int) -> int:
    """A head's channel count from the paper's network (stage-1 width 64), shrunk in proportion
    when the backbone's `width` is smaller (tiny test models); never below 8."""
    return max(channels * width // 64, 8)


def stage_heads(
    channels: Sequence[int], stages: Iterable[int], num_classes: int, c_mid: int
) -> nn.ModuleDict:
    """An aux head after each backbone stage in `stages` (1-based), named f"stage{k}": PSPNet's
    auxiliary head (3×3 conv to `c_mid`, BN, ReLU, Dropout2d 0.1, 1×1 conv to the classes)."""
    heads: dict[str, nn.Module] = {}
    for k in stages:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(channels):
            raise ValueError(
                f"aux_stages: {k!r} is not a stage; the stages are 1 … {len(channels)}"
            )
        heads[f"stage{k}"] = head(channels[k - 1], c_mid, num_classes)
    return nn.ModuleDict(heads)


class OnBackbone(nn.Module):
    """The frame of the real networks: a backbone giving stages `stage1` … `stage4`, a head
    (the subclass's `embed`) making the embedding map from them, a 1×1 classifier on it (after
    Dropout2d, as PSPNet's code has) and aux heads f"stage{k}" on the stages named; `forward`
    returns the model contract."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        c_embed: int,
        aux_stages: Iterable[int],
        width: int,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        channels: Sequence[int] = backbone.channels  # type: ignore[assignment]
        drop = [nn.Dropout2d(dropout)] if dropout else []
        self.classifier = nn.Sequential(*drop, nn.Conv2d(c_embed, num_classes, 1))
        self.aux_heads = stage_heads(channels, aux_stages, num_classes, scaled(256, width))

    def embed(self, features: dict[str, Tensor]) -> Tensor:
        """(B, c_embed, h, w) from the stages."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> dict[str, object]:
        features = self.backbone(x)  # stage k: (B, c_k, H/s_k, W/s_k)
        embed = self.embed(features)
        return {
            "out": self.classifier(embed),  # (B, C, h, w)
            "aux": {name: h(features[name]) for name, h in self.aux_heads.items()},
            "embed": embed,
        }
