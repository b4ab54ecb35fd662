"""`backbone: timm/<name>`: built through timm where it imports; one clear error where not."""

import pytest
import torch

from ablate.errors import ModelContractError
from ablate.models import build_model


def _timm_imports() -> str:
    """Why timm cannot be used here ('' when it can)."""
    try:
        import timm  # noqa: F401
    except Exception as exc:  # ImportError, or torchvision's operator error on import
        return f"{type(exc).__name__}: {exc}"
    return ""


WHY = _timm_imports()


@pytest.mark.skipif(not WHY, reason="timm imports here: the missing-timm message cannot show")
def test_a_timm_backbone_without_timm_is_one_clear_error_naming_the_extra() -> None:
    with pytest.raises(ModelContractError) as refused:
        build_model("pspnet", 3, {"backbone": "timm/resnet18"})
    message = str(refused.value)
    assert "timm/resnet18" in message and "pip install -e '.[timm]'" in message
    assert "\n" not in message


@pytest.mark.skipif(bool(WHY), reason=f"timm does not import here ({WHY[:120]})")
@pytest.mark.parametrize("model", ["pspnet", "deeplabv3plus", "dsn"])
def test_every_network_builds_on_a_timm_backbone(model: str) -> None:
    net = build_model(model, 3, {"backbone": "timm/resnet18", "output_stride": 16})
    out = net.eval()(torch.zeros(1, 3, 64, 64))
    assert out["out"].shape[:2] == (1, 3)
