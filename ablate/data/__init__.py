"""Datasets: every one yields images (B, 3, H, W) uint8 and labels (B, H, W) long on the device."""

from ablate.data.shapes import CLASS_NAMES, Scenes, make_scenes
from ablate.data.splits import Split, class_names, load_splits

__all__ = ["CLASS_NAMES", "Scenes", "Split", "class_names", "load_splits", "make_scenes"]
