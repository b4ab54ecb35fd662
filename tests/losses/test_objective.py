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
