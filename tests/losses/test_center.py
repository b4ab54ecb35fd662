"""CenterLoss against float64 references written from Wen et al.'s equations."""

from __future__ import annotations

import pytest
import torch

from ablate.losses.center import CenterLoss

IGNORE = 255


def make_batch(seed: int, n: int = 40, dim: int = 6, classes: int = 5, ignored: float = 0.2):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(n, dim, generator=gen)
    labels = torch.randint(0, classes - 1, (n,), generator=gen)  # the last class never occurs
    labels[torch.rand(n, generator=gen) < ignored] = IGNORE
    centers = torch.randn(classes, dim, generator=gen)
    return features, labels, centers


def make_loss(centers: torch.Tensor, alpha: float = 0.5) -> CenterLoss:
    loss_fn = CenterLoss(centers.shape[0], centers.shape[1], alpha=alpha)
    loss_fn.centers.copy_(centers)
    return loss_fn


def reference_value(features, labels, centers) -> torch.Tensor:
    rows = [i for i in range(len(labels)) if int(labels[i]) != IGNORE]
    total = sum(
        ((features[i].double() - centers[int(labels[i])].double()) ** 2).sum() for i in rows
    )
    return torch.as_tensor(total / (2 * len(rows)), dtype=torch.float64)


def reference_update(features, labels, centers, alpha) -> torch.Tensor:
    new = centers.double().clone()
    for j in range(centers.shape[0]):
        rows = [i for i in range(len(labels)) if int(labels[i]) == j]
        delta = sum((centers[j].double() - features[i].double() for i in rows), torch.zeros(1))
        new[j] = centers[j].double() - alpha * delta / (1 + len(rows))
    return new


def test_value_matches_reference_with_ignored_rows():
    features, labels, centers = make_batch(0)
    got = make_loss(centers)(features, labels)
    torch.testing.assert_close(got.double(), reference_value(features, labels, centers))


def test_value_uses_the_centers_from_before_the_update():
    features, labels, centers = make_batch(1)
    loss_fn = make_loss(centers).train()
    got = loss_fn(features, labels)
    assert not torch.equal(loss_fn.centers, centers)  # they did move
    torch.testing.assert_close(got.double(), reference_value(features, labels, centers))


@pytest.mark.parametrize("alpha", [0.5, 1.0, 0.1])
def test_training_update_follows_the_paper(alpha):
    features, labels, centers = make_batch(2)
    loss_fn = make_loss(centers, alpha).train()
    loss_fn(features, labels)
    expected = reference_update(features, labels, centers, alpha)
    torch.testing.assert_close(loss_fn.centers.double(), expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(loss_fn.centers[4], centers[4])  # an absent class keeps its center


def test_update_by_hand_for_one_class():
    loss_fn = CenterLoss(num_classes=2, feat_dim=2, alpha=0.5).train()
    loss_fn.centers.copy_(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    features = torch.tensor([[3.0, 1.0], [1.0, 5.0]])
    loss_fn(features, torch.tensor([0, 0]))
    # Δc_0 = ((1,1) − (3,1) + (1,1) − (1,5)) / (1 + 2) = (−2, −4) / 3; c_0 ← c_0 − 0.5·Δc_0
    expected = torch.tensor([[1.0 + 1.0 / 3.0, 1.0 + 2.0 / 3.0], [0.0, 0.0]])
    torch.testing.assert_close(loss_fn.centers, expected)


def test_alpha_zero_leaves_the_centers_unchanged():
    features, labels, centers = make_batch(3)
    loss_fn = make_loss(centers, alpha=0.0).train()
    loss_fn(features, labels)
    assert torch.equal(loss_fn.centers, centers)


def test_eval_mode_does_not_update():
    features, labels, centers = make_batch(4)
    loss_fn = make_loss(centers).eval()
    loss_fn(features, labels)
    assert torch.equal(loss_fn.centers, centers)


def test_centers_are_a_zero_initialised_buffer_saved_with_the_state_dict():
    loss_fn = CenterLoss(num_classes=3, feat_dim=4)
    assert list(loss_fn.parameters()) == []
    assert "centers" in loss_fn.state_dict()
    assert loss_fn.centers.shape == (3, 4) and (loss_fn.centers == 0).all()


def test_gradient_is_the_difference_over_n():
    features, labels, centers = make_batch(5)
    features.requires_grad_(True)
    make_loss(centers)(features, labels).backward()
    keep = labels != IGNORE
    expected = torch.zeros_like(features)
    expected[keep] = (features.detach()[keep] - centers[labels[keep]]) / int(keep.sum())
    assert features.grad is not None
    torch.testing.assert_close(features.grad, expected)


def test_gradcheck_with_respect_to_features():
    features, labels, centers = make_batch(6, n=12, dim=3)
    features = features.double().requires_grad_(True)
    loss_fn = make_loss(centers).eval()
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, labels), (features,))


@pytest.mark.parametrize("n", [0, 5])
def test_no_valid_row_gives_finite_zero_zero_gradient_and_no_update(n):
    features, labels, centers = make_batch(7, n=n)
    labels.fill_(IGNORE)
    features.requires_grad_(True)
    loss_fn = make_loss(centers).train()
    loss = loss_fn(features, labels)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(loss)
    assert features.grad is not None and (features.grad == 0).all()
    assert torch.equal(loss_fn.centers, centers)


def test_labels_outside_the_classes_are_rejected():
    features, labels, centers = make_batch(8)
    labels[0] = 5
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        make_loss(centers)(features, labels)


def test_bfloat16_autocast_is_finite_and_matches_float32():
    features, labels, centers = make_batch(9, n=64, dim=16)
    features = features.bfloat16()
    expected = make_loss(centers)(features.float(), labels)
    loss_fn = make_loss(centers)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_fn(features, labels)
    assert got.dtype == torch.float32 and torch.isfinite(got)
    torch.testing.assert_close(got, expected)
    assert loss_fn.centers.dtype == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_center_loss_on_cuda_matches_cpu():
    features, labels, centers = make_batch(10, n=200, dim=8)
    cpu, cuda = make_loss(centers), make_loss(centers).cuda()
    torch.testing.assert_close(cuda(features.cuda(), labels.cuda()).cpu(), cpu(features, labels))
    torch.testing.assert_close(cuda.centers.cpu(), cpu.centers)
