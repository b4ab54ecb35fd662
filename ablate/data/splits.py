"""Turning a data spec into train and validation batches on the training device.

Generated data (`shapes`, `digits`) are rendered once per trial and held on the device as whole
splits; datasets on disk stream through a DataLoader with workers and pinned memory. Both give
the training loop the same thing: batches of uint8 images (B, 3, H, W) and long labels (B, H, W)
already on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ablate.data.digits import DIGIT_CLASS_NAMES, make_digit_scenes
from ablate.data.disk import (
    DiskDataset,
    disk_class_names,
    load_disk_splits,
    load_disk_test,
    make_loader,
)
from ablate.data.shapes import CLASS_NAMES, Scenes, ShapeKnobs, make_scenes

_CHUNK = 128  # scenes rendered per call: bounds peak memory for large images
_VAL_OFFSET = 10_000_000  # validation scenes are indices after every possible training one
_TEST_OFFSET = 2 * _VAL_OFFSET  # test scenes after every possible validation one
Batch = tuple[Tensor, Tensor, Tensor | None]  # images, labels, instances (or None)


@dataclass(frozen=True)
class Split:
    """A whole split, resident on the device: images (N, 3, H, W) uint8, labels (N, H, W) long,
    and, where the data record them, instance ids (N, H, W) uint8 (0 = none)."""

    images: Tensor
    labels: Tensor
    instances: Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def device(self) -> torch.device:
        return self.labels.device

    def batches(self, batch_size: int, order: torch.Generator | None = None) -> Iterator[Batch]:
        """In index order, or shuffled by `order` (a CPU generator)."""
        n = len(self)
        perm = torch.randperm(n, generator=order) if order is not None else torch.arange(n)
        perm = perm.to(self.labels.device)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            inst = self.instances[idx] if self.instances is not None else None
            yield self.images[idx], self.labels[idx], inst


@dataclass
class Streamed:
    """A dataset on disk, read by a DataLoader; batches are copied to the device without
    blocking (from pinned memory on CUDA)."""

    dataset: DiskDataset
    device: torch.device
    num_workers: int
    seed: int

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, batch_size: int, order: torch.Generator | None = None) -> Iterator[Batch]:
        shuffle = order is not None
        if shuffle:
            assert order is not None
            self.dataset.set_epoch(int(torch.randint(0, 2**31 - 1, (1,), generator=order)))
        loader = make_loader(
            self.dataset,
            batch_size,
            shuffle,
            self.seed,
            self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for images, labels in loader:
            yield (
                images.to(self.device, non_blocking=True),
                labels.to(self.device, non_blocking=True),
                None,
            )


Source = Split | Streamed


def _render(make: Callable[[range], Scenes], start: int, count: int) -> Split:
    parts = [
        make(range(i, min(i + _CHUNK, start + count))) for i in range(start, start + count, _CHUNK)
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
    root: str | None = None,
    num_workers: int = 2,
    knobs: ShapeKnobs | None = None,
) -> tuple[Source, Source]:
    """The train and validation splits. Generated scenes: validation takes the indices after
    the training ones, so the two never overlap and growing `train_size` keeps `val` apart.
    On disk: `image_size` is the crop size; train_size / val_size cap the number of files.
    `knobs` tune the `shapes` generator (None: its defaults)."""
    if name == "shapes":

        def shapes(indices: range) -> Scenes:
            return make_scenes(seed, indices, image_size, num_classes, device, knobs)

        return _render(shapes, 0, train_size), _render(shapes, _VAL_OFFSET, val_size)
    if name == "digits":

        def digits(split: str) -> Callable[[range], Scenes]:
            return lambda idx: make_digit_scenes(seed, idx, image_size, device, split=split)

        return _render(digits("train"), 0, train_size), _render(
            digits("val"), _VAL_OFFSET, val_size
        )
    if root is None:
        raise ValueError(f"dataset {name!r} needs data.root")
    train, val = load_disk_splits(
        name, Path(root), image_size, max_train=train_size, max_val=val_size, seed=seed
    )
    return (
        Streamed(train, device, num_workers, seed),
        Streamed(val, device, num_workers, seed),
    )


def load_test_split(
    name: str,
    num_classes: int,
    image_size: tuple[int, int],
    test_size: int,
    seed: int,
    device: torch.device,
    root: str | None = None,
    test_split: str | None = None,
    num_workers: int = 2,
    knobs: ShapeKnobs | None = None,
) -> Source | None:
    """The held-out test split, or None when the recipe has none. Generated scenes: `test_size`
    scenes at indices no training or validation scene can take. On disk: the folder split
    named `test_split`, at most `test_size` files (0: all)."""
    if name == "shapes" and test_size:
        return _render(
            lambda idx: make_scenes(seed, idx, image_size, num_classes, device, knobs),
            _TEST_OFFSET,
            test_size,
        )
    if name == "digits" and test_size:
        return _render(
            lambda idx: make_digit_scenes(seed, idx, image_size, device, split="val"),
            _TEST_OFFSET,
            test_size,
        )
    if root is None or test_split is None:
        return None
    dataset = load_disk_test(name, Path(root), test_split, image_size, test_size or None)
    return Streamed(dataset, device, num_workers, seed)


def class_names(name: str, num_classes: int) -> list[str]:
    """Human-readable class names, used in metric keys such as `val/iou/disc`."""
    if name == "shapes":
        return list(CLASS_NAMES[:num_classes])
    if name == "digits":
        return list(DIGIT_CLASS_NAMES)
    return disk_class_names(name, num_classes)
