"""Small building blocks shared by the built-in networks."""

from __future__ import annotations

from torch import Tensor, nn


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3×3 convolution, batch norm, ReLU: the unit every built-in network is made of."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
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
