"""Evaluation of a trained network on a split: the counts behind every `val/` metric.

A prediction is formed as segmentation papers report theirs: the whole image in one forward, or
overlapping crop windows whose logits are averaged (mmsegmentation's `slide` inference), either of
them optionally at several scales and mirrored, the views' softmax probabilities averaged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

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
from ablate.spec import Recipe

Autocast = Callable[[], AbstractContextManager[object]]

# Images are uint8 in [0, 255]; a network sees (x/255 − mean)/std per channel.
Stats = tuple[tuple[float, float, float], tuple[float, float, float]]  # (mean, std) per channel
CENTERED: Stats = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))  # networks trained from scratch
IMAGENET: Stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # torchvision's weights expect


def normalise(images: Tensor, stats: Stats = CENTERED) -> Tensor:
    """The input a network sees, in training and in evaluation alike."""
    mean = torch.tensor(stats[0], device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(stats[1], device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def input_stats(recipe: Recipe) -> Stats:
    """`data.normalize`: ImageNet's statistics for a pretrained backbone (what its weights were
    trained on), centred [0, 1] otherwise; `auto` picks by `model.args.pretrained`."""
    choice = recipe.data.normalize
    if choice == "auto":
        choice = "imagenet" if recipe.model.args.get("pretrained") else "centered"
    return IMAGENET if choice == "imagenet" else CENTERED


@dataclass(frozen=True)
class Inference:
    """How the prediction for an image is formed: a recipe's `eval` settings, resolved."""

    crop: tuple[int, int] | None = None  # slide window (h, w); None: the whole image at once
    stride: tuple[int, int] | None = None  # slide step (h, w)
    scales: tuple[float, ...] = (1.0,)  # the image is resized by each
    flip: bool = False  # each scale is also predicted mirrored left-right
    stats: Stats = CENTERED  # the input normalisation the network was trained with


def inference_for(recipe: Recipe) -> Inference:
    """The recipe's `eval` settings with their defaults filled in: the window is the training
    image size, the stride two thirds of the window (mmsegmentation's usual 512 → 341)."""
    e = recipe.eval
    scales, flip, stats = tuple(e.scales), e.flip, input_stats(recipe)
    if e.mode == "whole":
        return Inference(scales=scales, flip=flip, stats=stats)
    crop = e.crop or recipe.data.image_size
    stride = e.stride or (max(1, round(2 * crop[0] / 3)), max(1, round(2 * crop[1] / 3)))
    return Inference(crop, stride, scales, flip, stats)


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Where the windows along one side start, mmsegmentation's rule: every `stride` pixels, the
    last window moved back to end at the border (`size` ≥ `crop`: smaller images are padded)."""
    n = max(size - crop + stride - 1, 0) // stride + 1
    return [min(i * stride, size - crop) for i in range(n)]


def window_counts(size: tuple[int, int], crop: tuple[int, int], stride: tuple[int, int]) -> Tensor:
    """How many windows cover each pixel, (H, W): the product of the counts along each side,
    since the windows are every pair of a row start and a column start."""
    counts = []
    for n, c, s in zip(size, crop, stride, strict=True):
        starts = torch.tensor(window_starts(n, c, s))
        at = torch.arange(n)
        counts.append(((at >= starts[:, None]) & (at < starts[:, None] + c)).sum(0))
    return counts[0][:, None] * counts[1][None, :]


def _whole(model: nn.Module, x: Tensor, autocast: Autocast) -> Tensor:
    """Logits (B, C, H, W) of the normalised images `x` (B, 3, H, W), one forward."""
    with autocast():
        out = model(x)["out"]
    return F.interpolate(out.float(), x.shape[-2:], mode="bilinear")


def _slide(
    model: nn.Module,
    x: Tensor,
    crop: tuple[int, int],
    stride: tuple[int, int],
    chunk: int,
    autocast: Autocast,
) -> Tensor:
    """Logits (B, C, H, W) averaged over overlapping windows of `x` (B, 3, H, W). Windows go
    through the network `chunk` at a time (at least one position for every image of the batch)."""
    b, _, h, w = x.shape
    (ch, cw), (sh, sw) = crop, stride
    # Pad an image smaller than the window on the bottom and right; zero is the mean colour.
    x = F.pad(x, (0, max(cw - w, 0), 0, max(ch - h, 0)))
    hp, wp = x.shape[-2:]
    boxes = [(y, z) for y in window_starts(hp, ch, sh) for z in window_starts(wp, cw, sw)]
    per_forward = max(1, chunk // b)  # window positions per forward
    total: Tensor | None = None
    for i in range(0, len(boxes), per_forward):
        group = boxes[i : i + per_forward]
        windows = torch.cat([x[:, :, y : y + ch, z : z + cw] for y, z in group])  # (G·B, 3, ch, cw)
        logits = _whole(model, windows, autocast)  # (G·B, C, ch, cw)
        if total is None:
            total = logits.new_zeros(b, logits.shape[1], hp, wp)
        for (y, z), part in zip(group, logits.split(b), strict=True):
            total[:, :, y : y + ch, z : z + cw] += part
    assert total is not None  # there is always at least one window
    counts = window_counts((hp, wp), crop, stride).to(total.device)
    return (total / counts)[:, :, :h, :w]


def predict(
    model: nn.Module, images: Tensor, inference: Inference, chunk: int, autocast: Autocast
) -> Tensor:
    """Scores (B, C, H, W) of the uint8 images (B, 3, H, W) whose argmax is the prediction and
    whose softmax its probabilities. One view (scale 1, no flip): the network's logits. Several:
    log of the views' mean softmax, each view's logits resized back to H × W first."""
    x = normalise(images, inference.stats)
    h, w = x.shape[-2:]
    mirrors = (False, True) if inference.flip else (False,)
    views = len(inference.scales) * len(mirrors)
    result: Tensor | None = None
    for scale in inference.scales:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        scaled = x if size == (h, w) else F.interpolate(x, size, mode="bilinear")
        for mirrored in mirrors:
            view = scaled.flip(-1) if mirrored else scaled
            if inference.crop is None or inference.stride is None:
                logits = _whole(model, view, autocast)
            else:
                logits = _slide(model, view, inference.crop, inference.stride, chunk, autocast)
            if mirrored:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, (h, w), mode="bilinear")
            if views == 1:
                return logits
            # a running log-sum-exp: the mean of the probabilities without leaving log space
            logp = F.log_softmax(logits, 1)
            result = logp if result is None else torch.logaddexp(result, logp)
    assert result is not None
    return result - math.log(views)


def evaluate(
    model: nn.Module,
    split: Source,
    num_classes: int,
    names: list[str],
    batch_size: int,
    ignore_index: int,
    autocast: Autocast,
    boundary_width: int = 3,
    inference: Inference = Inference(),
) -> dict[str, float]:
    """One pass over a split, every count accumulated on the device: mIoU, per-class IoU, pixel
    accuracy, mean loss, boundary IoU (Cheng et al. 2021) and, where the data record instances,
    object IoU by size bucket. `inference` says how each prediction is formed (see `predict`);
    with several views the loss is the cross-entropy of their mean probabilities."""
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
            logits = predict(model, images, inference, batch_size, autocast)
            if logits.shape[-2:] != labels.shape[-2:]:
                logits = F.interpolate(logits, labels.shape[-2:], mode="bilinear")
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
