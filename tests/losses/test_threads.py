"""The loss kernels run on one intra-op thread on CPU: same results, count restored."""

from __future__ import annotations

import pytest
import torch

from ablate.losses import OhemCrossEntropy, cpp_pool, lovasz_softmax
from ablate.losses._threads import one_thread

IGNORE = 255


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_one_thread_inside_and_the_count_restored_after(two_threads):
    with one_thread(torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_the_count_is_restored_after_an_error(two_threads):
    with pytest.raises(RuntimeError), one_thread(torch.device("cpu")):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def test_other_devices_keep_the_count(two_threads):
    with one_thread(torch.device("meta")):
        assert torch.get_num_threads() == 2


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(2, 5, 48, 64, generator=gen)  # 3072 pixels: above the grain size
    labels = torch.randint(0, 5, (2, 48, 64), generator=gen)
    labels[torch.rand(labels.shape, generator=gen) < 0.1] = IGNORE
    return logits, labels


def every_kernel(logits: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    leaf = logits.detach().requires_grad_(True)
    losses = lovasz_softmax(leaf.softmax(1), labels) + OhemCrossEntropy(min_kept=500)(leaf, labels)
    losses.backward()
    assert leaf.grad is not None
    return [losses.detach(), leaf.grad, cpp_pool(labels, (6, 8), 5)]


def test_kernels_give_the_same_results_with_two_threads_and_keep_the_count(two_threads):
    logits, labels = batch(0)
    with_two = every_kernel(logits, labels)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)
    for ours, single in zip(with_two, every_kernel(logits, labels), strict=True):
        torch.testing.assert_close(ours, single, rtol=1e-6, atol=1e-8)
