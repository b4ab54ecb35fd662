import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import binary_erosion

from ablate.data.shapes import make_scenes
from ablate.metrics import (
    SHAPES_96_AREA_EDGES,
    SHAPES_96_AREA_NAMES,
    boundary_counts,
    boundary_iou,
    confusion_matrix,
    iou_per_class,
    mean_iou,
    pixel_accuracy,
    small_object_counts,
    small_object_iou,
)


def test_confusion_matrix_counts_target_rows_prediction_columns_and_skips_ignored() -> None:
    target = torch.tensor([[0, 0, 1, 2], [2, 255, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 2], [1, 0, 1, 0]])
    cm = confusion_matrix(pred, target, 3)
    expected = torch.tensor([[1, 1, 0], [1, 2, 0], [0, 1, 1]])
    assert torch.equal(cm, expected)


def test_iou_from_a_hand_built_matrix() -> None:
    cm = torch.tensor([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    iou = iou_per_class(cm)
    assert math.isclose(iou[0], 5 / (5 + 2 + 1))
    assert math.isclose(iou[1], 3 / (3 + 1 + 2))
    assert math.isnan(iou[2])  # absent from target and prediction
    assert math.isclose(mean_iou(cm), (5 / 8 + 3 / 6) / 2)
    assert math.isclose(pixel_accuracy(cm), 8 / 11)


def test_class_predicted_but_absent_from_target_has_zero_iou() -> None:
    cm = torch.tensor([[3, 1], [0, 0]])
    assert iou_per_class(cm)[1] == 0.0


def test_empty_matrix_gives_nan_accuracy() -> None:
    assert math.isnan(pixel_accuracy(torch.zeros(2, 2, dtype=torch.long)))


# --- boundary IoU -----------------------------------------------------------------------------


def _square(size: int, top: int, left: int, side: int, cls: int = 1) -> torch.Tensor:
    """One (H, W) label map: background 0 and a side × side square of `cls` at (top, left)."""
    labels = torch.zeros(size, size, dtype=torch.long)
    labels[top : top + side, left : left + side] = cls
    return labels


def _band_size(labels: torch.Tensor, num_classes: int, width: int) -> torch.Tensor:
    """|band| of every class: the union count when prediction and target agree."""
    return boundary_counts(labels, labels, num_classes, width)[1]


def test_boundary_iou_of_a_square_shifted_by_one_pixel_matches_the_hand_count() -> None:
    # 10×10 image, 5×5 square at rows/cols 2..6; prediction shifted right to cols 3..7. width=1.
    target, pred = _square(10, 2, 2, 5), _square(10, 2, 3, 5)
    counts = boundary_counts(pred, target, 2, width=1)
    # class 1: each band is the square's 16-pixel ring; they share the top and bottom rows at
    # cols 3..6 (4 + 4 = 8 pixels); union 16 + 16 − 8 = 24.
    # class 0: each band is the 36-pixel image border plus the 24-pixel ring around its square;
    # the rings share rows 1 and 7 at cols 2..7 (6 + 6 = 12): inter 48, union 60 + 60 − 48 = 72.
    assert counts.tolist() == [[48, 8], [72, 24]]
    iou = boundary_iou(pred, target, 2, width=1)
    assert iou.dtype == torch.float64
    assert torch.allclose(iou, torch.tensor([48 / 72, 8 / 24], dtype=torch.float64))


def test_object_touching_the_image_border_has_a_band_along_the_border() -> None:
    # 5×5 square in the top-left corner: outside counts as background, so the erosion leaves
    # only rows/cols 1..3 (9 pixels) and the band is the full 16-pixel ring, border side included.
    labels = _square(10, 0, 0, 5)
    assert _band_size(labels, 2, width=1)[1] == 25 - 9
    # a class covering the whole image has the image's outer ring as its band
    full = torch.zeros(8, 8, dtype=torch.long)
    assert _band_size(full, 1, width=1)[0] == 64 - 36


def test_band_grows_with_width_until_it_covers_the_object() -> None:
    labels = _square(15, 4, 4, 7)  # 49 pixels
    sizes = [int(_band_size(labels, 2, width)[1]) for width in (1, 2, 3, 4)]
    assert sizes == [49 - 25, 49 - 9, 49 - 1, 49]


def test_width_changes_the_boundary_iou_of_a_shifted_square() -> None:
    target, pred = _square(20, 5, 5, 9), _square(20, 5, 6, 9)
    narrow = boundary_iou(pred, target, 2, width=1)[1]
    wide = boundary_iou(pred, target, 2, width=3)[1]
    # a one-pixel shift misses most of a 1-pixel band but little of a 3-pixel one
    assert narrow < wide
    assert math.isclose(narrow, 16 / 48)  # rings of 32 share 2 × 8 pixels of their top/bottom rows


def test_boundary_iou_skips_ignored_target_pixels() -> None:
    target, pred = _square(10, 2, 2, 5), _square(10, 2, 3, 5)
    # col 7 rows 2..6: predicted band pixels, target background; ignoring them leaves the class-1
    # target mask (and so its band) as it was and takes 5 pixels out of the union.
    target[2:7, 7] = 255
    counts = boundary_counts(pred, target, 2, width=1)
    assert counts[:, 1].tolist() == [8, 24 - 5]
    all_ignored = torch.full((6, 6), 255)
    assert boundary_counts(pred[:6, :6], all_ignored, 2).sum() == 0


def test_boundary_iou_is_nan_for_a_class_absent_from_both_and_zero_when_only_predicted() -> None:
    target = _square(10, 2, 2, 5)
    pred = target.clone()
    pred[0:2, 0:2] = 2  # class 2: predicted only
    iou = boundary_iou(pred, target, 4, width=1)
    assert iou[2] == 0.0
    assert math.isnan(iou[3])  # class 3: in neither


def test_boundary_counts_summed_over_batches_equal_one_call_on_the_whole_batch() -> None:
    gen = torch.Generator().manual_seed(0)
    target, pred = _blocky_labels(gen, 6, 24, 4), _blocky_labels(gen, 6, 24, 4)
    target[torch.rand(target.shape, generator=gen) < 0.05] = 255
    parts = torch.stack(
        [
            boundary_counts(p, t, 4, width=2)
            for p, t in zip(pred.split(2), target.split(2), strict=True)
        ]
    ).sum(0)
    assert torch.equal(parts, boundary_counts(pred, target, 4, width=2))


def test_boundary_width_below_one_is_refused() -> None:
    labels = _square(8, 2, 2, 3)
    with pytest.raises(ValueError, match="width"):
        boundary_counts(labels, labels, 2, width=0)


def _blocky_labels(gen: torch.Generator, batch: int, size: int, num_classes: int) -> torch.Tensor:
    """Random label maps with regions of a few pixels (nearest-upsampled noise) and some
    single-pixel speckle, so bands have corners, holes and border contact."""
    coarse = torch.randint(0, num_classes, (batch, 1, size // 4, size // 4), generator=gen)
    labels = F.interpolate(coarse.float(), size=(size, size), mode="nearest").long()[:, 0]
    speckle = torch.rand(labels.shape, generator=gen) < 0.05
    noise = torch.randint(0, num_classes, labels.shape, generator=gen)
    return torch.where(speckle, noise, labels)


def _reference_boundary_counts(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, width: int
) -> torch.Tensor:
    """Slow reference: scipy's binary erosion (outside = background) per image and class."""
    structure = np.ones((2 * width + 1, 2 * width + 1), dtype=bool)
    counts = torch.zeros(2, num_classes, dtype=torch.long)
    for p, t in zip(pred.numpy(), target.numpy(), strict=True):
        valid = t != 255
        for c in range(num_classes):
            bands = [m & ~binary_erosion(m, structure, border_value=0) for m in (t == c, p == c)]
            counts[0, c] += int((bands[0] & bands[1] & valid).sum())
            counts[1, c] += int(((bands[0] | bands[1]) & valid).sum())
    return counts


@pytest.mark.parametrize("width", [1, 2, 3, 5])
def test_boundary_counts_match_scipy_erosion_on_random_label_maps(width: int) -> None:
    gen = torch.Generator().manual_seed(width)
    target, pred = _blocky_labels(gen, 3, 20, 4), _blocky_labels(gen, 3, 20, 4)
    target[torch.rand(target.shape, generator=gen) < 0.1] = 255
    expected = _reference_boundary_counts(pred, target, 4, width)
    assert torch.equal(boundary_counts(pred, target, 4, width=width), expected)
    assert torch.allclose(
        boundary_iou(pred, target, 4, width=width),
        expected[0].double() / expected[1],
        equal_nan=True,
    )


# --- small-object IoU -------------------------------------------------------------------------


def test_small_object_buckets_on_one_tiny_and_one_large_object() -> None:
    target = torch.zeros(1, 32, 32, dtype=torch.long)
    instances = torch.zeros_like(target)
    target[0, 4:7, 4:7], instances[0, 4:7, 4:7] = 1, 1  # tiny: 3×3 = 9 px, class 1
    target[0, 10:30, 10:30], instances[0, 10:30, 10:30] = 2, 2  # large: 20×20 = 400 px, class 2
    pred = torch.zeros_like(target)
    pred[0, 4:8, 4:8] = 1  # covers the tiny object and spills 7 px into its window
    pred[0, 10:30, 11:30] = 2  # misses the large object's left column (20 px)
    pred[0, 30:32, 12:14] = 2  # 4 false-positive px inside the large object's window
    pred[0, 25:28, 2:5] = 1  # a class-1 blob outside the tiny object's window: not charged
    counts = small_object_counts(pred, target, instances, 3, edges=(0, 64, math.inf), margin=3)
    assert counts.tolist() == [[9, 380], [9 + 7, 400 + 4], [1, 1]]
    iou = small_object_iou(counts)
    assert torch.allclose(iou, torch.tensor([9 / 16, 380 / 404], dtype=torch.float64))


def test_other_objects_of_the_same_class_are_neither_hit_nor_false_positive() -> None:
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    instances = torch.zeros_like(target)
    target[0, 2:5, 2:8] = 1
    instances[0, 2:5, 2:5], instances[0, 2:5, 5:8] = 1, 2  # two touching class-1 objects
    counts = small_object_counts(target, target, instances, 2, edges=(0, 64))
    assert counts.tolist() == [[18], [18], [2]]


def test_instance_ids_are_per_image_and_ignored_pixels_leave_the_area() -> None:
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    instances = torch.zeros_like(target)
    target[0, 0:2, 0:2], instances[0, 0:2, 0:2] = 1, 1  # image 0, id 1: 4 px
    target[1, 0:10, 0:10], instances[1, 0:10, 0:10] = 1, 1  # image 1, id 1: 100 px ...
    target[1, 0, 0:10] = 255  # ... of which 10 are ignored
    pred = torch.zeros_like(target)
    counts = small_object_counts(pred, target, instances, 2, edges=(0, 64, math.inf))
    assert counts.tolist() == [[0, 0], [4, 90], [1, 1]]


def test_objects_outside_the_edges_are_not_counted() -> None:
    target = _square(12, 1, 1, 2).unsqueeze(0)  # 4 px
    counts = small_object_counts(target, target, target.clone(), 2, edges=(10, 100))
    assert counts.tolist() == [[0], [0], [0]]
    assert math.isnan(small_object_iou(counts)[0])


def test_small_object_edges_must_increase() -> None:
    labels = _square(8, 2, 2, 3).unsqueeze(0)
    with pytest.raises(ValueError, match="edges"):
        small_object_counts(labels, labels, labels, 2, edges=(0, 64, 32))


def test_default_edges_name_one_bucket_each() -> None:
    assert len(SHAPES_96_AREA_EDGES) == len(SHAPES_96_AREA_NAMES) + 1


def _reference_small_object_counts(
    pred: torch.Tensor,
    target: torch.Tensor,
    instances: torch.Tensor,
    edges: tuple[float, ...],
    margin: int,
) -> torch.Tensor:
    """Slow reference: a Python loop over images and objects."""
    counts = torch.zeros(3, len(edges) - 1, dtype=torch.long)
    for p, t, ins in zip(pred.numpy(), target.numpy(), instances.numpy(), strict=True):
        valid = t != 255
        for k in np.unique(ins[valid & (ins > 0)]):
            mask = valid & (ins == k)
            c, area = t[mask].max(), int(mask.sum())
            ys, xs = np.nonzero(mask)
            window = np.zeros_like(mask)
            window[
                max(ys.min() - margin, 0) : ys.max() + margin + 1,
                max(xs.min() - margin, 0) : xs.max() + margin + 1,
            ] = True
            false_pos = int((window & (p == c) & (t != c) & valid).sum())
            i = int(np.searchsorted(edges, area, side="right")) - 1
            if 0 <= i < len(edges) - 1:
                counts[:, i] += torch.tensor([int((mask & (p == c)).sum()), area + false_pos, 1])
    return counts


@pytest.mark.parametrize("margin", [0, 3])
def test_small_object_counts_match_a_loop_over_objects_on_shapes_scenes(margin: int) -> None:
    scenes = make_scenes(0, range(8), (48, 48), 6)
    gen = torch.Generator().manual_seed(margin)
    target = scenes.labels.clone()
    target[torch.rand(target.shape, generator=gen) < 0.05] = 255
    pred = torch.roll(scenes.labels, shifts=(1, -1), dims=(1, 2))  # a misplaced prediction
    noisy = torch.rand(pred.shape, generator=gen) < 0.1
    pred = torch.where(noisy, torch.randint(0, 6, pred.shape, generator=gen), pred)
    edges = (0.0, 16.0, 64.0, 256.0, math.inf)
    expected = _reference_small_object_counts(pred, target, scenes.instances, edges, margin)
    got = small_object_counts(pred, target, scenes.instances, 6, edges=edges, margin=margin)
    assert torch.equal(got, expected)
    assert int((got[2] > 0).sum()) >= 3  # the scenes gave objects in several buckets
    # counts add up over batches
    halves = torch.stack(
        [
            small_object_counts(p, t, i, 6, edges=edges, margin=margin)
            for p, t, i in zip(
                pred.split(4), target.split(4), scenes.instances.split(4), strict=True
            )
        ]
    ).sum(0)
    assert torch.equal(halves, got)


@pytest.mark.gpu
def test_boundary_and_small_object_counts_agree_on_cuda() -> None:
    scenes = make_scenes(0, range(8), (96, 96), 6)
    target, instances = scenes.labels, scenes.instances
    pred = torch.roll(target, shifts=(2, 1), dims=(1, 2))
    pred_c, target_c, instances_c = pred.cuda(), target.cuda(), instances.cuda()
    on_cuda = boundary_counts(pred_c, target_c, 6)
    assert torch.equal(on_cuda.cpu(), boundary_counts(pred, target, 6))
    on_cuda = small_object_counts(pred_c, target_c, instances_c, 6)
    assert torch.equal(on_cuda.cpu(), small_object_counts(pred, target, instances, 6))
