"""Real datasets read from disk in their standard layouts; 255 marks pixels to ignore.

Layouts under `root` (`load_disk_splits` checks them before anything is read):

    folder      images/{train,val}/*.png|jpg|jpeg and masks/{train,val}/<same stem>.png
                — or, without split folders, images/* and masks/<stem>.png, where every 5th image
                in name order is held out for validation. Mask pixel values are the class ids.
    cityscapes  leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png and
                gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png; the 34 label ids are mapped
                to the 19 train ids of the benchmark, every other id to 255.
    ade20k      ADEChallengeData2016/images/{training,validation}/*.jpg and
                ADEChallengeData2016/annotations/{training,validation}/<stem>.png (SceneParsing,
                150 classes): pixel 0 ("other") → 255, k → k − 1.
    voc         VOC2012/JPEGImages/<id>.jpg, VOC2012/SegmentationClass/<id>.png (palette PNG whose
                indices are the classes, 255 = object boundary) and
                VOC2012/ImageSets/Segmentation/{train,val}.txt listing the ids.

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

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ablate.errors import DatasetError

IGNORE_INDEX = 255
DEFAULT_SCALE_RANGE = (0.5, 2.0)  # the range DeepLab, PSPNet and MMSegmentation recipes use
_VAL_EVERY = 5  # flat `folder` layout: every 5th image in name order is validation
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

CITYSCAPES_CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip
VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
ADE20K_CLASS_NAMES = (  # objectInfo150 of the SceneParsing benchmark, first name of each entry
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
    "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van",
    "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light",
    "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower",
    "radiator", "glass", "clock", "flag",
)  # fmt: skip
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "cityscapes": CITYSCAPES_CLASS_NAMES,
    "ade20k": ADE20K_CLASS_NAMES,
    "voc": VOC_CLASS_NAMES,
}
NUM_CLASSES: dict[str, int] = {name: len(names) for name, names in CLASS_NAMES.items()}
DISK_DATASETS = ("folder", "cityscapes", "ade20k", "voc")

# label id → train id, from the `labels` table of cityscapesScripts (helpers/labels.py); the other
# ids (unlabeled, ego vehicle, ground, parking, rail track, guard rail, bridge, tunnel,
# polegroup, caravan, trailer, …) are ignored in the benchmark
_CITYSCAPES_TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip

_LAYOUTS = {
    "folder": "images/{train,val}/*.png|jpg|jpeg and masks/{train,val}/<stem>.png "
    "(or images/* and masks/<stem>.png)",
    "cityscapes": "leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and "
    "gtFine/{train,val}/<city>/*_gtFine_labelIds.png",
    "ade20k": "ADEChallengeData2016/images/{training,validation}/*.jpg and "
    "ADEChallengeData2016/annotations/{training,validation}/<stem>.png",
    "voc": "VOC2012/JPEGImages/<id>.jpg, VOC2012/SegmentationClass/<id>.png and "
    "VOC2012/ImageSets/Segmentation/{train,val}.txt",
}

Pairs = list[tuple[Path, Path]]  # (image file, mask file)


def disk_class_names(name: str, num_classes: int) -> list[str]:
    """Class names for metric keys; `folder` data have numeric names."""
    return list(CLASS_NAMES.get(name, tuple(str(i) for i in range(num_classes))))


def label_table(name: str) -> np.ndarray:
    """Lookup table (256,) uint8 from stored mask values to class ids (255 = ignore)."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    if name == "cityscapes":
        table[list(_CITYSCAPES_TRAIN_IDS)] = list(_CITYSCAPES_TRAIN_IDS.values())
    elif name == "ade20k":
        table[1:151] = np.arange(150)
    else:  # folder and voc store the class ids themselves
        table[:] = np.arange(256)
    return table


# --- layouts ---------------------------------------------------------------------------------


def _error(root: Path, name: str, found: str) -> DatasetError:
    return DatasetError(f"{root}: expected {_LAYOUTS[name]}; found {found}")


def _folder_at(root: Path, name: str, relative: str) -> Path:
    """root/relative, naming the first missing part when it is not there."""
    path = root
    for part in Path(relative).parts:
        path = path / part
        if not path.is_dir():
            raise _error(root, name, f"no {path.relative_to(root).as_posix()} folder")
    return path


