"""A user model that can crash in training (not at the pre-flight forward), for retry tests."""

import os
import signal

import torch
from torch import nn

from ablate.models import pspnet_tiny


class Crashing(nn.Module):
    def __init__(self, num_classes: int, crash: bool) -> None:
        super().__init__()
        self.net = pspnet_tiny(num_classes, width=8)
        self.crash = crash

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        if self.crash and self.training:
            raise RuntimeError("boom on purpose")
        return self.net(x)  # type: ignore[no-any-return]


def build(num_classes: int, crash: bool = False) -> nn.Module:
    return Crashing(num_classes, crash)


class KillsItself(nn.Module):
    """SIGKILLs its own process at its first training step (a segfault, the kernel's OOM
    killer) the first `times` times it trains, counted in the file `marker`; then trains."""

    def __init__(self, num_classes: int, marker: str, times: int) -> None:
        super().__init__()
        self.net = pspnet_tiny(num_classes, width=8)
        self.marker, self.times = marker, times

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        if self.training:
            killed = os.path.getsize(self.marker) if os.path.exists(self.marker) else 0
            if killed < self.times:
                with open(self.marker, "a") as f:
                    f.write("x")
                os.kill(os.getpid(), signal.SIGKILL)
        return self.net(x)  # type: ignore[no-any-return]


def build_killer(num_classes: int, marker: str, times: int = 1) -> nn.Module:
    return KillsItself(num_classes, marker, times)


class GoesNaN(nn.Module):
    """Its logits turn NaN in training from the `at`-th step on: a loss that diverges, within
    the learning rates a study file allows."""

    def __init__(self, num_classes: int, at: int) -> None:
        super().__init__()
        self.net = pspnet_tiny(num_classes, width=8)
        self.at, self.steps = at, 0

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        out: dict[str, object] = self.net(x)
        if self.training:
            self.steps += 1
            if self.steps >= self.at:
                out = {**out, "out": out["out"] * float("nan")}  # type: ignore[operator]
        return out


def build_nan(num_classes: int, at: int = 2) -> nn.Module:
    return GoesNaN(num_classes, at)
