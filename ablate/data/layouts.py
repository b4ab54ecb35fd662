"""The datasets read from disk, one `Layout` record each: where a layout keeps its files, what its
mask values mean, and its classes. Every list of disk datasets (`ablate.names.DATASETS`, the
class counts the spec enforces, the names error messages offer) is read from `LAYOUTS`.

A new layout is a finder function (its docstring describes the files) and one record in
`LAYOUTS`. This module imports nothing heavy: the spec reads it to check a study file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ablate.errors import DatasetError

_VAL_EVERY = 5  # flat `folder` layout: every 5th image in name order is validation
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

Pairs = list[tuple[Path, Path]]  # (image file, mask file)


@dataclass(frozen=True)
class Layout:
    """A dataset stored in a standard layout under a root folder."""

    name: str  # what `data.name` says
    expected: str  # the files `find` looks for, as error messages quote them
    find: Callable[[Path, str], Pairs]  # (root, split) → pairs; raises _NotFound
    class_names: tuple[str, ...] | None  # None: the mask values are the classes, named by number
    label_ids: Mapping[int, int] | None = None  # stored value → class id, others 255; None: same

    @property
    def num_classes(self) -> int | None:
        """Fixed by the dataset, or None where the study file says (`folder`)."""
        return None if self.class_names is None else len(self.class_names)


class _NotFound(Exception):
    """What a finder found instead of its layout; `list_pairs` words it with `Layout.expected`."""


def _folder_at(root: Path, relative: str) -> Path:
    """root/relative, naming the first missing part when it is not there."""
    path = root
    for part in Path(relative).parts:
        path = path / part
        if not path.is_dir():
            raise _NotFound(f"no {path.relative_to(root).as_posix()} folder")
    return path


def _with_masks(images: list[Path], mask_of: Callable[[Path], Path]) -> Pairs:
    pairs = []
    for image in images:
        mask = mask_of(image)
        if not mask.is_file():
            raise DatasetError(f"{image}: no mask; expected {mask}")
        pairs.append((image, mask))
    return pairs


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


def _folder_pairs(root: Path, split: str) -> Pairs:
    """images/{train,val}/*.png|jpg|jpeg and masks/{train,val}/<same stem>.png — or, without
    split folders, images/* and masks/<stem>.png, where every 5th image in name order is held
    out for validation. Mask pixel values are the class ids."""
    images_dir = _folder_at(root, "images")
    _folder_at(root, "masks")
    if (images_dir / "train").is_dir() or (images_dir / "val").is_dir():
        image_dir = _folder_at(root, f"images/{split}")
        mask_dir = _folder_at(root, f"masks/{split}")
        images = _image_files(image_dir)
    elif split not in ("train", "val"):
        raise _NotFound(f"a {split!r} split needs images/{split} and masks/{split}")
    else:
        image_dir, mask_dir = images_dir, root / "masks"
        held_out = split == "val"
        images = [
            p
            for i, p in enumerate(_image_files(images_dir))
            if (i % _VAL_EVERY == _VAL_EVERY - 1) == held_out
        ]
    if not images:
        raise _NotFound(f"no {split} images in {image_dir.relative_to(root).as_posix()}")
    return _with_masks(images, lambda p: mask_dir / f"{p.stem}.png")


def _cityscapes_pairs(root: Path, split: str) -> Pairs:
    """leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png and
    gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png; the 34 label ids are mapped to the 19
    train ids of the benchmark, every other id to 255."""
    image_dir = _folder_at(root, f"leftImg8bit/{split}")
    label_dir = _folder_at(root, f"gtFine/{split}")
    images = sorted(image_dir.glob("*/*_leftImg8bit.png"))
    if not images:
        raise _NotFound(f"no leftImg8bit/{split}/<city>/*_leftImg8bit.png")
    return _with_masks(
        images,
        lambda p: label_dir / p.parent.name / p.name.replace("_leftImg8bit", "_gtFine_labelIds"),
    )


