"""`digits`: scenes composed from the real handwritten digits that scikit-learn ships.

The 1,797 8×8 digit scans of `sklearn.datasets.load_digits` (UCI optdigits, 43 writers) are read
from the installed package — nothing is downloaded. Each scene is a pure function of
(seed, index, split): a textured background and 2–8 digits, each pasted at its own scale (from
~6 px tall to half the image), rotation and colour, upscaled bilinearly (sometimes nearest, for
blocky strokes). A digit's mask is where its upscaled intensity passes `_THRESHOLD`; later digits
occlude earlier ones. Classes: 0 = background, digit d = class d + 1.

Train and validation scenes draw from disjoint digit scans (`digit_indices`), so a validation
score measures generalisation to unseen handwriting, not memorised scans.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ablate.data.shapes import Scenes, _hash_noise

DIGIT_CLASS_NAMES = ("background", *(str(d) for d in range(10)))
MAX_DIGITS = 8
MIN_HEIGHT_PX = 6.0  # smallest digit height; below this the 8×8 scans stop being legible
_THRESHOLD = 0.4  # upscaled intensity (0–1) above which a pixel belongs to the digit
_VAL_EVERY = 5  # scan i goes to validation when i % 5 == 4: a 1437 / 360 split
_NEAREST_SHARE = 0.3  # share of digits upscaled by nearest neighbour instead of bilinear


@lru_cache(maxsize=1)
def _digit_bank() -> tuple[np.ndarray, np.ndarray]:
    """All scans as intensities in [0, 1], (1797, 8, 8) float32, and their digits (1797,)."""
    from sklearn.datasets import load_digits  # imported here: ~0.5 s, only digits needs it

    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def digit_indices(split: str) -> np.ndarray:
    """Indices into `load_digits()` of the scans a split may use; train and val are disjoint."""
    if split not in ("train", "val"):
        raise ValueError(f"digits split must be 'train' or 'val', got {split!r}")
    index = np.arange(len(_digit_bank()[1]))
    held_out = index % _VAL_EVERY == _VAL_EVERY - 1
    return index[held_out] if split == "val" else index[~held_out]


@lru_cache(maxsize=2)
def _pools(split: str) -> tuple[np.ndarray, ...]:
    """Per digit 0–9, the scans of that digit the split may use."""
    pool = digit_indices(split)
    targets = _digit_bank()[1][pool]
    return tuple(pool[targets == d] for d in range(10))


def _scene_params(seed: int, index: int, split: str, side: float) -> np.ndarray:
    """Digit parameters of one scene, (MAX_DIGITS, 11): present, scan index, cx, cy (relative),
    height (px), aspect, angle, nearest, r, g, b."""
    rng = np.random.default_rng([seed, index])
    n = rng.integers(2, MAX_DIGITS + 1)
    digit = rng.integers(0, 10, MAX_DIGITS)  # classes balanced, then any scan of that class
    pools = _pools(split)
    scan = np.array([pools[d][rng.integers(len(pools[d]))] for d in digit])
    high = max(side / 2, MIN_HEIGHT_PX)
    height = np.exp(rng.uniform(math.log(MIN_HEIGHT_PX), math.log(high), MAX_DIGITS))
    bg_mean = _background(seed, index).mean(axis=(1, 2))  # (3,)
    colour = rng.uniform(0, 1, (MAX_DIGITS, 3))
    # a channel too close to the background moves to the far side of it, so strokes stay visible
    colour = np.where(np.abs(colour - bg_mean) < 0.3, (bg_mean + 0.5) % 1.0, colour)
    params = np.stack(
        [
            np.arange(MAX_DIGITS) < n,
            scan,
            rng.uniform(0.05, 0.95, MAX_DIGITS),
            rng.uniform(0.05, 0.95, MAX_DIGITS),
            height,
            rng.uniform(0.7, 1.0, MAX_DIGITS),  # width / height
            rng.uniform(-0.35, 0.35, MAX_DIGITS),  # about ±20°
            rng.uniform(0, 1, MAX_DIGITS) < _NEAREST_SHARE,
            *colour.T,
        ],
        axis=1,
    )
    return params.astype(np.float32)


def _background(seed: int, index: int) -> np.ndarray:
    """Four corner colours (3, 2, 2) of a scene's background."""
    rng = np.random.default_rng([seed, index, 1])
    return rng.uniform(0.15, 0.85, (3, 2, 2)).astype(np.float32)


