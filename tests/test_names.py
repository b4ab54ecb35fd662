"""The name lists in ablate.names are the ones the code acts on."""

import pytest

from ablate.data.digits import DIGIT_CLASS_NAMES
from ablate.losses import aux_weight_at
from ablate.losses.aux import head_loss
from ablate.models import MODELS as BUILDERS
from ablate.names import (
    AUX_TARGETS,
    FIXED_CLASSES,
    METRICS,
    MODELS,
    SCHEDULES,
    is_fraction_metric,
    is_known_metric,
    metric_info,
)


def test_every_built_in_model_name_has_a_builder_and_no_builder_is_unnamed() -> None:
    assert set(MODELS) == set(BUILDERS)


def test_the_digits_class_count_the_spec_enforces_is_its_class_names() -> None:
    assert FIXED_CLASSES["digits"] == len(DIGIT_CLASS_NAMES)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_listed_schedule_has_a_formula(schedule: str) -> None:
    assert aux_weight_at(schedule, 0.4, 0.0) == pytest.approx(0.4)


def test_an_unlisted_schedule_is_refused_naming_the_list() -> None:
    with pytest.raises(ValueError, match=", ".join(SCHEDULES)):
        aux_weight_at("sqrt", 0.4, 0.5)


@pytest.mark.parametrize("target", AUX_TARGETS)
def test_every_listed_aux_target_gives_a_loss(target: str) -> None:
    import torch

    logits = torch.randn(2, 3, 4, 4)
    labels = torch.randint(0, 3, (2, 8, 8))
    assert torch.isfinite(head_loss(logits, labels, target, 255))


def test_fractions_are_shown_in_points_and_the_loss_raw() -> None:
    for name in ("val/mIoU", "val/boundary_iou", "val/small_iou", "val/iou/car", "best/val/mIoU"):
        assert is_fraction_metric(name) and metric_info(name).unit == "%"
    assert metric_info("val/loss").scale == 1.0 and metric_info("val/loss").goal == "minimize"
    assert not is_fraction_metric("train/loss") and not is_fraction_metric("duration_s")


def test_the_study_metric_may_be_any_listed_or_per_class_metric() -> None:
    assert all(is_known_metric(m) for m in METRICS)
    assert is_known_metric("val/iou/ring") and not is_known_metric("val/miou")
