"""Median-frequency class weights and the weighted cross-entropy against hand computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ablate.losses.balance import median_frequency_weights, weighted_cross_entropy

IGNORE = 255

# two 2×3 label maps, 4 classes, class 3 never occurs, one ignored pixel each
TINY = torch.tensor(
    [
        [[0, 0, 0], [0, 1, IGNORE]],  # valid 5: class 0 ×4, class 1 ×1
        [[0, 2, 2], [2, 2, IGNORE]],  # valid 5: class 0 ×1, class 2 ×4
    ]
)


def test_weights_match_the_hand_computation():
    # f_c = pixels of c / valid pixels of the images holding c (Eigen & Fergus):
    # f_0 = 5/10, f_1 = 1/5, f_2 = 4/5; median 0.5; class 3 has no pixel: weight 0
    got = median_frequency_weights([TINY], 4)
    torch.testing.assert_close(got, torch.tensor([1.0, 2.5, 0.625, 0.0]))


def test_weights_do_not_depend_on_how_the_labels_are_batched():
    one = median_frequency_weights([TINY], 4)
    torch.testing.assert_close(median_frequency_weights([TINY[:1], TINY[1]], 4), one)


def test_an_even_number_of_classes_takes_the_mean_of_the_middle_two():
    labels = torch.tensor([[[0, 0, 0, 1]], [[2, 2, 2, 2]]])  # f = 3/4, 1/4, 1; median 3/4
    torch.testing.assert_close(
        median_frequency_weights([labels], 3), torch.tensor([1.0, 3.0, 0.75])
    )
    labels = torch.tensor([[[0, 0, 0, 1]]])  # f = 3/4, 1/4: median 1/2
    torch.testing.assert_close(
        median_frequency_weights([labels], 2), torch.tensor([2.0 / 3.0, 2.0])
    )


def test_no_valid_pixel_gives_zero_weights_and_bad_labels_are_refused():
    assert (median_frequency_weights([torch.full((1, 2, 2), IGNORE)], 3) == 0).all()
    assert (median_frequency_weights([], 3) == 0).all()
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        median_frequency_weights([torch.tensor([[[0, 4]]])], 4)


def reference_weighted_ce(logits, labels, weight):
    log_p = F.log_softmax(logits.double(), 1)
    num = den = 0.0
    for b, i, j in torch.nonzero(labels != IGNORE).tolist():
        y = int(labels[b, i, j])
        num += float(weight[y]) * -float(log_p[b, y, i, j])
        den += float(weight[y])
    return torch.tensor(num / den if den else 0.0, dtype=torch.float64)


def make_batch(seed: int):
    gen = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(2, 4, 5, 6, generator=gen)
    labels = torch.randint(0, 3, (2, 5, 6), generator=gen)  # class 3 is empty
    labels[torch.rand(labels.shape, generator=gen) < 0.25] = IGNORE
    return logits, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_ce_is_the_weighted_mean_over_valid_pixels(seed):
    logits, labels = make_batch(seed)
    weight = torch.tensor([0.5, 2.0, 1.25, 0.0])  # the empty class weighs 0
    got = weighted_cross_entropy(logits, labels, weight)
    torch.testing.assert_close(got.double(), reference_weighted_ce(logits, labels, weight))
    expected = F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE)
    torch.testing.assert_close(got, expected)  # PyTorch's weighted mean


@pytest.mark.parametrize("case", ["all ignored", "only zero-weight classes"])
def test_weighted_ce_with_nothing_to_weigh_is_a_finite_zero_with_zero_gradient(case):
    logits, labels = make_batch(3)
    logits.requires_grad_(True)
    labels = torch.full_like(labels, IGNORE) if case == "all ignored" else labels.clamp(max=0)
    loss = weighted_cross_entropy(logits, labels, torch.tensor([0.0, 1.0, 1.0, 1.0]))
    loss.backward()
    assert loss.item() == 0.0
    assert logits.grad is not None and (logits.grad == 0).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_weights_and_weighted_ce_on_cuda_match_cpu():
    weights = median_frequency_weights([TINY.cuda()], 4)
    assert weights.device.type == "cuda"
    torch.testing.assert_close(weights.cpu(), median_frequency_weights([TINY], 4))
    logits, labels = make_batch(4)
    got = weighted_cross_entropy(logits.cuda(), labels.cuda(), weights)
    torch.testing.assert_close(got.cpu(), weighted_cross_entropy(logits, labels, weights.cpu()))
