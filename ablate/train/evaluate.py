"""Evaluation of a trained network on a split: the counts behind every `val/` metric."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.data import Source
from ablate.metrics import (
    SHAPES_96_AREA_EDGES,
    boundary_counts,
    boundary_iou_from_counts,
    confusion_matrix,
    iou_per_class,
    pixel_accuracy,
    small_object_counts,
    small_object_iou,
)
from ablate.metrics import SHAPES_96_AREA_NAMES as SIZE_NAMES

# Images are uint8 in [0, 255]; the networks see (x/255 − 0.5)/0.25.
_MEAN, _STD = 0.5, 0.25


def normalise(images: Tensor) -> Tensor:
    """The input every network sees, in training and in evaluation alike."""
    return (images.float() / 255.0 - _MEAN) / _STD


def evaluate(
    model: nn.Module,
    split: Source,
    num_classes: int,
    names: list[str],
    batch_size: int,
    ignore_index: int,
    autocast: Callable[[], AbstractContextManager[object]],
    boundary_width: int = 3,
) -> dict[str, float]:
    """One pass over a split, every count accumulated on the device: mIoU, per-class IoU, pixel
    accuracy, mean loss, boundary IoU (Cheng et al. 2021) and, where the data record instances,
    object IoU by size bucket."""
    model.eval()
    dev = split.device
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long, device=dev)
    bands = torch.zeros(2, num_classes, dtype=torch.long, device=dev)
    edges: tuple[float, ...] = ()
    objects = torch.zeros(0, dtype=torch.long, device=dev)
    seen_instances = False
    loss_sum, n_valid = torch.zeros((), device=dev), 0
    with torch.no_grad():
        for images, labels, instances in split.batches(batch_size):
            with autocast():
                out = model(normalise(images))["out"]
            logits = F.interpolate(out.float(), labels.shape[-2:], mode="bilinear")
            loss_sum += F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
            n_valid += int((labels != ignore_index).sum())
            pred = logits.argmax(1)
            cm += confusion_matrix(pred, labels, num_classes, ignore_index)
            bands += boundary_counts(pred, labels, num_classes, boundary_width, ignore_index)
            if instances is not None:
                if not seen_instances:
                    edges = size_edges(labels.shape[-2:])
                    objects = torch.zeros(3, len(edges) - 1, dtype=torch.long, device=dev)
                    seen_instances = True
                objects += small_object_counts(
                    pred, labels, instances.long(), num_classes, edges, ignore_index=ignore_index
                )
    iou = iou_per_class(cm)
    boundary = boundary_iou_from_counts(bands)
    metrics = {
        "val/mIoU": float(torch.nanmean(iou)),
        "val/pixel_acc": pixel_accuracy(cm),
        "val/loss": float(loss_sum) / max(n_valid, 1),
        "val/boundary_iou": float(torch.nanmean(boundary)),
    }
    metrics.update({f"val/iou/{n}": float(v) for n, v in zip(names, iou.tolist(), strict=True)})
    metrics.update(
        {f"val/boundary_iou/{n}": float(v) for n, v in zip(names, boundary.tolist(), strict=True)}
    )
    if seen_instances:
        by_size = small_object_iou(objects)
        metrics.update(
            {
                f"val/small_iou/{n}": float(v)
                for n, v in zip(SIZE_NAMES, by_size.tolist(), strict=True)
            }
        )
        small = objects[:, :2].sum(dim=1)  # tiny and small objects pooled
        metrics["val/small_iou"] = float(small[0]) / float(small[1]) if small[1] > 0 else math.nan
    return metrics


def size_edges(image_size: Sequence[int]) -> tuple[float, ...]:
    """Object-size bucket edges in pixels, scaled from the 96×96 defaults to the image area."""
    scale = image_size[0] * image_size[1] / (96 * 96)
    return tuple(e * scale for e in SHAPES_96_AREA_EDGES)