def _stripes(seed: int, index: int) -> np.ndarray:
    """Frequency (cycles per image, x and y), phase and amplitude of a scene's stripe texture."""
    rng = np.random.default_rng([seed, index, 2])
    freq = rng.uniform(-6, 6, 2)
    return np.array([*freq, rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.12)], np.float32)


def make_digit_scenes(
    seed: int,
    indices: range | list[int],
    image_size: tuple[int, int],
    device: torch.device | str = "cpu",
    split: str = "train",
) -> Scenes:
    """Render the scenes with the given indices from the scans of `split`; the same
    (seed, index, split) always gives the same scene, whatever the batch it is drawn in."""
    height, width = image_size
    side = float(min(height, width))
    params = torch.from_numpy(np.stack([_scene_params(seed, i, split, side) for i in indices]))
    params = params.to(device)  # (B, K, 11)
    batch = params.shape[0]
    bank = torch.from_numpy(_digit_bank()[0]).to(device)  # (1797, 8, 8)
    ys = torch.arange(height, device=device, dtype=torch.float32).view(1, -1, 1) + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, -1) + 0.5

    # background: a gradient between four corner colours, plus stripes of the scene's own frequency
    corners = torch.from_numpy(np.stack([_background(seed, i) for i in indices])).to(device)
    image = F.interpolate(corners, (height, width), mode="bilinear")  # (B, 3, H, W)
    stripes = torch.from_numpy(np.stack([_stripes(seed, i) for i in indices])).to(device)
    s = stripes.view(batch, 4, 1, 1)
    wave = torch.sin(2 * math.pi * (s[:, 0] * xs / width + s[:, 1] * ys / height) + s[:, 2])
    image = image + (s[:, 3] * wave).unsqueeze(1)
    labels = torch.zeros(batch, height, width, dtype=torch.long, device=device)
    instances = torch.zeros_like(labels)
    targets = torch.from_numpy(_digit_bank()[1]).to(device)

    for k in range(MAX_DIGITS):  # one digit slot at a time, every scene at once
        p = params[:, k].view(batch, -1, 1, 1)  # (B, 11, 1, 1)
        present, scan = p[:, 0] > 0, p[:, 1, 0, 0].long()
        dx, dy = xs - p[:, 2] * width, ys - p[:, 3] * height
        cos, sin = torch.cos(p[:, 6]), torch.sin(p[:, 6])
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos  # (B, H, W) in the digit's frame
        half_h = p[:, 4] / 2
        grid = torch.stack([u / (half_h * p[:, 5]), v / half_h], dim=-1)  # (B, H, W, 2)
        scans = bank[scan].unsqueeze(1)  # (B, 1, 8, 8)
        smooth = F.grid_sample(scans, grid, mode="bilinear", align_corners=False)
        blocky = F.grid_sample(scans, grid, mode="nearest", align_corners=False)
        intensity = torch.where(p[:, 7:8] > 0, blocky, smooth).squeeze(1)  # (B, H, W)
        inside = (intensity > _THRESHOLD) & present
        labels = torch.where(inside, targets[scan].view(-1, 1, 1) + 1, labels)
        instances = torch.where(inside, k + 1, instances)
        # soft edges: the stroke colour fades in over the intensities just below the threshold
        alpha = ((intensity - 0.2) / 0.3).clamp(0, 1) * present
        image = image + alpha.unsqueeze(1) * (p[:, 8:11] - image)

    scene_ids = torch.as_tensor(list(indices), device=device).view(-1, 1, 1, 1)
    image = image + 0.05 * _hash_noise(seed, scene_ids, image.shape)
    images = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    return Scenes(images, labels, instances)
