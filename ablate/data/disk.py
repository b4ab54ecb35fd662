"""Real datasets read from disk in their standard layouts; 255 marks pixels to ignore.

The layouts under `root` are records of `ablate.data.layouts`, each saying where the files are
and what the mask values mean; `load_disk_splits` checks the layout before anything is read.

Every sample comes out at the crop size, image uint8 (3, h, w) and labels long (h, w):

- training: a scale drawn uniformly from `scale_range`, a random crop (labels padded with 255
  and the image with 0 where the scaled image is smaller than the crop), a horizontal flip with
  probability ½. Images are resized bilinearly (antialiased), labels by nearest neighbour. The
  draws come from a generator seeded with (seed, epoch, index), so a run is reproducible whatever
  the number of loader workers.
- validation: scaled to fit inside the crop (aspect kept), then padded bottom/right with 255, so
  every pixel of the image is scored once and none is cropped away.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ablate.data.layouts import Pairs, layout, list_pairs
from ablate.errors import DatasetError

IGNORE_INDEX = 255
DEFAULT_SCALE_RANGE = (0.5, 2.0)  # the range DeepLab, PSPNet and MMSegmentation recipes use


def disk_class_names(name: str, num_classes: int) -> list[str]:
    """Class names for metric keys; `folder` data have numeric names."""
    names = layout(name).class_names
    return list(names) if names is not None else [str(i) for i in range(num_classes)]


def label_table(name: str) -> np.ndarray:
    """Lookup table (256,) uint8 from stored mask values to class ids (255 = ignore)."""
    ids = layout(name).label_ids
    if ids is None:  # the masks store the class ids themselves
        return np.arange(256, dtype=np.uint8)
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    table[list(ids)] = list(ids.values())
    return table


# --- reading and augmenting ------------------------------------------------------------------


def _resize(image: Tensor, labels: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Image bilinearly (antialiased when shrinking), labels by the nearest pixel centre."""
    h, w = labels.shape
    if (h, w) == size:
        return image, labels
    image = F.interpolate(image[None], size, mode="bilinear", antialias=True)[0]
    rows = ((torch.arange(size[0]) + 0.5) * h / size[0]).long().clamp(max=h - 1)
    cols = ((torch.arange(size[1]) + 0.5) * w / size[1]).long().clamp(max=w - 1)
    return image, labels[rows][:, cols]


def _pad_to(image: Tensor, labels: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Pad bottom/right up to at least `size`: image with 0, labels with 255."""
    ph, pw = max(size[0] - labels.shape[0], 0), max(size[1] - labels.shape[1], 0)
    if ph == pw == 0:
        return image, labels
    return F.pad(image, (0, pw, 0, ph), value=0), F.pad(labels, (0, pw, 0, ph), value=IGNORE_INDEX)


def augment(
    image: Tensor,
    labels: Tensor,
    crop_size: tuple[int, int],
    scale_range: tuple[float, float],
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Random scale, random crop (padding labels with 255), horizontal flip; always four draws
    from `generator` in that order (scale, top, left, flip)."""
    lo, hi = scale_range
    scale = lo + (hi - lo) * float(torch.rand((), generator=generator))
    h, w = labels.shape
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    image, labels = _pad_to(*_resize(image, labels, size), crop_size)
    ch, cw = crop_size
    top = int(torch.randint(labels.shape[0] - ch + 1, (), generator=generator))
    left = int(torch.randint(labels.shape[1] - cw + 1, (), generator=generator))
    image, labels = (
        image[:, top : top + ch, left : left + cw],
        labels[top : top + ch, left : left + cw],
    )
    if float(torch.rand((), generator=generator)) < 0.5:
        image, labels = image.flip(-1), labels.flip(-1)
    return image.contiguous(), labels.contiguous()


def fit_to(image: Tensor, labels: Tensor, crop_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Scale to fit inside `crop_size` keeping the aspect, then pad bottom/right (labels 255)."""
    h, w = labels.shape
    scale = min(crop_size[0] / h, crop_size[1] / w)
    size = (
        min(crop_size[0], max(1, round(h * scale))),
        min(crop_size[1], max(1, round(w * scale))),
    )
    return _pad_to(*_resize(image, labels, size), crop_size)


def _read_image(path: Path) -> Tensor:
    with Image.open(path) as img:
        array = np.array(img.convert("RGB"))  # (H, W, 3) uint8
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _read_mask(path: Path, image_size: tuple[int, int], table: np.ndarray) -> Tensor:
    with Image.open(path) as img:
        if img.size != image_size:
            (w, h), (iw, ih) = img.size, image_size
            raise DatasetError(f"{path}: mask is {w}×{h} but its image is {iw}×{ih}")
        array = np.array(img)  # palette ('P') masks give their indices, which are the classes
    if array.ndim != 2:
        raise DatasetError(f"{path}: a mask must have one channel of class ids, got {img.mode}")
    if array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise DatasetError(f"{path}: mask values must lie in 0–255")
        array = array.astype(np.uint8)
    return torch.from_numpy(table[array]).long()


class DiskDataset(Dataset[tuple[Tensor, Tensor]]):
    """(image uint8 (3, h, w), labels long (h, w)) pairs at `crop_size`, augmented when `train`.

    Augmentation is seeded by (seed, epoch, index): call `set_epoch` before each epoch. Loader
    workers are not persistent (see `make_loader`), so each epoch's workers see the new epoch."""

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path]],
        table: np.ndarray,
        crop_size: tuple[int, int],
        train: bool,
        seed: int = 0,
        scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
    ) -> None:
        if min(crop_size) < 1:
            raise ValueError(f"crop size must be positive, got {crop_size}")
        self.pairs = list(pairs)
        self.table = table
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.train = train
        self.seed = seed
        self.scale_range = scale_range
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def read(self, index: int) -> tuple[Tensor, Tensor]:
        """The stored image (3, H, W) uint8 and its class ids (H, W) long, untransformed."""
        image_path, mask_path = self.pairs[index]
        image = _read_image(image_path)
        h, w = image.shape[1:]
        return image, _read_mask(mask_path, (w, h), self.table)

    def generator(self, index: int) -> torch.Generator:
        """The generator of this sample's augmentation in the current epoch."""
        state = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(2)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, labels = self.read(index)
        if self.train:
            return augment(image, labels, self.crop_size, self.scale_range, self.generator(index))
        return fit_to(image, labels, self.crop_size)


