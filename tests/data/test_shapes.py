import torch

from ablate.data import class_names, load_splits, make_scenes


def test_a_scene_depends_on_seed_and_index_only() -> None:
    alone = make_scenes(3, [7], (48, 64), 6)
    in_batch = make_scenes(3, range(4, 10), (48, 64), 6)
    assert torch.equal(alone.images[0], in_batch.images[3])
    assert torch.equal(alone.labels[0], in_batch.labels[3])
    other_seed = make_scenes(4, [7], (48, 64), 6)
    assert not torch.equal(alone.labels[0], other_seed.labels[0])


def test_scenes_have_every_class_objects_of_many_sizes_and_occlusion() -> None:
    s = make_scenes(0, range(64), (96, 96), 6)
    assert s.images.dtype == torch.uint8 and s.images.shape == (64, 3, 96, 96)
    counts = torch.bincount(s.labels.flatten(), minlength=6)
    assert (counts > 0).all() and s.labels.max() < 6
    # instance areas span tiny (< 20 px) to large (> 1000 px) objects
    areas = torch.stack([torch.bincount(s.instances[i].flatten(), minlength=9) for i in range(64)])
    visible = areas[:, 1:][areas[:, 1:] > 0]
    assert visible.min() < 20 and visible.max() > 1000


def test_splits_do_not_overlap_and_are_deterministic() -> None:
    train, val = load_splits("shapes", 4, (32, 32), 6, 3, 0, torch.device("cpu"))
    again, _ = load_splits("shapes", 4, (32, 32), 6, 3, 0, torch.device("cpu"))
    assert len(train) == 6 and len(val) == 3
    assert torch.equal(train.images, again.images)
    assert not any(torch.equal(v, t) for v in val.labels for t in train.labels)
    assert class_names("shapes", 4) == ["background", "disc", "box", "triangle"]
