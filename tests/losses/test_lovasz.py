"""lovasz_softmax against a float64 reference that follows Berman et al.'s Algorithm 1 literally."""

from __future__ import annotations

import pytest
import torch

import ablate.losses.lovasz as lovasz_module
from ablate.losses.lovasz import lovasz_softmax

IGNORE = 255


def reference_lovasz_flat(probs: torch.Tensor, labels: torch.Tensor, classes) -> torch.Tensor:
    """probs (C, P), labels (P,), valid pixels only: one sort per class, Δ_J differenced."""
    num_classes = probs.shape[0]
    if labels.numel() == 0:
        return probs.sum() * 0.0
    losses = []
    for c in range(num_classes) if isinstance(classes, str) else classes:
        fg = (labels == c).double()
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probs[c]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        fg_sorted = fg[perm]
        gts = fg_sorted.sum()
        intersection = gts - fg_sorted.cumsum(0)
        union = gts + (1.0 - fg_sorted).cumsum(0)
        jaccard = 1.0 - intersection / union
        grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append(torch.dot(errors_sorted, grad))
    if not losses:
        return probs.sum() * 0.0
    return torch.stack(losses).mean()


def reference_lovasz(probs, labels, classes="present", per_image=False):
    probs = probs.double()
    num_classes = probs.shape[1]

    def flat(p: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        p, lab = p.reshape(num_classes, -1), lab.reshape(-1)
        valid = lab != IGNORE
        return reference_lovasz_flat(p[:, valid], lab[valid], classes)

    if per_image:
        return torch.stack([flat(p, lab) for p, lab in zip(probs, labels, strict=True)]).mean()
    return flat(probs.transpose(0, 1), labels)


def make_batch(seed: int, shape=(2, 5, 6, 7), ignored: float = 0.2, absent: int = 1):
    """Softmaxed random probabilities; the last `absent` classes never occur in the labels."""
    gen = torch.Generator().manual_seed(seed)
    batch, classes, height, width = shape
    probs = (2.0 * torch.randn(shape, generator=gen)).softmax(1)
    labels = torch.randint(0, classes - absent, (batch, height, width), generator=gen)
    labels[torch.rand(labels.shape, generator=gen) < ignored] = IGNORE
    return probs, labels


SORT_PATHS = {  # name: (_RADIX_MIN, _CHUNK)
    "batched": (2**62, 2**20),  # one torch.sort(dim=1), as on CUDA
    "per_row": (1, 2**20),  # one 1-D sort per row, as for long rows on CPU
    "composite": (100, 2**20),  # short rows sorted together by (row, key)
    "chunked": (1, 1),  # one row per chunk
}


@pytest.fixture(params=list(SORT_PATHS))
def sort_path(request, monkeypatch):
    """Run a test through each way the rows can be sorted and chunked."""
    radix_min, chunk = SORT_PATHS[request.param]
    monkeypatch.setattr(lovasz_module, "_RADIX_MIN", radix_min)
    monkeypatch.setattr(lovasz_module, "_CHUNK", chunk)
    return request.param


CLASSES = ["present", "all", [0, 4], [2]]


@pytest.mark.parametrize("classes", CLASSES)
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lovasz_matches_reference(classes, per_image, seed, sort_path):
    probs, labels = make_batch(seed)
    labels[1, :3] = IGNORE  # image 1 gets fewer valid pixels, so the classes present differ
    got = lovasz_softmax(probs, labels, classes=classes, per_image=per_image)
    expected = reference_lovasz(probs, labels, classes, per_image)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("classes", ["present", "all"])
@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_gradient_matches_reference(classes, per_image, sort_path):
    probs, labels = make_batch(3)
    probs = probs.requires_grad_(True)
    lovasz_softmax(probs, labels, classes=classes, per_image=per_image).backward()
    reference_probs = probs.detach().double().requires_grad_(True)
    reference_lovasz(reference_probs, labels, classes, per_image).backward()
    assert probs.grad is not None and reference_probs.grad is not None
    torch.testing.assert_close(probs.grad.double(), reference_probs.grad, rtol=1e-5, atol=1e-7)
    assert (probs.grad.abs().sum(1)[labels == IGNORE] == 0).all()


@pytest.mark.parametrize("per_image", [False, True])
def test_ties_give_the_reference_value(per_image, sort_path):
    probs, labels = make_batch(4)
    probs = (probs * 4).round() / 4  # many exactly equal probabilities and errors
    got = lovasz_softmax(probs, labels, classes="all", per_image=per_image)
    expected = reference_lovasz(probs, labels, "all", per_image)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("per_image", [False, True])
def test_hard_predictions_give_mean_one_minus_iou(per_image, sort_path):
    gen = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 4, (2, 9, 11), generator=gen)
    labels[torch.rand(labels.shape, generator=gen) < 0.1] = IGNORE
    pred = torch.where(torch.rand(labels.shape, generator=gen) < 0.6, labels, 1).clamp(max=3)
    probs = torch.nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).float()

    def mean_one_minus_iou(lab: torch.Tensor, prd: torch.Tensor) -> float:
        valid = lab != IGNORE
        values = []
        for c in range(4):
            target, predicted = (lab == c) & valid, (prd == c) & valid
            if target.any():  # "present"
                values.append(1 - (target & predicted).sum() / (target | predicted).sum())
        return float(torch.stack(values).mean())

    if per_image:
        expected = sum(mean_one_minus_iou(labels[b], pred[b]) for b in range(2)) / 2
    else:
        expected = mean_one_minus_iou(labels, pred)
    got = lovasz_softmax(probs, labels, per_image=per_image)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def reference_gradient_foreground_first(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Gradient of the "present" loss when tied errors are ordered foreground first (float64)."""
    probs = probs.detach().double().requires_grad_(True)
    num_classes = probs.shape[1]
    flat = probs.transpose(0, 1).reshape(num_classes, -1)
    lab = labels.reshape(-1)
    flat, lab = flat[:, lab != IGNORE], lab[lab != IGNORE]
    losses = []
    for c in range(num_classes):
        fg = (lab == c).double()
        if fg.sum() == 0:
            continue
        errors = torch.where(fg > 0, 1.0 - flat[c], flat[c])  # |fg − p| without abs' kink at 0
        by_fg = torch.sort(fg, descending=True, stable=True).indices  # foreground first ...
        by_error = torch.sort(errors[by_fg], descending=True, stable=True).indices  # ... on ties
        perm = by_fg[by_error]
        fg_sorted, gts = fg[perm], fg.sum()
        jaccard = 1.0 - (gts - fg_sorted.cumsum(0)) / (gts + (1.0 - fg_sorted).cumsum(0))
        grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append(torch.dot(errors[perm], grad))
    torch.stack(losses).mean().backward()
    assert probs.grad is not None
    return probs.grad


@pytest.mark.parametrize("per_image", [False, True])
def test_probabilities_of_exactly_zero_and_one_keep_foreground_and_background_apart(
    per_image, sort_path
):
    # an error of 0 arises both as 1 − 1 at a foreground pixel and as 0 at a background pixel
    probs, labels = make_batch(15)
    probs = torch.nn.functional.one_hot(probs.argmax(1), probs.shape[1]).permute(0, 3, 1, 2)
    probs = probs.float().requires_grad_(True)
    got = lovasz_softmax(probs, labels, per_image=per_image)
    expected = reference_lovasz(probs.detach(), labels, per_image=per_image)
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-7)
    if not per_image:
        got.backward()
        assert probs.grad is not None
        expected_grad = reference_gradient_foreground_first(probs, labels)
        torch.testing.assert_close(probs.grad.double(), expected_grad, rtol=1e-5, atol=1e-7)


def test_ties_are_broken_foreground_first_in_the_gradient(sort_path):
    probs, labels = make_batch(16)
    probs = ((probs * 4).round() / 4).requires_grad_(True)  # many tied errors
    lovasz_softmax(probs, labels).backward()
    assert probs.grad is not None
    expected = reference_gradient_foreground_first(probs, labels)
    torch.testing.assert_close(probs.grad.double(), expected, rtol=1e-5, atol=1e-7)


def test_probabilities_outside_zero_one_are_clamped(sort_path):
    probs, labels = make_batch(17)
    stretched = probs * 1.5 - 0.25  # some below 0, some above 1
    got = lovasz_softmax(stretched, labels, classes="all")
    expected = reference_lovasz(stretched.clamp(0.0, 1.0), labels, "all")
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_value_without_gradient_tracking_is_the_same():
    probs, labels = make_batch(14)
    with torch.no_grad():
        untracked = lovasz_softmax(probs, labels, classes="all")
    tracked = lovasz_softmax(probs.requires_grad_(True), labels, classes="all")
    assert torch.equal(untracked, tracked.detach())


def test_a_class_absent_from_the_labels_costs_its_largest_probability():
    probs, labels = make_batch(6, absent=1)
    got = lovasz_softmax(probs, labels, classes=[4])
    largest = probs[:, 4][labels != IGNORE].max()
    torch.testing.assert_close(got, largest)


@pytest.mark.parametrize("classes", ["present", "all"])
@pytest.mark.parametrize("per_image", [False, True])
def test_all_pixels_ignored_gives_finite_zero_and_zero_gradient(classes, per_image):
    probs, labels = make_batch(7)
    labels.fill_(IGNORE)
    probs.requires_grad_(True)
    loss = lovasz_softmax(probs, labels, classes=classes, per_image=per_image)
    loss.backward()
    assert loss.item() == 0.0
    assert probs.grad is not None and (probs.grad == 0).all()


def test_an_image_without_selected_classes_counts_as_zero_when_per_image(sort_path):
    probs, labels = make_batch(8)
    labels[0] = IGNORE
    got = lovasz_softmax(probs, labels, per_image=True)
    alone = lovasz_softmax(probs[1:], labels[1:], per_image=True)
    torch.testing.assert_close(got, alone / 2)


def test_ignore_index_inside_the_class_range():
    probs, labels = make_batch(9, ignored=0.0, absent=0)
    got = lovasz_softmax(probs, labels, classes="all", ignore_index=0)
    relabelled = labels.masked_fill(labels == 0, IGNORE)
    expected = reference_lovasz(probs, relabelled, "all")
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_long_rows_use_the_radix_path_and_match_reference():
    # 2 x 4 x 128 x 160 = 40,960 pixels per class row: above the per-row radix threshold
    probs, labels = make_batch(10, shape=(2, 4, 128, 160), ignored=0.1)
    assert labels.numel() >= lovasz_module._RADIX_MIN
    got = lovasz_softmax(probs, labels)
    torch.testing.assert_close(got.double(), reference_lovasz(probs, labels), rtol=1e-5, atol=0)


def test_labels_outside_the_classes_are_rejected():
    probs, labels = make_batch(11)
    labels[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        lovasz_softmax(probs, labels)


def test_bfloat16_autocast_is_finite_and_matches_float32():
    probs, labels = make_batch(12, shape=(2, 5, 16, 16))
    probs = probs.bfloat16().requires_grad_(True)
    expected = lovasz_softmax(probs.detach().float(), labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = lovasz_softmax(probs, labels)
    got.backward()
    assert got.dtype == torch.float32 and torch.isfinite(got)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert probs.grad is not None and torch.isfinite(probs.grad.float()).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_on_cuda_matches_cpu(per_image):
    probs, labels = make_batch(13, shape=(2, 6, 40, 50))
    cpu = probs.clone().requires_grad_(True)
    cuda = probs.cuda().requires_grad_(True)
    loss_cpu = lovasz_softmax(cpu, labels, per_image=per_image)
    loss_cuda = lovasz_softmax(cuda, labels.cuda(), per_image=per_image)
    loss_cpu.backward()
    loss_cuda.backward()
    torch.testing.assert_close(loss_cuda.cpu(), loss_cpu)
    assert cpu.grad is not None and cuda.grad is not None
    torch.testing.assert_close(cuda.grad.cpu(), cpu.grad)
