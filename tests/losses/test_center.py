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


# ----------------------------------------------------------------- normalize, init, warm-up


def unit(x: torch.Tensor) -> torch.Tensor:
    return x.double() / x.double().norm(dim=1, keepdim=True)


def test_normalize_compares_unit_features_with_the_centers():
    features, labels, centers = make_batch(11)
    centers = unit(centers).float()
    loss_fn = CenterLoss(5, 6, normalize=True).eval()
    loss_fn.centers.copy_(centers)
    got = loss_fn(3.0 * features, labels)  # the embedding's scale does not matter
    torch.testing.assert_close(got.double(), reference_value(unit(features), labels, centers))
    keep = labels != IGNORE  # ½‖x̂ − ĉ‖² = 1 − cos(x, c)
    cos = (unit(features[keep]) * centers[labels[keep]].double()).sum(1)
    torch.testing.assert_close(got.double(), (1 - cos).mean())


def test_normalize_update_is_the_papers_rule_on_unit_features_then_unit_centers():
    features, labels, centers = make_batch(12)
    centers = unit(centers).float()
    loss_fn = CenterLoss(5, 6, alpha=0.5, normalize=True).train()
    loss_fn.centers.copy_(centers)
    loss_fn(features, labels)
    expected = unit(reference_update(unit(features), labels, centers, 0.5))
    torch.testing.assert_close(loss_fn.centers[:4].double(), expected[:4], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss_fn.centers.norm(dim=1)[:4], torch.ones(4))
    assert torch.equal(loss_fn.centers[4], centers[4])  # absent: untouched


def test_normalize_gradient_flows_through_the_norm_and_is_tangent():
    features, labels, centers = make_batch(13, n=12, dim=3)
    features = features.double().requires_grad_(True)
    loss_fn = CenterLoss(5, 3, normalize=True).double().eval()
    loss_fn.centers.copy_(unit(centers))
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, labels), (features,))
    loss_fn(features, labels).backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    # the value depends on each row's direction only: no gradient along the row itself
    radial = (features.grad * features.detach()).sum(1)
    torch.testing.assert_close(radial, torch.zeros_like(radial))


def test_first_batch_sets_each_present_class_to_its_mean_and_measures_the_spread():
    features, labels, _ = make_batch(14)
    features[labels == IGNORE] = 1e6  # ignored rows must not reach a mean
    loss_fn = CenterLoss(5, 6, init="first_batch").train()
    assert not loss_fn.initialized.any() and "initialized" in loss_fn.state_dict()
    got = loss_fn(features, labels)
    means = torch.zeros(5, 6, dtype=torch.float64)
    for j in range(4):
        means[j] = features[labels == j].double().mean(0)
    torch.testing.assert_close(loss_fn.centers.double(), means, rtol=1e-5, atol=1e-6)
    assert loss_fn.initialized.tolist() == [True, True, True, True, False]
    # the value is each row's distance to its freshly set class mean
    torch.testing.assert_close(got.double(), reference_value(features, labels, means))


def test_a_class_absent_stays_uninitialised_until_seen_then_others_follow_the_paper():
    features, labels, _ = make_batch(15)
    loss_fn = CenterLoss(5, 6, alpha=0.5, init="first_batch").train()
    loss_fn(features, labels)
    assert (loss_fn.centers[4] == 0).all() and not loss_fn.initialized[4]
    before = loss_fn.centers.clone()
    more, more_labels, _ = make_batch(16, classes=6)  # labels 0..4: class 4 now occurs
    got = loss_fn(more, more_labels)
    mean4 = more[more_labels == 4].double().mean(0)
    expected = reference_update(more, more_labels, before, 0.5)
    expected[4] = mean4  # set to its mean, and the update leaves a center at the batch mean
    torch.testing.assert_close(loss_fn.centers.double(), expected, rtol=1e-5, atol=1e-6)
    assert loss_fn.initialized.all()
    used = before.double().clone()
    used[4] = mean4  # old centers for the classes seen before, the new mean for class 4
    torch.testing.assert_close(got.double(), reference_value(more, more_labels, used))


def test_first_batch_with_normalize_starts_at_the_unit_mean_direction():
    features, labels, _ = make_batch(17)
    loss_fn = CenterLoss(5, 6, normalize=True, init="first_batch").train()
    loss_fn(features, labels)
    for j in range(4):
        direction = unit(unit(features[labels == j]).mean(0, keepdim=True))[0]
        torch.testing.assert_close(loss_fn.centers[j].double(), direction, rtol=1e-5, atol=1e-6)
    assert (loss_fn.centers[4] == 0).all()


def test_eval_mode_initialises_nothing():
    features, labels, _ = make_batch(18)
    loss_fn = CenterLoss(5, 6, init="first_batch").eval()
    loss_fn(features, labels)
    assert not loss_fn.initialized.any() and (loss_fn.centers == 0).all()


def test_a_plain_call_keeps_the_papers_zero_centers_and_raw_features():
    loss_fn = CenterLoss(3, 4)
    assert not loss_fn.normalize and loss_fn.init == "zero" and loss_fn.initialized.all()
    with pytest.raises(ValueError, match="first_batch"):
        CenterLoss(3, 4, init="mean")  # type: ignore[arg-type]


def test_center_inits_are_the_specs():
    from typing import get_args

    from ablate.losses.center import CENTER_INITS
    from ablate.spec import CenterSpec

    assert set(get_args(CenterSpec.model_fields["init"].annotation)) == set(CENTER_INITS)


@pytest.mark.parametrize(
    ("warmup", "progress", "expected"),
    [
        (0.0, 0.0, 0.1),
        (0.0, 0.5, 0.1),
        (0.2, 0.0, 0.0),
        (0.2, 0.05, 0.025),
        (0.2, 0.1, 0.05),
        (0.2, 0.2, 0.1),
        (0.2, 0.7, 0.1),
        (0.2, 1.0, 0.1),
        (1.0, 0.3, 0.03),
        (1.0, 1.0, 0.1),
        (0.5, -1.0, 0.0),  # progress is clamped to [0, 1]
    ],
)
def test_warmup_ramps_lambda_linearly(warmup, progress, expected):
    from ablate.losses.center import center_weight_at

    assert center_weight_at(0.1, warmup, progress) == pytest.approx(expected, abs=1e-12)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_normalized_first_batch_center_loss_on_cuda_matches_cpu():
    features, labels, _ = make_batch(19, n=200, dim=8)
    cpu = CenterLoss(5, 8, normalize=True, init="first_batch").train()
    cuda = CenterLoss(5, 8, normalize=True, init="first_batch").cuda().train()
    for _ in range(2):
        torch.testing.assert_close(
            cuda(features.cuda(), labels.cuda()).cpu(), cpu(features, labels)
        )
    torch.testing.assert_close(cuda.centers.cpu(), cpu.centers)
    assert torch.equal(cuda.initialized.cpu(), cpu.initialized)
