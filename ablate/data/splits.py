"""Turning a data spec into train and validation splits held on the training device."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ablate.data.shapes import CLASS_NAMES, make_scenes

_CHUNK = 128  # scenes rendered per call: bounds peak memory for large images


@dataclass(frozen=True)
class Split:
    """A whole split, resident on the device: images (N, 3, H, W) uint8, labels (N, H, W) long,
    and, where the data record them, instance ids (N, H, W) uint8 (0 = none)."""

    images: Tensor
    labels: Tensor
    instances: Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _render(
    seed: int, start: int, count: int, size: tuple[int, int], num_classes: int, device: torch.device
) -> Split:
    parts = [
        make_scenes(seed, range(i, min(i + _CHUNK, start + count)), size, num_classes, device)
        for i in range(start, start + count, _CHUNK)
    ]
    return Split(
        torch.cat([p.images for p in parts]),
        torch.cat([p.labels for p in parts]),
        torch.cat([p.instances for p in parts]).to(torch.uint8),
    )


def load_splits(
    name: str,
    num_classes: int,
    image_size: tuple[int, int],
    train_size: int,
    val_size: int,
    seed: int,
    device: torch.device,
) -> tuple[Split, Split]:
    """The train and validation splits. For `shapes` the validation scenes are the indices after
    the training ones, so the two never overlap and growing `train_size` keeps `val` apart."""
    if name != "shapes":
        raise ValueError(f"unknown dataset {name!r}")
    train = _render(seed, 0, train_size, image_size, num_classes, device)
    val = _render(seed, 10_000_000, val_size, image_size, num_classes, device)
    return train, val


def class_names(name: str, num_classes: int) -> list[str]:
    """Human-readable class names, used in metric keys such as `val/iou/disc`."""
    if name == "shapes":
        return list(CLASS_NAMES[:num_classes])
    return [str(i) for i in range(num_classes)]
