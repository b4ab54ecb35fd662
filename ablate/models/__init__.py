"""Built-in segmentation networks, and loading a user's network by import path.

Tiny nets for CPU studies (`pspnet_tiny`, `dsnet`, `unet_ds`) and real ones on dilated ResNet
backbones with torchvision's checkpoint keys (`pspnet`, `deeplabv3plus`, `dsn`; see `resnet`).

Every model maps images (B, 3, H, W) to a dict: `out` — logits (B, C, h, w), possibly at a lower
resolution than the input; `aux` — {head name: logits} of the intermediate heads; `embed` — the
feature map (B, D, h', w') fed to the center loss.
"""

from ablate.models._load import (
    MODELS,
    ModelContractError,
    build_model,
    check_args,
    check_outputs,
)
from ablate.models._weights import WEIGHT_URLS, cached_weights_path, fetch_weights
from ablate.models.deeplab import deeplabv3plus
from ablate.models.dsn import dsn
from ablate.models.dsnet import dsnet
from ablate.models.pspnet import pspnet, pspnet_tiny
from ablate.models.resnet import BACKBONES, resnet
from ablate.models.unet import unet_ds

__all__ = [
    "BACKBONES",
    "MODELS",
    "WEIGHT_URLS",
    "ModelContractError",
    "build_model",
    "cached_weights_path",
    "check_args",
    "check_outputs",
    "deeplabv3plus",
    "dsn",
    "dsnet",
    "fetch_weights",
    "pspnet",
    "pspnet_tiny",
    "resnet",
    "unet_ds",
]
