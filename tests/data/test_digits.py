import numpy as np
import pytest
import torch

from ablate.data.digits import DIGIT_CLASS_NAMES, digit_indices, make_digit_scenes


def test_a_scene_depends_on_seed_and_index_only() -> None:
    alone = make_digit_scenes(3, [7], (48, 64))
    in_batch = make_digit_scenes(3, range(4, 10), (48, 64))
    assert torch.equal(alone.images[0], in_batch.images[3])
    assert torch.equal(alone.labels[0], in_batch.labels[3])
    assert not torch.equal(alone.labels[0], make_digit_scenes(4, [7], (48, 64)).labels[0])


def test_scenes_hold_every_digit_class_at_many_sizes() -> None:
    s = make_digit_scenes(0, range(64), (64, 64))
    assert s.images.dtype == torch.uint8 and s.images.shape == (64, 3, 64, 64)
    assert s.labels.dtype == torch.long and s.labels.max() < len(DIGIT_CLASS_NAMES) == 11
    assert (torch.bincount(s.labels.flatten(), minlength=11) > 0).all()
    areas = torch.stack([torch.bincount(s.instances[i].flatten(), minlength=9) for i in range(64)])
    visible = areas[:, 1:][areas[:, 1:] > 0]
    assert visible.min() < 15 and visible.max() > 200


def test_each_instance_is_one_digit_and_background_has_none() -> None:
    s = make_digit_scenes(1, range(8), (48, 48))
    assert torch.equal(s.labels == 0, s.instances == 0)
    for labels, instances in zip(s.labels, s.instances, strict=True):
        for k in instances.unique()[1:]:
            assert labels[instances == k].unique().numel() == 1


def test_train_and_val_draw_from_disjoint_scans() -> None:
    train, val = digit_indices("train"), digit_indices("val")
    assert np.intersect1d(train, val).size == 0
    assert np.union1d(train, val).size == 1797
    with pytest.raises(ValueError, match="train' or 'val"):
        digit_indices("test")


def test_val_scenes_differ_from_train_scenes_at_the_same_index() -> None:
    train = make_digit_scenes(0, range(4), (48, 48), split="train")
    val = make_digit_scenes(0, range(4), (48, 48), split="val")
    assert not torch.equal(train.labels, val.labels)
