"""`backbone: timm/<name>`: any timm model that builds with `features_only`, where timm imports.

timm imports torchvision, which does not import beside the CPU torch wheel this project is
built on, so timm is an optional extra (`pip install -e '.[timm]'`) and never needed by the
core: without it, such a backbone is one clear error before training.
"""

from __future__ import annotations

from torch import Tensor, nn

from ablate.errors import ModelContractError, one_line

PREFIX = "timm/"


class TimmBackbone(nn.Module):
    """Stages 1–4 of a timm model as `stage1` … `stage4`; `channels[k]` is stage k+1's width."""

    def __init__(self, name: str, output_stride: int, pretrained: bool) -> None:
        super().__init__()
        try:
            import timm
        except Exception as exc:  # ImportError, or torchvision's operator error on import
            raise ModelContractError(
                f"backbone '{PREFIX}{name}' needs timm, which does not import here "
                f"({one_line(exc)}); install the extra where torchvision works: "
                "pip install -e '.[timm]', or use a built-in backbone (resnet18 ... resnet101)"
            ) from None
        self.net = timm.create_model(
            name,
            features_only=True,
            pretrained=pretrained,
            output_stride=output_stride,
            out_indices=(1, 2, 3, 4),
        )
        self.channels: tuple[int, ...] = tuple(self.net.feature_info.channels())

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {f"stage{k}": f for k, f in enumerate(self.net(x), start=1)}
