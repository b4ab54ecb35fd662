"""A user model for the import-path test: one conv, the contract's three outputs."""

import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, num_classes: int, channels: int) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, channels, 3, padding=1)
        self.cls = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        f = self.body(x)
        return {"out": self.cls(f), "aux": {}, "embed": f}


def build(num_classes: int, channels: int = 8) -> nn.Module:
    return Tiny(num_classes, channels)


class NoEmbed(Tiny):
    def forward(self, x: torch.Tensor) -> dict[str, object]:
        return {"out": self.cls(self.body(x)), "aux": {}}


def build_without_embed(num_classes: int) -> nn.Module:
    return NoEmbed(num_classes, 4)
