"""ImageNet weights for the ResNet backbones: where they are, loading them, fetching them.

`pretrained: true` reads torchvision's file from torch hub's checkpoint cache
(`torch.hub.get_dir()/checkpoints`, i.e. `$TORCH_HOME/hub/checkpoints`), the place
`torchvision.models.resnet50(weights=...)` and `ablate fetch-weights` put it. Nothing here
downloads unless `fetch_weights` is called: a missing file is an error naming the file, its URL
and the command that fetches it, raised while the model is built — before any training.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ablate.errors import ModelContractError, one_line

# torchvision's IMAGENET1K_V1 weights (the ones segmentation papers start from)
WEIGHT_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
}
IGNORED_PREFIXES = ("fc.",)  # the ImageNet classifier: a segmentation net does not build it


def cached_weights_path(name: str) -> Path:
    """Where torch hub keeps the official checkpoint of backbone `name`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHT_URLS[name].rsplit("/", 1)[-1]


def _missing(name: str, path: Path) -> ModelContractError:
    url = WEIGHT_URLS.get(name)
    source = (
        f" (from {url}); on a machine with network run `ablate fetch-weights {name}`" if url else ""
    )
    return ModelContractError(f"pretrained weights for {name} not found: {path}{source}")


def load_backbone_weights(model: nn.Module, name: str, pretrained: bool | str) -> None:
    """Load `pretrained` (True: the cached official file; a string: that file) into `model`,
    strictly on every key but the classifier's."""
    path = cached_weights_path(name) if pretrained is True else Path(str(pretrained)).expanduser()
    if not path.is_file():
        raise _missing(name, path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelContractError(f"cannot read weights {path}: {one_line(exc)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint that wraps the weights
    if not isinstance(state, dict):
        raise ModelContractError(f"weights {path}: not a state dict but {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        # torch lists every missing and unexpected key; the first ones say what is wrong
        detail = " ".join(str(exc).split())[:400]
        raise ModelContractError(f"weights {path} do not fit {name}: {detail}") from None


def fetch_weights(name: str) -> Path:
    """Download backbone `name`'s official ImageNet weights into torch hub's cache (network)."""
    if name not in WEIGHT_URLS:
        raise ModelContractError(
            f"no weights to fetch for {name!r}; known: {', '.join(WEIGHT_URLS)}"
        )
    torch.hub.load_state_dict_from_url(WEIGHT_URLS[name], map_location="cpu", check_hash=True)
    return cached_weights_path(name)
