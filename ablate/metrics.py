"""Segmentation metrics as counts accumulated on the device: the confusion matrix (mIoU, pixel
accuracy), boundary IoU and object IoU per size bucket."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def confusion_matrix(
    pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255
) -> Tensor:
    """Counts (C, C), rows = target class, columns = predicted class; ignored pixels skipped."""
    valid = target != ignore_index
    index = target[valid] * num_classes + pred[valid]
    counts = torch.bincount(index.flatten(), minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes)


def iou_per_class(cm: Tensor) -> Tensor:
    """TP / (TP + FP + FN) per class; NaN for a class absent from both target and prediction."""
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(cm: Tensor) -> float:
    """Mean of the per-class IoU over the classes present in target or prediction."""
    return float(torch.nanmean(iou_per_class(cm)))


def pixel_accuracy(cm: Tensor) -> float:
    """Share of valid pixels predicted correctly (NaN when there is none)."""
    total = cm.sum()
    return float(cm.diagonal().sum().double() / total) if total > 0 else float("nan")


# --- boundary IoU -----------------------------------------------------------------------------


def _and_window(x: Tensor, size: int, dim: int) -> Tensor:
    """AND over every run of `size` consecutive entries along `dim` (the result is size − 1
    shorter): a 1-D binary erosion. Doubling spans, so O(log size) tensor ops, not O(size)."""
    span = 1
    while 2 * span <= size:  # x[i] = AND of the span entries from i
        n = x.shape[dim]
        x = x.narrow(dim, 0, n - span) & x.narrow(dim, span, n - span)
        span *= 2
    rest = size - span  # 0 <= rest < span: two overlapping windows cover `size` entries
    if rest:
        n = x.shape[dim]
        x = x.narrow(dim, 0, n - rest) & x.narrow(dim, rest, n - rest)
    return x


def _bands(labels: Tensor, num_classes: int, width: int) -> Tensor:
    """Inner boundary band of every class mask, (B, C, H, W) bool: the mask minus its erosion by
    a (2·width+1)² square, with everything outside the image taken as background."""
    classes = torch.arange(num_classes, device=labels.device).view(1, -1, 1, 1)
    masks = labels.unsqueeze(1) == classes  # (B, C, H, W), every class at once
    padded = F.pad(masks, (width, width, width, width), value=False)  # outside = background
    # A square erodes separably: rows, then columns. Shifted ANDs of bool tensors measured ~30×
    # faster than max_pool2d on the complement on the CPU, and max_pool2d has no bool or integer
    # kernel on CUDA.
    size = 2 * width + 1
    eroded = _and_window(_and_window(padded, size, -1), size, -2)  # (B, C, H, W)
    return masks & ~eroded


def _as_batch(x: Tensor) -> Tensor:
    """Label maps as (B, H, W): a single (H, W) map becomes a batch of one."""
    return x.unsqueeze(0) if x.dim() == 2 else x


def _ratio(counts: Tensor) -> Tensor:
    """counts[0] / counts[1] in float64; NaN where the denominator is 0."""
    num, den = counts[0].double(), counts[1].double()
    return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(den, float("nan")))


def boundary_counts(
    pred: Tensor, target: Tensor, num_classes: int, width: int = 3, ignore_index: int = 255
) -> Tensor:
    """Boundary-IoU counts (2, C) long: row 0 = |band(target_c) ∩ band(pred_c)|, row 1 =
    |band(target_c) ∪ band(pred_c)|, over the non-ignored pixels of the batch.

    Counts add up: summing them over batches and dividing at the end (`boundary_iou_from_counts`)
    gives exactly the value of one call on the concatenated batch, because each image is eroded on
    its own. Ignored target pixels do not belong to any class's target mask (so a class's target
    band also runs along ignore regions), and are then left out of both counts.
    """
    if width < 1:
        raise ValueError(f"width must be at least 1 pixel, got {width}")
    pred, target = _as_batch(pred), _as_batch(target)
    valid = (target != ignore_index).unsqueeze(1)  # (B, 1, H, W)
    band_t = _bands(target, num_classes, width)
    band_p = _bands(pred, num_classes, width)
    inter = (band_t & band_p & valid).sum(dim=(0, 2, 3))
    union = ((band_t | band_p) & valid).sum(dim=(0, 2, 3))
    return torch.stack([inter, union])  # (2, C)


def boundary_iou_from_counts(counts: Tensor) -> Tensor:
    """Per-class boundary IoU (C,) float64 from `boundary_counts` (summed over batches);
    NaN where the union is empty."""
    return _ratio(counts)


def boundary_iou(
    pred: Tensor, target: Tensor, num_classes: int, width: int = 3, ignore_index: int = 255
) -> Tensor:
    """Boundary IoU per class (C,) float64 over the whole batch (Cheng et al., "Boundary IoU:
    Improving Object-Centric Image Segmentation Evaluation", CVPR 2021).

    The band of a mask is the mask minus its erosion by a (2·width+1)² square, the image's outside
    counting as background (so an object cut by the border has a band along it, as in the
    authors' code, which pads with zeros before eroding); value = |band(target_c) ∩ band(pred_c)|
    / |band(target_c) ∪ band(pred_c)| over pixels whose target is not ignored; NaN where the union
    is empty (class absent from both). Unlike mask IoU it does not saturate on large objects:
    only the pixels within `width` of a contour count, so it measures how well edges are placed.
    `width` is in pixels (the paper uses 2% of the image diagonal: 2.7 px at 96×96).
    """
    return _ratio(boundary_counts(pred, target, num_classes, width, ignore_index))


# --- small-object IoU -------------------------------------------------------------------------

# Area buckets (visible pixels of an object) for `shapes` at 96×96: tiny < 64 px (under 8×8),
# small < 256 (16×16), medium < 1024 (32×32), large beyond. Each edge doubles the side, matching
# the log-uniform object sizes of `shapes`; on 512 scenes (seed 0) the four buckets hold 33%,
# 26%, 24% and 17% of the 2,437 objects, so none is starved. For other image sizes scale the
# edges with the pixel count (COCO's 32² / 96² at ~640×480 would be ~31 / ~276 px here).
SHAPES_96_AREA_EDGES: tuple[float, ...] = (0.0, 64.0, 256.0, 1024.0, math.inf)
SHAPES_96_AREA_NAMES: tuple[str, ...] = ("tiny", "small", "medium", "large")


def small_object_counts(
    pred: Tensor,
    target: Tensor,
    instances: Tensor,
    num_classes: int,
    edges: Sequence[float] = SHAPES_96_AREA_EDGES,
    margin: int = 3,
    ignore_index: int = 255,
) -> Tensor:
    """Per-size-bucket object IoU counts (3, n_buckets) long: row 0 = intersection, row 1 =
    union, row 2 = number of objects; bucket i holds objects with edges[i] <= area < edges[i+1].

    An object is one (image, instance id) pair with id > 0 (ids are per image); its area is its
    number of non-ignored pixels and its class c is the target class of those pixels (an object
    is assumed to carry one class; the largest class id is taken otherwise). Its window is its
    bounding box grown by `margin` pixels on every side (clipped to the image). Then

        intersection = pixels of the object predicted c
        union        = area + pixels of the window predicted c whose target is another,
                       non-ignored class

    i.e. the object's mask IoU with the class-c prediction, seen through its window; pixels of
    other class-c regions in the window are neither hit nor false alarm. Why: per-object recall
    alone rewards predicting c everywhere, and a class's global false positives cannot be
    attributed to an object size; a false positive next to an object (spill-over, a blob where
    the object is) is charged to that object. The window grows with the object, so a large
    object's distant false positives still count against it, while the margin keeps a tiny
    object's spill-over in view. Counts of a bucket are pooled over its objects (sum of
    intersections / sum of unions), so they add up over batches like a confusion matrix.
    A false positive near several objects counts once for each.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    bounds = torch.as_tensor(edges, dtype=torch.float64)
    if bounds.numel() < 2 or not bool((bounds[1:] > bounds[:-1]).all()):
        raise ValueError(f"edges must be at least two increasing numbers, got {tuple(edges)}")
    pred, target, instances = _as_batch(pred), _as_batch(target), _as_batch(instances)
    batch, height, width = target.shape
    dev = target.device
    valid = target != ignore_index
    inst = torch.where(valid, instances, 0)  # ignored pixels belong to no object
    n_ids = int(inst.max()) + 1 if inst.numel() else 1  # one host sync
    n = batch * n_ids  # object key = image index · n_ids + instance id
    pix = inst.flatten().nonzero().squeeze(1)  # (P,) flat index of every object pixel
    k = pix // (height * width) * n_ids + inst.flatten()[pix]  # (P,) its object key
    ys, xs = pix // width % height, pix % width

    def reduce(values: Tensor, how: str, init: int) -> Tensor:  # per-key amin / amax, (n,)
        out = torch.full((n,), init, dtype=torch.long, device=dev)
        return out.scatter_reduce(0, k, values, how, include_self=False)

    area = torch.bincount(k, minlength=n)  # (n,)
    cls = reduce(target.flatten()[pix], "amax", 0)
    hit = torch.bincount(k[pred.flatten()[pix] == cls[k]], minlength=n)
    y0 = (reduce(ys, "amin", height) - margin).clamp(min=0)
    y1 = (reduce(ys, "amax", -1) + margin).clamp(max=height - 1)
    x0 = (reduce(xs, "amin", width) - margin).clamp(min=0)
    x1 = (reduce(xs, "amax", -1) + margin).clamp(max=width - 1)

    # False-positive pixels per class, (B, C, H, W), and their summed-area table (B, C, H+1, W+1):
    # any window's count is then four lookups, so every object is served at once.
    classes = torch.arange(num_classes, device=dev).view(1, -1, 1, 1)
    wrong = (pred.unsqueeze(1) == classes) & (target.unsqueeze(1) != classes) & valid.unsqueeze(1)
    table = F.pad(wrong.cumsum(-2, dtype=torch.int32).cumsum(-1, dtype=torch.int32), (1, 0, 1, 0))
    ids = (area > 0).nonzero().squeeze(1)  # keys that are objects
    b, c = ids // n_ids, cls[ids]
    y0, y1, x0, x1 = y0[ids], y1[ids] + 1, x0[ids], x1[ids] + 1
    false_pos = (
        table[b, c, y1, x1] - table[b, c, y0, x1] - table[b, c, y1, x0] + table[b, c, y0, x0]
    ).long()

    a = area[ids]
    inside = (a >= bounds[0].item()) & (a < bounds[-1].item())
    bucket = torch.bucketize(a.double(), bounds[1:-1].to(dev), right=True)[inside]
    per_object = torch.stack([hit[ids], a + false_pos, torch.ones_like(a)])[:, inside]  # (3, N)
    counts = torch.zeros(3, bounds.numel() - 1, dtype=torch.long, device=dev)
    return counts.index_add_(1, bucket, per_object)


def small_object_iou(counts: Tensor) -> Tensor:
    """Object IoU per size bucket (n_buckets,) float64 from `small_object_counts` (summed over
    batches); NaN for a bucket without objects."""
    return _ratio(counts)
