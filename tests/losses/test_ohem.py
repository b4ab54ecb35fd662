"""OhemCrossEntropy against a float64 reference written from its definition."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ablate.losses.ohem import OhemCrossEntropy, _kth_smallest

IGNORE = 255


def reference_ohem(
    logits: torch.Tensor, labels: torch.Tensor, thresh: float, min_kept: int
) -> torch.Tensor:
    """Keep p < thresh, and every p <= the k-th smallest p (k = min(min_kept, n_valid))."""
    log_p = F.log_softmax(logits.double(), 1)
    probs, nlls = [], []
    for b in range(labels.shape[0]):
        for i in range(labels.shape[1]):
            for j in range(labels.shape[2]):
                y = int(labels[b, i, j])
                if y != IGNORE:
                    nlls.append(-log_p[b, y, i, j])
                    probs.append(math.exp(-float(nlls[-1])))
    k = min(min_kept, len(probs))
    kth = sorted(probs)[k - 1] if k > 0 else -math.inf
    kept = [nll for p, nll in zip(probs, nlls, strict=True) if p < thresh or p <= kth]
    if not kept:
        return torch.zeros((), dtype=torch.float64)
    return torch.stack(kept).mean()


def make_batch(seed: int, shape=(2, 4, 6, 7), ignored: float = 0.25, scale: float = 2.0):
    gen = torch.Generator().manual_seed(seed)
    batch, classes, height, width = shape
    logits = scale * torch.randn(shape, generator=gen)
    labels = torch.randint(0, classes - 1, (batch, height, width), generator=gen)  # one absent
    labels[torch.rand(labels.shape, generator=gen) < ignored] = IGNORE
    return logits, labels


@pytest.mark.parametrize(
    ("thresh", "min_kept"),
    [(0.7, 10), (0.7, 0), (0.3, 5), (0.0, 7), (0.05, 40), (0.9, 1), (0.5, 10_000)],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_ohem_matches_reference(thresh, min_kept, seed):
    logits, labels = make_batch(seed)
    got = OhemCrossEntropy(thresh, min_kept)(logits, labels)
    expected = reference_ohem(logits, labels, thresh, min_kept)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 2, 50, 999, 1000])
def test_kth_smallest_selects_exactly_the_kth_value(k):
    gen = torch.Generator().manual_seed(k)
    values = torch.rand(1000, generator=gen) ** 6  # values over many buckets
    values[:100] = 0.0
    values[100:300] = 0.5  # a large tie
    values[300:320] = float("inf")
    expected = torch.sort(values).values[k - 1]
    assert _kth_smallest(values, k) == expected


def test_min_kept_larger_than_the_valid_pixels_keeps_every_valid_pixel():
    logits, labels = make_batch(2)
    got = OhemCrossEntropy(thresh=0.0, min_kept=10**6)(logits, labels)
    expected = F.cross_entropy(logits, labels, ignore_index=IGNORE)
    torch.testing.assert_close(got, expected)


def test_a_threshold_above_one_is_plain_cross_entropy():
    logits, labels = make_batch(3)
    got = OhemCrossEntropy(thresh=1.01, min_kept=0)(logits, labels)
    torch.testing.assert_close(got, F.cross_entropy(logits, labels, ignore_index=IGNORE))


def test_ties_at_the_kth_probability_are_all_kept():
    # equal logits: every valid pixel has p = 1/C, so the k-th smallest ties with all of them
    logits, labels = make_batch(4)
    logits = torch.zeros_like(logits)
    got = OhemCrossEntropy(thresh=0.1, min_kept=3)(logits, labels)
    torch.testing.assert_close(got, torch.tensor(math.log(4.0)))
    expected = reference_ohem(logits, labels, 0.1, 3)
    torch.testing.assert_close(got.double(), expected)


def test_ties_in_part_of_the_batch_match_reference():
    logits, labels = make_batch(5)
    logits[0] = 0.0  # image 0: tied probabilities 1/4; image 1: random
    for min_kept in (1, 20, 60):
        got = OhemCrossEntropy(thresh=0.2, min_kept=min_kept)(logits, labels)
        expected = reference_ohem(logits, labels, 0.2, min_kept)
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_no_selection_runs_when_enough_pixels_are_below_the_threshold(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("k-th value selection should not run")

    monkeypatch.setattr(torch, "kthvalue", forbidden)
    logits, labels = make_batch(6, scale=0.1)  # every p close to 1/4 < 0.7
    got = OhemCrossEntropy(thresh=0.7, min_kept=20)(logits, labels)
    torch.testing.assert_close(got, F.cross_entropy(logits, labels, ignore_index=IGNORE))


def test_all_pixels_ignored_gives_finite_zero_and_zero_gradient():
    logits, labels = make_batch(7)
    labels.fill_(IGNORE)
    logits.requires_grad_(True)
    loss = OhemCrossEntropy()(logits, labels)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(loss)
    assert logits.grad is not None and (logits.grad == 0).all()


def test_nothing_kept_gives_finite_zero_and_zero_gradient():
    logits, labels = make_batch(8)
    logits.requires_grad_(True)
    loss = OhemCrossEntropy(thresh=0.0, min_kept=0)(logits, labels)
    loss.backward()
    assert loss.item() == 0.0
    assert logits.grad is not None and (logits.grad == 0).all()


def test_gradient_matches_gradcheck_with_a_stable_selection():
    logits, labels = make_batch(9, shape=(1, 3, 3, 4), ignored=0.2)
    logits = logits.double().requires_grad_(True)
    # the selection changes nowhere within gradcheck's step: p values are far from the cut-offs
    loss_fn = OhemCrossEntropy(thresh=0.6, min_kept=4)
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, labels), (logits,))


def test_gradient_flows_only_through_kept_pixels():
    logits, labels = make_batch(10)
    logits.requires_grad_(True)
    OhemCrossEntropy(thresh=0.3, min_kept=5)(logits, labels).backward()
    with torch.no_grad():
        p = F.softmax(logits, 1).gather(1, labels.clamp(max=3)[:, None])[:, 0]
        easy = (p >= 0.3) & (labels != IGNORE)
        easy &= p > p[labels != IGNORE].sort().values[4]  # above the 5th smallest as well
    assert logits.grad is not None
    assert (logits.grad.abs().sum(1)[easy] == 0).all()
    assert (logits.grad.abs().sum(1)[labels == IGNORE] == 0).all()


def test_bfloat16_autocast_is_finite_and_close_to_float32():
    logits, labels = make_batch(11, shape=(2, 5, 16, 16))
    logits = logits.bfloat16()
    loss_fn = OhemCrossEntropy(thresh=0.7, min_kept=50)
    expected = loss_fn(logits.float(), labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_fn(logits, labels)
    assert torch.isfinite(got) and got.dtype == torch.float32  # computed in float32, not bf16
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ohem_on_cuda_matches_cpu():
    logits, labels = make_batch(12, shape=(2, 5, 32, 32))
    loss_fn = OhemCrossEntropy(thresh=0.5, min_kept=300)
    torch.testing.assert_close(loss_fn(logits.cuda(), labels.cuda()).cpu(), loss_fn(logits, labels))


def reference_weighted_ohem(logits, labels, thresh, min_kept, weight):
    """The kept set of `reference_ohem`; Σ_K w_y·nll / Σ_K w_y."""
    log_p = F.log_softmax(logits.double(), 1)
    rows = []  # (p, nll, w) of every valid pixel
    for b, i, j in torch.nonzero(labels != IGNORE).tolist():
        y = int(labels[b, i, j])
        nll = -float(log_p[b, y, i, j])
        rows.append((math.exp(-nll), nll, float(weight[y])))
    k = min(min_kept, len(rows))
    kth = sorted(p for p, _, _ in rows)[k - 1] if k > 0 else -math.inf
    kept = [(nll, w) for p, nll, w in rows if p < thresh or p <= kth]
    den = sum(w for _, w in kept)
    return torch.tensor(sum(w * nll for nll, w in kept) / den if den else 0.0, dtype=torch.float64)


@pytest.mark.parametrize(("thresh", "min_kept"), [(0.7, 10), (0.3, 5), (0.05, 40), (1.01, 0)])
def test_class_weights_apply_to_the_kept_pixels_mean(thresh, min_kept):
    logits, labels = make_batch(4)
    weight = torch.tensor([0.5, 2.0, 1.25, 0.0])  # the absent class weighs 0
    got = OhemCrossEntropy(thresh, min_kept)(logits, labels, weight)
    expected = reference_weighted_ohem(logits, labels, thresh, min_kept, weight)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
    if thresh > 1:  # everything kept: PyTorch's weighted mean
        plain = F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE)
        torch.testing.assert_close(got, plain)


def test_kept_pixels_of_zero_weight_only_give_a_finite_zero_with_zero_gradient():
    logits, labels = make_batch(5)
    logits.requires_grad_(True)
    loss = OhemCrossEntropy(0.7, 10)(logits, labels, torch.zeros(4))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None and (logits.grad == 0).all()
