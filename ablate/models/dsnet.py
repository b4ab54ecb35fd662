"""`dsnet`: a deep plain network with a companion head after every stage.

Deeply-Supervised Nets (Lee et al. 2015) and Wang et al. 2015 ("Training deeper convolutional
networks with deep supervision") add companion losses at hidden layers of plain conv nets: with no
residual or skip path, the gradient reaching the early layers passes through every later layer and
shrinks, and a loss right after those layers gives them a direct signal. This is the setting where
deep supervision is expected to matter, which `pspnet_tiny`'s residual backbone is not, so studies
of companion weights and schedules run here.

`depth` stages of `convs_per_stage` 3×3 conv + BN + ReLU, nothing else: no residuals, no skips.
Stages 1–3 start with a stride-2 conv (1/2, 1/4, 1/8); later stages keep 1/8 and use dilation 2,
as a dilated backbone would. Widths w, 2w, 4w, 4w, … . A companion head `stageK` follows every
stage but the last; the main head follows the last.

Batch norm changes the picture: at initialisation the gradient of a plain BN net grows, relative
to the weights, towards the early layers (Yang et al. 2019) instead of vanishing. `batch_norm=False`
gives the papers' setting — conv + bias + ReLU, no BN in the stages (the heads keep theirs).

Convolutions start from He init (He et al. 2015: Kaiming normal, fan_out, ReLU gain; zero bias),
which keeps the gradient's variance through a ReLU chain. `init="torch"` keeps PyTorch's default
init instead (weight variance 1/(3·fan_in), against He's 2/fan_out): without BN the first
layer's gradient is then orders of magnitude below the last one's, and the net can collapse to
background without companion losses for a reason that is the init, not the lack of deep
supervision (issue 13: 12.2 % mIoU against 23.1 % with He init, a BN-free 12-layer net).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from ablate.models._blocks import conv_bn_relu, head

MAX_STRIDED = 3  # stages 1..3 halve the resolution: output stride 8 at most
LATE_DILATION = 2  # stages after the third widen their receptive field instead
Init = Literal["he", "torch"]
INITS: tuple[Init, ...] = ("he", "torch")


def _unit(c_in: int, c_out: int, stride: int, dilation: int, batch_norm: bool) -> nn.Sequential:
    """3×3 conv + BN + ReLU, or 3×3 conv (with bias) + ReLU as in the papers' nets."""
    if batch_norm:
        return conv_bn_relu(c_in, c_out, stride, dilation)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation),
        nn.ReLU(inplace=True),
    )


def _stage(
    c_in: int, c_out: int, convs: int, stride: int, dilation: int, batch_norm: bool
) -> nn.Sequential:
    """`convs` plain conv units; the first one may stride and changes the width."""
    layers = [_unit(c_in, c_out, stride, dilation, batch_norm)]
    layers += [_unit(c_out, c_out, 1, dilation, batch_norm) for _ in range(convs - 1)]
    return nn.Sequential(*layers)


def _he_init(model: nn.Module) -> None:
    """Kaiming normal (fan_out, ReLU gain) weights and zero biases for every convolution."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DSNet(nn.Module):
    def __init__(
        self,
        num_classes: int,
        width: int = 16,
        depth: int = 4,
        convs_per_stage: int = 3,
        batch_norm: bool = True,
        init: Init = "he",
    ) -> None:
        super().__init__()
        if depth < 1 or convs_per_stage < 1 or width < 1:
            raise ValueError(
                f"dsnet needs depth, convs_per_stage and width >= 1, "
                f"got {depth}, {convs_per_stage}, {width}"
            )
        if init not in INITS:
            raise ValueError(f"dsnet init must be one of {', '.join(INITS)}, got {init!r}")
        stages: list[nn.Sequential] = []
        companions: dict[str, nn.Sequential] = {}
        c_in = 3
        for k in range(1, depth + 1):
            c_out = width * 2 ** min(k - 1, 2)  # w, 2w, 4w, 4w, ...
            strided = k <= MAX_STRIDED
            stride, dilation = (2, 1) if strided else (1, LATE_DILATION)
            stages.append(_stage(c_in, c_out, convs_per_stage, stride, dilation, batch_norm))
            if k < depth:  # a companion head after every stage but the last
                companions[f"stage{k}"] = head(c_out, max(c_out // 2, 8), num_classes)
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.companions = nn.ModuleDict(companions)
        self.classifier = head(c_in, max(c_in // 2, 8), num_classes)
        if init == "he":
            _he_init(self)

    def forward(self, x: Tensor) -> dict[str, object]:
        aux: dict[str, Tensor] = {}
        for k, stage in enumerate(self.stages, start=1):
            x = stage(x)  # (B, w_k, H/s_k, W/s_k), s_k = 2^min(k, 3)
            name = f"stage{k}"
            if name in self.companions:
                aux[name] = self.companions[name](x)  # (B, C, H/s_k, W/s_k)
        return {
            "out": self.classifier(x),  # (B, C, H/8, W/8) for depth >= 3
            "aux": aux,
            "embed": x,  # the last stage's features
        }


def dsnet(
    num_classes: int,
    width: int = 16,
    depth: int = 4,
    convs_per_stage: int = 3,
    batch_norm: bool = True,
    init: Init = "he",
) -> nn.Module:
    """A plain deeply-supervised net: `depth` stages of `convs_per_stage` convs, `width` channels
    in stage 1 (×2, ×4, ×4… after), companion heads "stage1" … f"stage{depth - 1}";
    `batch_norm=False` drops BN from the stages, the papers' setting; `init`: "he" (He et al.
    2015) or "torch" (PyTorch's default, under which a BN-free net's gradients vanish)."""
    return DSNet(num_classes, width, depth, convs_per_stage, batch_norm, init)