class _EpochShuffle(Sampler[int]):
    """A permutation of the dataset drawn from (seed, dataset.epoch): reproducible per epoch."""

    def __init__(self, dataset: DiskDataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[int]:
        state = np.random.SeedSequence([self.seed, self.dataset.epoch]).generate_state(1)
        order = torch.randperm(
            len(self.dataset), generator=torch.Generator().manual_seed(int(state[0]))
        )
        return iter(order.tolist())


def make_loader(
    dataset: DiskDataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 2,
    pin_memory: bool = True,
    drop_last: bool = False,
) -> DataLoader[tuple[Tensor, Tensor]]:
    """A loader of (images (B, 3, h, w) uint8, labels (B, h, w) long) batches. Shuffling follows
    (seed, epoch); memory is pinned only when CUDA is there to use it. Workers are restarted each
    epoch (not persistent) so they pick up `dataset.set_epoch`."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=_EpochShuffle(dataset, seed) if shuffle else None,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),
        drop_last=drop_last,
        persistent_workers=False,
    )


def materialise(dataset: DiskDataset, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """Every sample stacked: images (N, 3, h, w) uint8 and labels (N, h, w) long on `device`.
    Meant for small splits (a validation set held on the device)."""
    samples = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([s[0] for s in samples]).to(device)
    labels = torch.stack([s[1] for s in samples]).to(device)
    return images, labels


def _subset(pairs: Pairs, limit: int | None) -> Pairs:
    """At most `limit` pairs, evenly spaced in name order (a small run still sees every city)."""
    if limit is None or limit >= len(pairs):
        return pairs
    if limit < 1:
        raise ValueError(f"a split limit must be at least 1, got {limit}")
    keep = np.linspace(0, len(pairs) - 1, limit).round().astype(int)
    return [pairs[i] for i in keep]


def load_disk_test(
    name: str, root: str | Path, split: str, crop_size: tuple[int, int], max_test: int | None
) -> DiskDataset:
    """A held-out test split of a disk dataset, read as validation is (no augmentation)."""
    pairs = _subset(list_pairs(name, root, split), max_test)
    return DiskDataset(pairs, label_table(name), crop_size, False, 0, DEFAULT_SCALE_RANGE)


def load_disk_splits(
    name: str,
    root: str | Path,
    crop_size: tuple[int, int],
    max_train: int | None = None,
    max_val: int | None = None,
    seed: int = 0,
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
) -> tuple[DiskDataset, DiskDataset]:
    """The train (augmented) and validation (fitted) datasets of `name` under `root`. The whole
    layout is checked first, so a mistake fails here with one message, not mid-training."""
    train_pairs = _subset(list_pairs(name, root, "train"), max_train)
    val_pairs = _subset(list_pairs(name, root, "val"), max_val)
    table = label_table(name)
    return (
        DiskDataset(train_pairs, table, crop_size, True, seed, scale_range),
        DiskDataset(val_pairs, table, crop_size, False, seed, scale_range),
    )
