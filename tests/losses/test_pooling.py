"""cpp_pool and nearest_pool against slow references written from their definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ablate.losses.pooling import cpp_pool, nearest_pool

IGNORE = 255


def reference_cpp(labels: torch.Tensor, size: tuple[int, int], num_classes: int) -> torch.Tensor:
    """Per cell: share of the valid pixels of its adaptive-pooling window that carry each class."""
    batch, height, width = labels.shape
    h, w = size
    out = torch.zeros(batch, num_classes, h, w, dtype=torch.float64)
    for b in range(batch):
        for i in range(h):
            r0, r1 = (i * height) // h, math.ceil((i + 1) * height / h)
            for j in range(w):
                c0, c1 = (j * width) // w, math.ceil((j + 1) * width / w)
                window = labels[b, r0:r1, c0:c1].flatten().tolist()
                valid = [v for v in window if v != IGNORE]
                for v in valid:
                    out[b, v, i, j] += 1.0 / len(valid)
    return out


def random_labels(
    shape: tuple[int, ...], num_classes: int, ignored: float, seed: int
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, shape, generator=gen)
    labels[torch.rand(shape, generator=gen) < ignored] = IGNORE
    return labels


@pytest.mark.parametrize(
    ("in_size", "out_size"),
    [((8, 12), (4, 3)), ((7, 10), (3, 4)), ((9, 5), (4, 5)), ((5, 6), (7, 9)), ((6, 6), (1, 1))],
)
def test_cpp_matches_reference_with_ignored_pixels_and_absent_classes(in_size, out_size):
    labels = random_labels((2, *in_size), 5, ignored=0.3, seed=sum(in_size) + sum(out_size))
    got = cpp_pool(labels, out_size, num_classes=7)  # classes 5 and 6 never occur
    assert got.shape == (2, 7, *out_size) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), reference_cpp(labels, out_size, 7), atol=1e-6, rtol=0)
    assert (got[:, 5:] == 0).all()


@pytest.mark.parametrize("out_size", [(4, 4), (3, 5), (5, 7), (16, 16)])
def test_cpp_windows_are_adaptive_avg_pool_windows(out_size):
    # with nothing ignored, CPP is exactly adaptive average pooling of the one-hot labels
    labels = random_labels((2, 10, 14), 4, ignored=0.0, seed=1)
    one_hot = F.one_hot(labels, 4).permute(0, 3, 1, 2).double()
    expected = F.adaptive_avg_pool2d(one_hot, out_size)
    torch.testing.assert_close(cpp_pool(labels, out_size, 4).double(), expected, atol=1e-6, rtol=0)


def test_cpp_accepts_an_int_size():
    labels = random_labels((1, 9, 9), 3, ignored=0.2, seed=2)
    torch.testing.assert_close(cpp_pool(labels, 4, 3), cpp_pool(labels, (4, 4), 3))


@pytest.mark.parametrize("out_size", [(4, 6), (5, 7)])
def test_cpp_sums_to_one_on_cells_with_a_valid_pixel_and_zero_elsewhere(out_size):
    labels = random_labels((3, 16, 24), 6, ignored=0.5, seed=3)
    labels[0, :8] = IGNORE  # whole cells without a valid pixel
    got = cpp_pool(labels, out_size, 6)
    valid_cells = (
        F.adaptive_max_pool2d((labels != IGNORE).double()[:, None], out_size)[:, 0] > 0
    )  # (B, h, w)
    total = got.sum(1)
    torch.testing.assert_close(total[valid_cells], torch.ones_like(total[valid_cells]))
    assert (total[~valid_cells] == 0).all()
    assert (~valid_cells).any() and valid_cells.any()


def test_cpp_preserves_class_mass_when_windows_tile_evenly():
    labels = random_labels((2, 32, 48), 7, ignored=0.0, seed=4)
    got = cpp_pool(labels, (8, 6), 7)  # windows of 4 x 8 pixels
    mass = (got * 32).sum((2, 3))  # (B, C) share times the window's valid count
    expected = torch.stack([torch.bincount(lab.flatten(), minlength=7) for lab in labels]).float()
    torch.testing.assert_close(mass, expected)


def test_cpp_of_an_all_ignored_batch_is_zero():
    labels = torch.full((2, 8, 8), IGNORE)
    got = cpp_pool(labels, (3, 3), 4)
    assert got.shape == (2, 4, 3, 3) and (got == 0).all()


def test_cpp_treats_an_ignore_index_inside_the_class_range_as_ignored():
    labels = random_labels((1, 6, 6), 4, ignored=0.0, seed=5)
    got = cpp_pool(labels, (2, 2), 4, ignore_index=0)
    assert (got[:, 0] == 0).all()
    shares = got.sum(1)
    assert ((shares - 1).abs() < 1e-6).logical_or(shares == 0).all()


@pytest.mark.parametrize("bad", [-1, 4, 254])
def test_cpp_rejects_labels_outside_the_classes(bad):
    labels = random_labels((1, 6, 6), 4, ignored=0.2, seed=6)
    labels[0, 2, 3] = bad
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        cpp_pool(labels, (3, 3), 4)


def test_cpp_output_needs_no_gradient_and_leaves_labels_untouched():
    labels = random_labels((1, 6, 6), 3, ignored=0.3, seed=7)
    before = labels.clone()
    got = cpp_pool(labels, (2, 2), 3)
    assert not got.requires_grad
    assert torch.equal(labels, before)


SIZES = [(1, 1), (3, 5), (7, 7), (22, 22), (32, 48), (64, 100), (13, 200)]


@pytest.mark.parametrize("in_size", [(26, 26), (64, 96), (39, 58), (5, 7)])
@pytest.mark.parametrize("out_size", SIZES)
def test_nearest_picks_the_pixels_of_interpolate_nearest(in_size, out_size):
    labels = random_labels((2, *in_size), 19, ignored=0.1, seed=8)
    expected = F.interpolate(labels[:, None].float(), size=out_size, mode="nearest")[:, 0].long()
    got = nearest_pool(labels, out_size)
    assert got.dtype == labels.dtype
    assert torch.equal(got, expected)


def test_nearest_takes_the_top_left_pixel_of_even_windows():
    labels = random_labels((1, 8, 12), 9, ignored=0.0, seed=9)
    assert torch.equal(nearest_pool(labels, (4, 3)), labels[:, ::2, ::4])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pooling_on_cuda_matches_cpu():
    labels = random_labels((2, 37, 53), 6, ignored=0.2, seed=10)
    for size in [(9, 13), (37, 53), (5, 5)]:
        torch.testing.assert_close(
            cpp_pool(labels.cuda(), size, 6).cpu(), cpp_pool(labels, size, 6)
        )
        assert torch.equal(nearest_pool(labels.cuda(), size).cpu(), nearest_pool(labels, size))