def _with_masks(images: list[Path], mask_of: Callable[[Path], Path]) -> Pairs:
    pairs = []
    for image in images:
        mask = mask_of(image)
        if not mask.is_file():
            raise DatasetError(f"{image}: no mask; expected {mask}")
        pairs.append((image, mask))
    return pairs


def _folder_pairs(root: Path, split: str) -> Pairs:
    images_dir = _folder_at(root, "folder", "images")
    _folder_at(root, "folder", "masks")
    if (images_dir / "train").is_dir() or (images_dir / "val").is_dir():
        image_dir = _folder_at(root, "folder", f"images/{split}")
        mask_dir = _folder_at(root, "folder", f"masks/{split}")
        images = _image_files(image_dir)
    elif split not in ("train", "val"):
        raise _error(root, "folder", f"a {split!r} split needs images/{split} and masks/{split}")
    else:
        image_dir, mask_dir = images_dir, root / "masks"
        held_out = split == "val"
        images = [
            p
            for i, p in enumerate(_image_files(images_dir))
            if (i % _VAL_EVERY == _VAL_EVERY - 1) == held_out
        ]
    if not images:
        where = image_dir.relative_to(root).as_posix()
        raise _error(root, "folder", f"no {split} images in {where}")
    return _with_masks(images, lambda p: mask_dir / f"{p.stem}.png")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def _cityscapes_pairs(root: Path, split: str) -> Pairs:
    image_dir = _folder_at(root, "cityscapes", f"leftImg8bit/{split}")
    label_dir = _folder_at(root, "cityscapes", f"gtFine/{split}")
    images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
    if not images:
        raise _error(root, "cityscapes", f"no leftImg8bit/{split}/<city>/*_leftImg8bit.png")
    return _with_masks(
        images,
        lambda p: label_dir / p.parent.name / p.name.replace("_leftImg8bit", "_gtFine_labelIds"),
    )


def _ade20k_pairs(root: Path, split: str) -> Pairs:
    folder = {"train": "training", "val": "validation"}.get(split, split)
    image_dir = _folder_at(root, "ade20k", f"ADEChallengeData2016/images/{folder}")
    label_dir = _folder_at(root, "ade20k", f"ADEChallengeData2016/annotations/{folder}")
    images = sorted(image_dir.glob("*.jpg"))
    if not images:
        raise _error(root, "ade20k", f"no *.jpg in ADEChallengeData2016/images/{folder}")
    return _with_masks(images, lambda p: label_dir / f"{p.stem}.png")


def _voc_pairs(root: Path, split: str) -> Pairs:
    base = _folder_at(root, "voc", "VOC2012")
    image_dir = _folder_at(root, "voc", "VOC2012/JPEGImages")
    label_dir = _folder_at(root, "voc", "VOC2012/SegmentationClass")
    listing = base / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise _error(root, "voc", f"no VOC2012/ImageSets/Segmentation/{split}.txt")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not ids:
        raise _error(root, "voc", f"an empty VOC2012/ImageSets/Segmentation/{split}.txt")
    for name in ids:
        if not (image_dir / f"{name}.jpg").is_file():
            raise DatasetError(f"{listing}: lists {name} but {image_dir / name}.jpg is missing")
    return _with_masks([image_dir / f"{n}.jpg" for n in ids], lambda p: label_dir / f"{p.stem}.png")


_PAIRS: dict[str, Callable[[Path, str], Pairs]] = {
    "folder": _folder_pairs,
    "cityscapes": _cityscapes_pairs,
    "ade20k": _ade20k_pairs,
    "voc": _voc_pairs,
}


def list_pairs(name: str, root: str | Path, split: str) -> Pairs:
    """The (image, mask) files of one split, after checking the layout."""
    if name not in _PAIRS:
        raise DatasetError(f"unknown disk dataset {name!r}; expected one of {DISK_DATASETS}")
    if not split or not all(c.isalnum() or c in "_-" for c in split):
        raise DatasetError(f"a split is a folder name (letters, digits, _ and -), not {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise _error(root, name, "no such folder")
    return _PAIRS[name](root, split)


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
