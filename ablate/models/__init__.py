"""Built-in segmentation networks, and loading a user's network by import path.

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
from ablate.models.dsnet import dsnet
from ablate.models.pspnet import pspnet_tiny
from ablate.models.unet import unet_ds

__all__ = [
    "MODELS",
    "WEIGHT_URLS",
    "ModelContractError",
    "build_model",
    "cached_weights_path",
    "check_args",
    "check_outputs",
    "dsnet",
    "fetch_weights",
    "pspnet_tiny",
    "unet_ds",
]
