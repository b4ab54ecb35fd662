import math

import pytest
import torch
import torch.nn.functional as F

from ablate.losses.aux import aux_weight_at, cpp_kl, cross_entropy, head_loss


@pytest.mark.parametrize(
    ("schedule", "progress", "expected"),
    [
        ("constant", 0.7, 0.4),
        ("linear", 0.0, 0.4),
        ("linear", 0.25, 0.3),
        ("linear", 1.0, 0.0),
        ("step", 0.49, 0.4),
        ("step", 0.5, 0.0),
        ("cosine", 0.5, 0.2),
        ("cosine", 1.0, 0.0),
        ("exp", 0.0, 0.4),
        ("exp", 1.0, 0.04),
        ("exp", 0.5, 0.4 * math.sqrt(0.1)),
    ],
)
def test_schedules_follow_their_formulas(schedule: str, progress: float, expected: float) -> None:
    assert aux_weight_at(schedule, 0.4, progress, until=0.5, gamma=0.1) == pytest.approx(expected)


def test_unknown_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed: constant, linear"):
        aux_weight_at("sometimes", 0.4, 0.5)


def test_cross_entropy_is_the_mean_over_valid_pixels_and_zero_when_all_ignored() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    labels = torch.randint(0, 3, (2, 4, 4))
    labels[0, 0] = 255
    valid = labels != 255
    by_hand = -F.log_softmax(logits, 1).gather(1, labels.clamp(max=2)[:, None])[:, 0][valid].mean()
    assert float(cross_entropy(logits, labels)) == pytest.approx(float(by_hand.detach()))
    empty = cross_entropy(logits, torch.full_like(labels, 255))
    empty.backward()
    assert float(empty) == 0.0 and logits.grad is not None and not logits.grad.any()


def test_full_target_upsamples_the_logits_bilinearly() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 2, 2)
    labels = torch.randint(0, 3, (1, 8, 8))
    up = F.interpolate(logits, (8, 8), mode="bilinear", align_corners=False)
    assert head_loss(logits, labels, "full") == pytest.approx(float(F.cross_entropy(up, labels)))


def test_nearest_target_takes_the_pixels_interpolate_picks() -> None:
    torch.manual_seed(2)
    logits = torch.randn(2, 4, 3, 3)
    labels = torch.randint(0, 4, (2, 7, 7))
    small = F.interpolate(labels[:, None].float(), (3, 3), mode="nearest")[:, 0].long()
    assert head_loss(logits, labels, "nearest") == pytest.approx(
        float(F.cross_entropy(logits, small))
    )


def test_cpp_target_is_the_kl_of_class_shares_over_cells_with_valid_pixels() -> None:
    torch.manual_seed(3)
    logits = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    labels = torch.tensor([[[0, 0, 1, 1], [0, 1, 1, 1], [255, 255, 2, 2], [255, 255, 2, 0]]])
    p = logits.softmax(1)[0]
    # shares per 2×2 cell, ignored pixels not counted; the bottom-left cell has none
    q = {(0, 0): [3 / 4, 1 / 4, 0], (0, 1): [0, 1, 0], (1, 1): [1 / 4, 0, 3 / 4]}
    kls = [
        sum(qc * math.log(qc / float(p[c, i, j])) for c, qc in enumerate(shares) if qc > 0)
        for (i, j), shares in q.items()
    ]
    assert float(cpp_kl(logits, labels)) == pytest.approx(sum(kls) / 3)