def _ade20k_pairs(root: Path, split: str) -> Pairs:
    """ADEChallengeData2016/images/{training,validation}/*.jpg and
    ADEChallengeData2016/annotations/{training,validation}/<stem>.png (SceneParsing, 150
    classes): pixel 0 ("other") → 255, k → k − 1."""
    folder = {"train": "training", "val": "validation"}.get(split, split)
    image_dir = _folder_at(root, f"ADEChallengeData2016/images/{folder}")
    label_dir = _folder_at(root, f"ADEChallengeData2016/annotations/{folder}")
    images = sorted(image_dir.glob("*.jpg"))
    if not images:
        raise _NotFound(f"no *.jpg in ADEChallengeData2016/images/{folder}")
    return _with_masks(images, lambda p: label_dir / f"{p.stem}.png")


def _voc_pairs(root: Path, split: str) -> Pairs:
    """VOC2012/JPEGImages/<id>.jpg, VOC2012/SegmentationClass/<id>.png (palette PNG whose
    indices are the classes, 255 = object boundary) and
    VOC2012/ImageSets/Segmentation/{train,val}.txt listing the ids."""
    base = _folder_at(root, "VOC2012")
    image_dir = _folder_at(root, "VOC2012/JPEGImages")
    label_dir = _folder_at(root, "VOC2012/SegmentationClass")
    listing = base / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise _NotFound(f"no VOC2012/ImageSets/Segmentation/{split}.txt")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not ids:
        raise _NotFound(f"an empty VOC2012/ImageSets/Segmentation/{split}.txt")
    for name in ids:
        if not (image_dir / f"{name}.jpg").is_file():
            raise DatasetError(f"{listing}: lists {name} but {image_dir / name}.jpg is missing")
    return _with_masks([image_dir / f"{n}.jpg" for n in ids], lambda p: label_dir / f"{p.stem}.png")


# fmt: off
LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "folder",
        "images/{train,val}/*.png|jpg|jpeg and masks/{train,val}/<stem>.png "
        "(or images/* and masks/<stem>.png)",
        _folder_pairs,
        class_names=None,
    ),
    Layout(
        "cityscapes",
        "leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and "
        "gtFine/{train,val}/<city>/*_gtFine_labelIds.png",
        _cityscapes_pairs,
        class_names=(
            "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
            "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
            "bus", "train", "motorcycle", "bicycle",
        ),
        # label id → train id, from the `labels` table of cityscapesScripts (helpers/labels.py);
        # the other ids (unlabeled, ego vehicle, ground, parking, rail track, guard rail, bridge,
        # tunnel, polegroup, caravan, trailer, …) are ignored in the benchmark
        label_ids={
            7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
            25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
        },
    ),
    Layout(
        "ade20k",
        "ADEChallengeData2016/images/{training,validation}/*.jpg and "
        "ADEChallengeData2016/annotations/{training,validation}/<stem>.png",
        _ade20k_pairs,
        class_names=(  # objectInfo150 of the SceneParsing benchmark, first name of each entry
            "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
            "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain",
            "plant", "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house",
            "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk", "rock",
            "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column",
            "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
            "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case",
            "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
            "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop",
            "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
            "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
            "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
            "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
            "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
            "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent",
            "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name",
            "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket",
            "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
            "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
            "glass", "clock", "flag",
        ),
        label_ids={k + 1: k for k in range(150)},  # 0 is "other", not a class
    ),
    Layout(
        "voc",
        "VOC2012/JPEGImages/<id>.jpg, VOC2012/SegmentationClass/<id>.png and "
        "VOC2012/ImageSets/Segmentation/{train,val}.txt",
        _voc_pairs,
        class_names=(
            "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
            "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
            "sheep", "sofa", "train", "tvmonitor",
        ),
    ),
)
# fmt: on


def layout(name: str) -> Layout:
    """The record of disk dataset `name`."""
    for candidate in LAYOUTS:
        if candidate.name == name:
            return candidate
    names = tuple(candidate.name for candidate in LAYOUTS)
    raise DatasetError(f"unknown disk dataset {name!r}; expected one of {names}")


def list_pairs(name: str, root: str | Path, split: str) -> Pairs:
    """The (image, mask) files of one split, after checking the layout."""
    found = layout(name)
    if not split or not all(c.isalnum() or c in "_-" for c in split):
        raise DatasetError(f"a split is a folder name (letters, digits, _ and -), not {split!r}")
    root = Path(root)
    try:
        if not root.is_dir():
            raise _NotFound("no such folder")
        return found.find(root, split)
    except _NotFound as exc:
        raise DatasetError(f"{root}: expected {found.expected}; found {exc}") from None
