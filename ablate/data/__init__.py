"""Datasets: every one yields uint8 images (B, 3, H, W) and long labels (B, H, W) on the device."""

from ablate.data.digits import DIGIT_CLASS_NAMES, make_digit_scenes
from ablate.data.disk import DatasetError, DiskDataset, load_disk_splits, load_disk_test
from ablate.data.shapes import CLASS_NAMES, Scenes, ShapeKnobs, make_scenes
from ablate.data.splits import (
    Source,
    Split,
    Streamed,
    class_names,
    load_splits,
    load_test_split,
)

__all__ = [
    "CLASS_NAMES",
    "DIGIT_CLASS_NAMES",
    "DatasetError",
    "DiskDataset",
    "Scenes",
    "ShapeKnobs",
    "Source",
    "Split",
    "Streamed",
    "class_names",
    "load_disk_splits",
    "load_disk_test",
    "load_splits",
    "load_test_split",
    "make_digit_scenes",
    "make_scenes",
]
