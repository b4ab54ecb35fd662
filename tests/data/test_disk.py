from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ablate.data.disk import (
    DatasetError,
    DiskDataset,
    disk_class_names,
    label_table,
    load_disk_splits,
    make_loader,
    materialise,
)
from ablate.data.layouts import layout

H, W = 40, 60


def _labels(k: int) -> np.ndarray:
    """(40, 60) uint8: four quadrants of different classes (shifted by k), an ignored strip."""
    labels = np.zeros((H, W), np.uint8)
    labels[:20, :30], labels[:20, 30:] = 1 + k % 3, 4
    labels[20:, :30], labels[20:, 30:] = 7, 2
    labels[:, 55:] = 255
    return labels


def _encode(labels: np.ndarray) -> np.ndarray:
    """An RGB image whose red channel encodes the label (×10; 255 stays 255) and whose green
    channel rises to the right, so a flip shows."""
    red = np.where(labels == 255, 255, labels.astype(np.int64) * 10).astype(np.uint8)
    green = np.broadcast_to(np.arange(W, dtype=np.uint8) * 4, (H, W))
    return np.stack([red, green, np.zeros_like(red)], axis=-1)


def _write(image: Path, mask: Path, labels: np.ndarray) -> None:
    image.parent.mkdir(parents=True, exist_ok=True)
    mask.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_encode(labels)).save(image)
    Image.fromarray(labels, mode="L").save(mask)


def _folder(root: Path, n_train: int = 4, n_val: int = 2) -> Path:
    for split, n in (("train", n_train), ("val", n_val)):
        for k in range(n):
            name = f"{split}{k}.png"
            _write(root / "images" / split / name, root / "masks" / split / name, _labels(k))
    return root


