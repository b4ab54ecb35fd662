"""User models that fail the pre-flight check in each way a user's code can, for
tests/test_bad_input.py (a model that fails only in training is tests/study/crashing_model.py)."""

import torch
from torch import nn

from ablate.models import pspnet_tiny


def build_raises(num_classes: int) -> nn.Module:
    raise RuntimeError("no weights at /models/backbone.pt\n(a second line the message leaves out)")


class _ForwardRaises(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.net = pspnet_tiny(num_classes, width=4)

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        raise ValueError("expected 4 input channels, got 3")


def build_forward_raises(num_classes: int) -> nn.Module:
    return _ForwardRaises(num_classes)


def build_needs_depth(num_classes: int, depth: int) -> nn.Module:
    return pspnet_tiny(num_classes, width=4, blocks=depth)


def build_any(num_classes: int, **args: object) -> nn.Module:
    """Takes any argument (a model with **kwargs), ignoring them."""
    return pspnet_tiny(num_classes, width=4)
