import pytest
import torch
import torch.nn.functional as F

from ablate.losses.aux import aux_weight_at
from ablate.losses.objective import Objective
from ablate.spec import LossSpec


def _outputs(seed: int = 0) -> tuple[dict[str, object], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    outputs = {
        "out": torch.randn(2, 4, 4, 4, generator=g, requires_grad=True),
        "aux": {"stage3": torch.randn(2, 4, 4, 4, generator=g, requires_grad=True)},
        "embed": torch.randn(2, 8, 4, 4, generator=g, requires_grad=True),
    }
    labels = torch.randint(0, 4, (2, 16, 16), generator=g)
    labels[:, :2] = 255
    return outputs, labels


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> float:
    up = F.interpolate(logits, labels.shape[-2:], mode="bilinear", align_corners=False)
    return float(F.cross_entropy(up, labels, ignore_index=255))


def test_total_is_ce_plus_the_scheduled_aux_weight_times_the_aux_term() -> None:
    spec = LossSpec.model_validate({"aux": {"weight": 0.4, "schedule": "linear"}})
    outputs, labels = _outputs()
    loss = Objective(spec, 4, 8)(outputs, labels, progress=0.25)
    ce = _ce(outputs["out"], labels)  # type: ignore[arg-type]
    aux = _ce(outputs["aux"]["stage3"], labels)  # type: ignore[index]
    assert float(loss.terms["ce"]) == pytest.approx(ce, rel=1e-5)
    assert float(loss.terms["aux"]) == pytest.approx(aux, rel=1e-5)
    assert loss.weights["aux"] == pytest.approx(aux_weight_at("linear", 0.4, 0.25)) == 0.3
    assert float(loss.total) == pytest.approx(ce + 0.3 * aux, rel=1e-5)


def test_zero_aux_weight_drops_the_term() -> None:
    spec = LossSpec.model_validate({"aux": {"weight": 0.0}})
    outputs, labels = _outputs()
    loss = Objective(spec, 4, 8)(outputs, labels, progress=0.0)
    assert set(loss.terms) == {"ce"}
    assert float(loss.total) == pytest.approx(_ce(outputs["out"], labels), rel=1e-5)  # type: ignore[arg-type]


def test_every_term_enters_the_total_with_its_weight() -> None:
    spec = LossSpec.model_validate(
        {
            "ce": {"ohem_thresh": 0.7, "min_kept": 10},
            "lovasz": 0.5,
            "aux": {"weight": 0.2, "target": "cpp"},
            "center": {"weight": 0.01},
        }
    )
    outputs, labels = _outputs(1)
    loss = Objective(spec, 4, 8)(outputs, labels, progress=0.5)
    assert set(loss.terms) == {"ce", "aux", "lovasz", "center"}
    by_hand = sum(loss.weights[k] * float(loss.terms[k]) for k in loss.terms)
    assert float(loss.total) == pytest.approx(by_hand, rel=1e-6)
    assert loss.weights == {"ce": 1.0, "aux": 0.2, "lovasz": 0.5, "center": 0.01}
    loss.total.backward()
    assert all(torch.isfinite(t.grad).all() for t in (outputs["out"], outputs["embed"]))  # type: ignore[union-attr]


def test_center_weight_follows_its_warmup_and_the_term_uses_unit_features() -> None:
    spec = LossSpec.model_validate(
        {"aux": {"weight": 0.0}, "center": {"weight": 0.1, "warmup": 0.5}}
    )
    objective = Objective(spec, 4, 8)
    center = objective.center
    assert center is not None and center.normalize and center.init == "first_batch"
    for progress, expected in [(0.0, 0.0), (0.25, 0.05), (0.5, 0.1), (0.9, 0.1)]:
        outputs, labels = _outputs(2)
        loss = objective(outputs, labels, progress=progress)
        assert loss.weights["center"] == pytest.approx(expected)
        assert 0.0 <= float(loss.terms["center"]) <= 2.0  # 1 − cos
        by_hand = float(loss.terms["ce"]) + expected * float(loss.terms["center"])
        assert float(loss.total) == pytest.approx(by_hand, rel=1e-6)
    assert center.initialized.any()  # centers are set and move during the ramp


def test_the_papers_center_loss_is_one_switch_away() -> None:
    spec = LossSpec.model_validate({"center": {"weight": 0.1, "normalize": False, "init": "zero"}})
    center = Objective(spec, 4, 8).center
    assert center is not None and not center.normalize and center.initialized.all()


def _weighted_ce(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor) -> float:
    up = F.interpolate(logits, labels.shape[-2:], mode="bilinear", align_corners=False)
    return float(F.cross_entropy(up, labels, weight=weight, ignore_index=255))


def test_balanced_ce_is_the_weighted_mean_and_the_weights_are_saved() -> None:
    spec = LossSpec.model_validate({"ce": {"class_weight": "balanced"}, "aux": {"weight": 0.0}})
    weight = torch.tensor([0.5, 2.0, 1.0, 0.0])
    objective = Objective(spec, 4, 8, class_weight=weight)
    outputs, labels = _outputs()
    loss = objective(outputs, labels, progress=0.0)
    expected = _weighted_ce(outputs["out"], labels, weight)  # type: ignore[arg-type]
    assert float(loss.terms["ce"]) == pytest.approx(expected, rel=1e-5)
    assert torch.equal(objective.state_dict()["class_weight"], weight)
    assert "class_weight" not in Objective(LossSpec(), 4, 8).state_dict()


def test_balanced_ohem_weights_the_kept_pixels() -> None:
    spec = LossSpec.model_validate(
        {"ce": {"class_weight": "balanced", "ohem_thresh": 1.0, "min_kept": 1}}
    )
    weight = torch.tensor([0.5, 2.0, 1.0, 0.0])
    outputs, labels = _outputs(3)
    loss = Objective(spec, 4, 8, class_weight=weight)(outputs, labels, progress=0.0)
    expected = _weighted_ce(outputs["out"], labels, weight)  # every p < 1: all kept
    assert float(loss.terms["ce"]) == pytest.approx(expected, rel=1e-5)  # type: ignore[arg-type]


def test_class_weights_come_with_balanced_and_only_then() -> None:
    balanced = LossSpec.model_validate({"ce": {"class_weight": "balanced"}})
    with pytest.raises(ValueError, match="balanced"):
        Objective(balanced, 4, 8)
    with pytest.raises(ValueError, match="balanced"):
        Objective(LossSpec(), 4, 8, class_weight=torch.ones(4))
    with pytest.raises(ValueError, match=r"\[4\]"):
        Objective(balanced, 4, 8, class_weight=torch.ones(3))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ce.class_weight", "median", r"loss\.ce\.class_weight = 'median': allowed: null"),
        ("ce.class_weight", True, r"loss\.ce\.class_weight = True: allowed: null"),
        ("center.init", "mean", r"loss\.center\.init = 'mean': Input should be 'first_batch'"),
        ("center.warmup", 1.5, r"loss\.center\.warmup = 1\.5: "),
        ("center.normalize", "maybe", r"loss\.center\.normalize = 'maybe': "),
    ],
)
def test_a_bad_value_gets_one_message_naming_key_and_value(key, value, message) -> None:
    from pathlib import Path

    from pydantic import ValidationError

    from ablate.errors import SpecError
    from ablate.spec import Recipe, raise_validation, set_path

    raw: dict[str, object] = {}
    set_path(raw, f"loss.{key}", value)
    with pytest.raises(ValidationError) as caught:
        Recipe.model_validate(raw)
    with pytest.raises(SpecError, match=message) as said:
        raise_validation(Path("s.yaml"), caught.value, Recipe)
    assert "problems" not in str(said.value)  # one message, not one per union member
