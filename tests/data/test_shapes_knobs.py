"""data.shapes: each knob of the shapes generator, measured on the scenes it renders."""

import hashlib

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from ablate.data import ShapeKnobs, load_splits, make_scenes
from ablate.data.shapes import Scenes, _scene_params
from ablate.spec import DataSpec

BARS_ONLY = (0.0, 0.0, 0.0, 0.0, 1.0)  # num_classes 6: class 5 is the bar


def _digest(seed: int, indices: list[int], size: tuple[int, int], classes: int) -> str:
    s = make_scenes(seed, indices, size, classes)
    h = hashlib.sha256()
    for t in (s.images, s.labels, s.instances):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _top_objects(labels: torch.Tensor, instances: torch.Tensor) -> list[torch.Tensor]:
    """Per scene, the mask of the object drawn last (nothing occludes it), if it does not
    touch the image's border (nothing clips it)."""
    masks = []
    for inst in instances:
        mask = inst == inst.max()
        ys, xs = torch.nonzero(mask, as_tuple=True)
        h, w = mask.shape
        if ys.min() > 0 and xs.min() > 0 and ys.max() < h - 1 and xs.max() < w - 1:
            masks.append(mask)
    return masks


def test_default_knobs_render_the_scenes_made_before_the_knobs_existed() -> None:
    # digests of scenes rendered by the generator before data.shapes was added
    assert _digest(0, list(range(8)), (96, 96), 6) == "05e88f4a1d225ce3"
    assert _digest(3, list(range(20, 26)), (48, 64), 8) == "b48ff2417371d9e0"
    assert _digest(7, [5, 10_000_001], (64, 40), 2) == "64f43790036fda15"
    assert ShapeKnobs(**DataSpec().shapes.model_dump()) == ShapeKnobs()


@pytest.mark.parametrize("size_range", [(0.1, 0.15), (0.03, 0.05)])
def test_object_half_extent_lies_in_size_range(size_range: tuple[float, float]) -> None:
    side = 96
    s = make_scenes(1, range(32), (side, side), 2, knobs=ShapeKnobs(size_range=size_range))
    low, high = (2 * f * side for f in size_range)  # a disc's diameter in pixels
    extents = []
    for mask in _top_objects(s.labels, s.instances):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        extents.append(max(int(ys.max() - ys.min()), int(xs.max() - xs.min())) + 1)
    assert len(extents) >= 10
    assert all(low - 1 <= e <= high + 1 for e in extents), (extents, low, high)
    # no object at all, occluded or clipped, is wider than the largest size allows
    for inst in s.instances:
        for k in inst.unique()[1:]:
            ys, xs = torch.nonzero(inst == k, as_tuple=True)
            assert int(ys.max() - ys.min()) + 1 <= high + 1
            assert int(xs.max() - xs.min()) + 1 <= high + 1


