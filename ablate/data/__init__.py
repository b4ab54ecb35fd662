"""Datasets: every one yields uint8 images (B, 3, H, W) and long labels (B, H, W) on the device.

The spec reads the disk layouts (`ablate.data.layouts`) without torch, and Python runs this file
before any module of the package: so the names below, which need torch, are imported when first
asked for rather than here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
_MODULES = ("digits", "disk", "shapes", "splits")  # the modules imported above


def __getattr__(name: str) -> object:
    """A name of `__all__`, importing its module (and torch) when it is first asked for."""
    if name in __all__:
        for module in _MODULES:
            found = vars(importlib.import_module(f"{__name__}.{module}")).get(name)
            if found is not None:
                return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