def _red_matches(image: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of labelled pixels away from label edges (a uniform 3×3 neighbourhood, where
    resampling cannot blend two regions) whose red value encodes their label."""
    grid = labels.float()[None, None]
    uniform = F.max_pool2d(grid, 3, 1, 1) == -F.max_pool2d(-grid, 3, 1, 1)
    inner = uniform[0, 0] & (labels != 255)
    return ((image[0].long() - labels * 10).abs() <= 3)[inner].float().mean().item()


def test_folder_split_layout_gives_both_splits_and_keeps_255(tmp_path: Path) -> None:
    train, val = load_disk_splits("folder", _folder(tmp_path), (H, W))
    assert len(train) == 4 and len(val) == 2
    image, labels = val[1]
    assert image.dtype == torch.uint8 and image.shape == (3, H, W)
    assert labels.dtype == torch.long and torch.equal(labels, torch.from_numpy(_labels(1)).long())


def test_flat_folder_holds_out_every_fifth_image(tmp_path: Path) -> None:
    for k in range(6):
        _write(tmp_path / "images" / f"{k}.png", tmp_path / "masks" / f"{k}.png", _labels(k))
    train, val = load_disk_splits("folder", tmp_path, (H, W))
    assert len(train) == 5 and [p.stem for p, _ in val.pairs] == ["4"]


def test_cityscapes_label_ids_map_to_the_19_train_ids(tmp_path: Path) -> None:
    ids = np.array([0, 1, 6, 7, 8, 9, 11, 26, 29, 31, 33], np.uint8)
    expected = [255, 255, 255, 0, 1, 255, 2, 13, 255, 16, 18]
    mask = np.resize(ids, (H, W)).astype(np.uint8)
    for split in ("train", "val"):
        stem = tmp_path / "gtFine" / split / "aachen" / "aachen_000000_000019"
        Image.fromarray(mask, mode="L").save(_mkdir(f"{stem}_gtFine_labelIds.png"))
        image = tmp_path / "leftImg8bit" / split / "aachen" / "aachen_000000_000019_leftImg8bit.png"
        Image.fromarray(_encode(_labels(0))).save(_mkdir(image))
    train, _ = load_disk_splits("cityscapes", tmp_path, (H, W))
    _, labels = train.read(0)
    lookup = dict(zip(ids.tolist(), expected, strict=True))
    assert torch.equal(labels, torch.tensor(np.vectorize(lookup.get)(mask)))
    cityscapes = layout("cityscapes")
    assert cityscapes.num_classes == 19 and cityscapes.class_names[13] == "car"


def test_ade20k_other_becomes_ignore_and_classes_shift_down(tmp_path: Path) -> None:
    base = tmp_path / "ADEChallengeData2016"
    mask = np.resize(np.array([0, 1, 2, 150], np.uint8), (H, W)).astype(np.uint8)
    for folder in ("training", "validation"):
        Image.fromarray(_encode(_labels(0))).save(_mkdir(base / "images" / folder / "a.jpg"))
        Image.fromarray(mask, mode="L").save(_mkdir(base / "annotations" / folder / "a.png"))
    _, val = load_disk_splits("ade20k", tmp_path, (H, W))
    _, labels = val.read(0)
    assert labels[0, :4].tolist() == [255, 0, 1, 149]
    assert layout("ade20k").num_classes == 150 and label_table("ade20k")[151] == 255


def test_voc_palette_indices_are_the_classes(tmp_path: Path) -> None:
    base = tmp_path / "VOC2012"
    mask = np.resize(np.array([0, 15, 20, 255], np.uint8), (H, W)).astype(np.uint8)
    for name in ("2007_000032", "2007_000039", "2007_000063"):
        Image.fromarray(_encode(_labels(0))).save(_mkdir(base / "JPEGImages" / f"{name}.jpg"))
        palette = Image.fromarray(mask, mode="P")
        palette.putpalette([(i * 37) % 256 for i in range(768)])  # colours unrelated to ids
        palette.save(_mkdir(base / "SegmentationClass" / f"{name}.png"))
    _mkdir(base / "ImageSets" / "Segmentation" / "x")
    (base / "ImageSets/Segmentation/train.txt").write_text("2007_000032\n2007_000039\n")
    (base / "ImageSets/Segmentation/val.txt").write_text("2007_000063\n")
    train, val = load_disk_splits("voc", tmp_path, (H, W))
    assert len(train) == 2 and len(val) == 1
    assert val.read(0)[1][0, :4].tolist() == [0, 15, 20, 255]
    assert disk_class_names("voc", 21)[15] == "person"


def test_training_crops_keep_image_and_labels_aligned_exactly_at_scale_one(
    tmp_path: Path,
) -> None:
    train, _ = load_disk_splits("folder", _folder(tmp_path), (24, 36), scale_range=(1.0, 1.0))
    flipped = []
    for epoch in range(4):
        train.set_epoch(epoch)
        for i in range(len(train)):
            image, labels = train[i]
            assert image.shape == (3, 24, 36) and labels.shape == (24, 36)
            red = torch.where(labels == 255, 255, labels * 10)
            assert torch.equal(image[0].long(), red)
            flipped.append(bool(image[1, 0, 0] > image[1, 0, -1]))
    assert any(flipped) and not all(flipped)


def test_scaled_crops_keep_image_and_labels_aligned(tmp_path: Path) -> None:
    train, _ = load_disk_splits("folder", _folder(tmp_path), (32, 48))
    for epoch in range(3):
        train.set_epoch(epoch)
        for i in range(len(train)):
            image, labels = train[i]
            if (labels != 255).sum() < 50:
                continue
            assert _red_matches(image, labels) > 0.97
            # where mirrored labels differ enough, the same check fails on them: it sees a shift
            mirrored = labels.flip(-1)
            if ((mirrored != labels) & (mirrored != 255)).float().mean() > 0.3:
                assert _red_matches(image, mirrored) < 0.7


def test_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    a, _ = load_disk_splits("folder", root, (24, 36), seed=1)
    b, _ = load_disk_splits("folder", root, (24, 36), seed=1)
    c, _ = load_disk_splits("folder", root, (24, 36), seed=2)
    samples = [a[i] for i in range(4)]
    assert all(torch.equal(s[0], b[i][0]) for i, s in enumerate(samples))
    assert not all(torch.equal(s[0], c[i][0]) for i, s in enumerate(samples))
    a.set_epoch(1)
    assert not all(torch.equal(s[0], a[i][0]) for i, s in enumerate(samples))


def test_crop_padding_uses_255_for_labels_and_0_for_the_image(tmp_path: Path) -> None:
    train, _ = load_disk_splits("folder", _folder(tmp_path), (80, 100), scale_range=(1.0, 1.0))
    image, labels = train[0]
    padded = labels == 255
    assert padded[H:].all() and (image[:, H:] == 0).all()
    stored_ignore = int((_labels(0) == 255).sum())
    # padded pixels are the ones with label 255 and a black image (stored 255s are red)
    assert int((padded & (image[0] == 0)).sum()) == 80 * 100 - H * W
    assert int((padded & (image[0] == 255)).sum()) == stored_ignore


def test_validation_fits_the_whole_image_then_pads(tmp_path: Path) -> None:
    _, val = load_disk_splits("folder", _folder(tmp_path), (30, 90))
    image, labels = val[0]
    assert image.shape == (3, 30, 90)
    assert (labels[:, 45:] == 255).all() and (labels[:, :40] != 255).all()
    assert torch.equal(labels, val[0][1]) and torch.equal(image, val[0][0])


def test_loader_yields_batches_in_a_seeded_order(tmp_path: Path) -> None:
    train, _ = load_disk_splits("folder", _folder(tmp_path), (24, 36))
    loader = make_loader(train, batch_size=2, shuffle=True, seed=0, num_workers=0)
    batches = list(loader)
    assert len(batches) == 2
    images, labels = batches[0]
    assert images.shape == (2, 3, 24, 36) and images.dtype == torch.uint8
    assert labels.shape == (2, 24, 36) and labels.dtype == torch.long
    again = list(make_loader(train, batch_size=2, shuffle=True, seed=0, num_workers=0))
    assert all(torch.equal(x[1], y[1]) for x, y in zip(batches, again, strict=True))


def test_limits_take_evenly_spaced_files_and_materialise_stacks(tmp_path: Path) -> None:
    train, val = load_disk_splits("folder", _folder(tmp_path, 5, 2), (H, W), max_train=3, max_val=1)
    assert [p.stem for p, _ in train.pairs] == ["train0", "train2", "train4"]
    images, labels = materialise(val, "cpu")
    assert images.shape == (1, 3, H, W) and labels.shape == (1, H, W)


def test_missing_root_names_the_path_and_the_layout(tmp_path: Path) -> None:
    root = tmp_path / "cityscapes"
    with pytest.raises(DatasetError, match="found no such folder") as info:
        load_disk_splits("cityscapes", root, (H, W))
    assert str(root) in str(info.value) and "leftImg8bit/{train,val}" in str(info.value)


def test_missing_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "leftImg8bit" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match="found no gtFine folder"):
        load_disk_splits("cityscapes", tmp_path, (H, W))
    (tmp_path / "gtFine" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"found no leftImg8bit/train/<city>/\*_leftImg8bit"):
        load_disk_splits("cityscapes", tmp_path, (H, W))
    stem = "aachen/aachen_000000_000019"
    Image.fromarray(_encode(_labels(0))).save(
        _mkdir(tmp_path / "leftImg8bit" / "train" / f"{stem}_leftImg8bit.png")
    )
    Image.fromarray(_labels(0)).save(
        _mkdir(tmp_path / "gtFine" / "train" / f"{stem}_gtFine_labelIds.png")
    )
    with pytest.raises(DatasetError, match="found no leftImg8bit/val folder"):
        load_disk_splits("cityscapes", tmp_path, (H, W))
    with pytest.raises(DatasetError, match="found no leftImg8bit folder"):
        load_disk_splits("cityscapes", tmp_path / "gtFine", (H, W))


def test_image_without_mask_names_the_file(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    (root / "masks" / "val" / "val1.png").unlink()
    with pytest.raises(DatasetError, match=r"val1\.png: no mask; expected") as info:
        load_disk_splits("folder", root, (H, W))
    assert str(root / "images" / "val" / "val1.png") in str(info.value)


def test_a_colour_mask_is_refused(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    Image.fromarray(_encode(_labels(0))).save(root / "masks" / "val" / "val0.png")
    _, val = load_disk_splits("folder", root, (H, W))
    with pytest.raises(DatasetError, match="one channel"):
        val[0]


def test_a_dataset_rejects_an_empty_crop() -> None:
    with pytest.raises(ValueError, match="crop size"):
        DiskDataset([], label_table("folder"), (0, 4), train=True)


def _mkdir(path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