@pytest.mark.parametrize("thin", [0.05, 0.1, 0.25])
def test_bar_width_over_length_is_thin(thin: float) -> None:
    knobs = ShapeKnobs(size_range=(0.2, 0.25), thin=thin, class_weights=BARS_ONLY)
    s = make_scenes(0, range(16), (128, 128), 6, knobs=knobs)
    ratios = []
    for mask in _top_objects(s.labels, s.instances):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        # a rectangle's variance along its long side is L²/12; its width is area / L
        length = float(
            (12 * torch.linalg.eigvalsh(torch.cov(torch.stack([ys, xs]).float()))[1]).sqrt()
        )
        ratios.append(ys.numel() / length / length)
    assert len(ratios) >= 5
    # pixels make a thin bar's edge ragged: each bar within 20 %, their median within 5 %
    assert all(abs(r - thin) <= 0.2 * thin for r in ratios), ratios
    assert abs(sorted(ratios)[len(ratios) // 2] - thin) <= 0.05 * thin


def test_very_thin_bars_stay_about_one_pixel_wide() -> None:
    knobs = ShapeKnobs(size_range=(0.2, 0.25), thin=0.01, class_weights=BARS_ONLY)
    s = make_scenes(0, range(16), (128, 128), 6, knobs=knobs)
    for mask in _top_objects(s.labels, s.instances):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        cov = torch.cov(torch.stack([ys, xs]).float())
        width = ys.numel() / float((12 * torch.linalg.eigvalsh(cov)[1]).sqrt())
        assert 0.9 <= width <= 1.5


def _object_classes(labels: torch.Tensor, instances: torch.Tensor, classes: int) -> torch.Tensor:
    """How many visible objects each class has, over the whole batch."""
    scene = torch.arange(len(labels)).view(-1, 1, 1).expand_as(labels)
    keys = (scene * 16 + instances.long()) * 16 + labels
    objects = keys[instances > 0].unique() % 16  # one class per (scene, object)
    return torch.bincount(objects, minlength=classes)


def test_class_weights_set_object_class_frequencies() -> None:
    knobs = ShapeKnobs(size_range=(0.1, 0.15), class_weights=(1.0, 0.0, 3.0))
    s = make_scenes(2, range(300), (48, 48), 4, knobs=knobs)
    counts = _object_classes(s.labels, s.instances, 4)
    assert counts[2] == 0  # weight 0: never drawn
    share = float(counts[3] / (counts[1] + counts[3]))
    assert counts.sum() > 1000 and abs(share - 0.75) < 0.04


def test_default_class_frequencies_fall_as_one_over_root_k() -> None:
    s = make_scenes(2, range(300), (48, 48), 4, knobs=ShapeKnobs(size_range=(0.1, 0.15)))
    counts = _object_classes(s.labels, s.instances, 4)[1:].double()
    expected = 1 / torch.arange(1, 4).double().sqrt()
    assert torch.allclose(counts / counts.sum(), expected / expected.sum(), atol=0.04)


def test_a_scene_with_knobs_depends_on_seed_index_and_knobs_only() -> None:
    knobs = ShapeKnobs(size_range=(0.05, 0.1), thin=0.2, class_weights=(1, 1, 1, 1, 5))
    alone = make_scenes(5, [9], (48, 48), 6, knobs=knobs)
    in_batch = make_scenes(5, range(7, 12), (48, 48), 6, knobs=knobs)
    assert torch.equal(alone.images[0], in_batch.images[2])
    assert torch.equal(alone.labels[0], in_batch.labels[2])
    plain = make_scenes(5, [9], (48, 48), 6)
    assert not torch.equal(alone.labels[0], plain.labels[0])


def test_splits_render_with_the_knobs_they_are_given() -> None:
    knobs = ShapeKnobs(class_weights=(1.0, 0.0, 0.0))
    train, val = load_splits("shapes", 4, (32, 32), 4, 2, 0, torch.device("cpu"), knobs=knobs)
    assert set(train.labels.unique().tolist()) == {0, 1}
    assert set(val.labels.unique().tolist()) <= {0, 1}


def test_make_scenes_refuses_weights_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="needs 3 weights"):
        make_scenes(0, [0], (32, 32), 4, knobs=ShapeKnobs(class_weights=(1.0, 1.0)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"shapes": {"size_range": [0.3, 0.1]}}, "min ≤ max"),
        ({"shapes": {"size_range": [0.0, 0.1]}}, "0 < min"),
        ({"shapes": {"size_range": [0.1, 1.5]}}, "max ≤ 1"),
        ({"shapes": {"thin": 0}}, "greater than 0"),
        ({"shapes": {"thin": 0.6}}, "less than or equal to 0.5"),
        ({"shapes": {"class_weights": [1, -1, 1, 1, 1]}}, "≥ 0 and not all 0"),
        ({"shapes": {"class_weights": [0, 0, 0, 0, 0]}}, "≥ 0 and not all 0"),
        ({"shapes": {"class_weights": [1, 2]}}, "num_classes 6 needs 5"),
        ({"shapes": {"bogus": 1}}, "Extra inputs"),
        (
            {"name": "digits", "num_classes": 11, "shapes": {"thin": 0.2}},
            "apply to name: shapes, not digits",
        ),
    ],
)
def test_spec_refuses_bad_shape_knobs(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DataSpec.model_validate(data)


def test_spec_takes_shape_knobs_and_default_knobs_on_other_datasets() -> None:
    spec = DataSpec.model_validate(
        {"shapes": {"size_range": [0.02, 0.06], "thin": 0.03, "class_weights": [5, 1, 1, 1, 1]}}
    )
    assert ShapeKnobs(**spec.shapes.model_dump()) == ShapeKnobs((0.02, 0.06), 0.03, [5, 1, 1, 1, 1])
    assert DataSpec.model_validate({"name": "digits", "num_classes": 11, "shapes": {}})


def _object_pixels(scenes: Scenes, cls: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(mask, grey image) of each unoccluded, unclipped object of class `cls`."""
    grey = scenes.images.float().mean(dim=1)  # (B, H, W)
    found = []
    for b, mask in enumerate(_top_objects(scenes.labels, scenes.instances)):
        if int(scenes.labels[b][mask][0]) == cls:
            found.append((mask, grey[b]))
    return found


def _neighbour_change(pairs: list[tuple[torch.Tensor, torch.Tensor]], dim: int) -> float:
    """Mean |Δ brightness| between neighbours along `dim` (-1: x, -2: y), both inside."""
    total, count = 0.0, 0
    for mask, grey in pairs:
        both = mask.narrow(dim, 1, mask.shape[dim] - 1) & mask.narrow(dim, 0, mask.shape[dim] - 1)
        diff = (grey.diff(dim=dim)).abs()[both]
        total, count = total + float(diff.sum()), count + diff.numel()
    return total / count


def test_texture_tells_classes_apart_only_by_the_orientation_of_their_stripes() -> None:
    knobs = ShapeKnobs(size_range=(0.2, 0.4), texture=True)
    scenes = make_scenes(0, list(range(300)), (64, 64), 3, knobs=knobs)
    along_x, along_y = _object_pixels(scenes, 1), _object_pixels(scenes, 2)
    assert len(along_x) > 10 and len(along_y) > 10
    # class 1: stripes at 0° (brightness changes along x; along y only the ±6 % pixel noise);
    # class 2: at 90°
    assert _neighbour_change(along_x, -1) > 1.5 * _neighbour_change(along_x, -2)
    assert _neighbour_change(along_y, -2) > 1.5 * _neighbour_change(along_y, -1)


def test_texture_draws_any_shape_and_colour_for_any_class() -> None:
    def tint(knobs: ShapeKnobs) -> float:
        """The largest gap between two classes' mean object colour (0–255)."""
        s = make_scenes(1, list(range(300)), (48, 48), 6, knobs=knobs)
        means = [s.images.permute(0, 2, 3, 1)[s.labels == c].float().mean(0) for c in range(1, 6)]
        return max(float((m - n).abs().max()) for m in means for n in means)

    assert tint(ShapeKnobs()) > 60  # the default tints objects by class
    assert tint(ShapeKnobs(texture=True)) < 20  # texture: colour says nothing of the class
    areas = [  # shape: a class's objects fill their boxes in many ways, not one kind's way
        float(m.float().sum()) / float(m.any(1).sum() * m.any(0).sum())
        for m, _ in _object_pixels(
            make_scenes(2, list(range(300)), (64, 64), 2, knobs=ShapeKnobs(texture=True)), 1
        )
    ]
    assert max(areas) - min(areas) > 0.4


def test_texture_draws_after_the_other_knobs_so_places_and_sizes_stay_as_they_were() -> None:
    for index in range(6):
        plain = _scene_params(4, index, 6, ShapeKnobs())
        textured = _scene_params(4, index, 6, ShapeKnobs(texture=True))
        # present, class, centre, size, aspect, angle: the same draws
        np.testing.assert_array_equal(plain[:, :7], textured[:, :7])
