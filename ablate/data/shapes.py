"""`shapes`: procedural scenes made for ablating segmentation tricks.

Each scene is a pure function of (seed, index, knobs): a textured background and 2–8 objects of
different kinds — discs, boxes, triangles, rings, thin bars, ellipses, crosses — one kind per
class. Object sizes are log-uniform from a few pixels to half the image (tiny far objects next to
large near ones), later objects occlude earlier ones, rarer classes are drawn less often (class
imbalance), and colours only loosely follow the class, so the network has to learn shape.

`ShapeKnobs` moves what a mechanism needs — the size range, the thickness of thin parts, the
class frequencies, classes told apart by texture alone — and its defaults render exactly the
scenes these knobs did not exist for.

Parameters are drawn per scene on the CPU (a few numbers each); the pixels are rasterised for the
whole batch at once with tensor operations on the target device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

KINDS = ("disc", "box", "triangle", "ring", "bar", "ellipse", "cross")
CLASS_NAMES = ("background", *KINDS)
MAX_OBJECTS = 8
STRIPE_PERIOD = 4.0  # pixels, of the texture knob's stripes
# Base colours per class (RGB in [0, 1]); objects mix them half-and-half with a random colour.
_PALETTE = np.array(
    [
        [0.45, 0.45, 0.45],
        [0.90, 0.20, 0.20],
        [0.20, 0.70, 0.25],
        [0.20, 0.35, 0.90],
        [0.95, 0.80, 0.15],
        [0.80, 0.25, 0.85],
        [0.15, 0.80, 0.85],
        [0.95, 0.55, 0.15],
    ]
)


@dataclass(frozen=True)
class ShapeKnobs:
    """What a study may change in the scenes (data.shapes in a study file documents each)."""

    size_range: tuple[float, float] = (0.025, 0.45)  # object half-extent / shorter image side
    thin: float = 0.08  # half-width of a bar (a cross's arm: twice it) / the object's half-length
    class_weights: Sequence[float] | None = None  # of classes 1 … C − 1; None: ∝ 1/√k
    texture: bool = False  # classes told apart only by the orientation of stripes inside them


@dataclass(frozen=True)
class Scenes:
    """A batch of scenes: images (B, 3, H, W) uint8, labels (B, H, W) long, instances (B, H, W)
    long (0 = background, k = the k-th object drawn, counted from 1)."""

    images: Tensor
    labels: Tensor
    instances: Tensor


def _scene_params(seed: int, index: int, num_classes: int, knobs: ShapeKnobs) -> np.ndarray:
    """Object parameters of one scene, (MAX_OBJECTS, 11): present, class, cx, cy, size, aspect,
    angle, r, g, b, kind — all in relative units."""
    rng = np.random.default_rng([seed, index])
    n = rng.integers(2, MAX_OBJECTS + 1)
    if knobs.class_weights is None:  # class k ∝ 1/√k: the last classes are the rare ones
        weights = 1.0 / np.sqrt(np.arange(1, num_classes))
    else:
        weights = np.asarray(knobs.class_weights, dtype=np.float64)
    cls = rng.choice(np.arange(1, num_classes), size=MAX_OBJECTS, p=weights / weights.sum())
    low, high = knobs.size_range
    size = np.exp(rng.uniform(math.log(low), math.log(high), MAX_OBJECTS))
    colour = 0.5 * _PALETTE[cls] + 0.5 * rng.uniform(0, 1, (MAX_OBJECTS, 3))
    kind = (cls - 1) % len(KINDS)
    params = np.stack(
        [
            np.arange(MAX_OBJECTS) < n,
            cls,
            rng.uniform(0.05, 0.95, MAX_OBJECTS),
            rng.uniform(0.05, 0.95, MAX_OBJECTS),
            size,
            rng.uniform(0.5, 1.0, MAX_OBJECTS),
            rng.uniform(0, math.pi, MAX_OBJECTS),
            *colour.T,
            kind,
        ],
        axis=1,
    )
    if knobs.texture:  # drawn after everything else, so the other knobs' scenes stay the same
        params[:, 10] = rng.integers(0, len(KINDS), MAX_OBJECTS)  # any shape for any class
        params[:, 7:10] = 0.25 + 0.5 * rng.uniform(0, 1, (MAX_OBJECTS, 3))  # colour: no class
    return params.astype(np.float32)


def _background(seed: int, index: int) -> np.ndarray:
    """Four corner colours (3, 2, 2) of a scene's background."""
    rng = np.random.default_rng([seed, index, 1])
    return rng.uniform(0.2, 0.8, (3, 2, 2)).astype(np.float32)


def _hash_noise(seed: int, scene_ids: Tensor, shape: torch.Size) -> Tensor:
    """Per-pixel noise in [-1, 1) that depends on (seed, scene, channel, y, x) only, made on the
    device with an integer hash, so a scene's pixels do not depend on the batch it is in."""
    _, c, h, w = shape
    dev = scene_ids.device
    cy = torch.arange(c, device=dev).view(1, -1, 1, 1) * h + torch.arange(h, device=dev).view(
        1, 1, -1, 1
    )
    pixel = cy * w + torch.arange(w, device=dev).view(1, 1, 1, -1)
    x = (scene_ids * 0x9E3779B1 + pixel * 0x85EBCA77 + seed * 0xC2B2AE3D) & 0xFFFFFFFF
    for mult in (0x7FEB352D, 0x846CA68B):  # two rounds of xor-shift-multiply mixing
        x = ((x ^ (x >> 15)) * mult) & 0xFFFFFFFF
    x = x ^ (x >> 16)
    return x.to(torch.float32) / 2**31 - 1.0


def _masks(kind: Tensor, u: Tensor, v: Tensor, a: Tensor, b: Tensor, thin: float) -> Tensor:
    """Inside-masks for objects of the given kinds in local coordinates; all (B, H, W)."""
    ell = (u / a) ** 2 + (v / b) ** 2
    half = torch.clamp(thin * a, min=0.6)  # bars and crosses stay at least ~1 px wide
    options = torch.stack(
        [
            (u / a) ** 2 + (v / a) ** 2 <= 1,  # disc
            (u.abs() <= a) & (v.abs() <= b),  # box
            (v.abs() <= b) & (u.abs() <= a * (v + b) / (2 * b)),  # triangle
            (ell <= 1) & (ell >= 0.45),  # ring
            (u.abs() <= a) & (v.abs() <= half),  # bar
            ell <= 1,  # ellipse
            ((u.abs() <= a) & (v.abs() <= 2 * half)) | ((u.abs() <= 2 * half) & (v.abs() <= a)),
        ]
    )  # (7, B, H, W)
    return options.gather(0, kind.view(1, -1, 1, 1).expand(1, *u.shape)).squeeze(0)


def make_scenes(
    seed: int,
    indices: range | list[int],
    image_size: tuple[int, int],
    num_classes: int,
    device: torch.device | str = "cpu",
    knobs: ShapeKnobs | None = None,
) -> Scenes:
    """Render the scenes with the given indices; the same (seed, index, knobs) always gives
    the same scene, whatever the batch it is drawn in. `knobs`: None takes the defaults."""
    knobs = ShapeKnobs() if knobs is None else knobs
    if not 2 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(f"shapes has 2 to {len(CLASS_NAMES)} classes, got {num_classes}")
    if knobs.class_weights is not None and len(knobs.class_weights) != num_classes - 1:
        raise ValueError(f"class_weights needs {num_classes - 1} weights (classes 1 … C − 1)")
    draws = [_scene_params(seed, i, num_classes, knobs) for i in indices]
    params = torch.from_numpy(np.stack(draws))
    params = params.to(device)  # (B, K, 11)
    height, width = image_size
    batch = params.shape[0]
    side = float(min(height, width))
    ys = torch.arange(height, device=device, dtype=torch.float32).view(1, -1, 1) + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, -1) + 0.5

    # background: a smooth gradient between four corner colours drawn with the scene
    corners = torch.from_numpy(np.stack([_background(seed, i) for i in indices])).to(device)
    image = torch.nn.functional.interpolate(corners, (height, width), mode="bilinear")
    labels = torch.zeros(batch, height, width, dtype=torch.long, device=device)
    instances = torch.zeros_like(labels)

    for k in range(MAX_OBJECTS):  # a handful of object slots, every scene at once
        p = params[:, k].unsqueeze(-1).unsqueeze(-1)  # (B, 11, 1, 1)
        present, cls = p[:, 0] > 0, p[:, 1].long()
        dx, dy = xs - p[:, 2] * width, ys - p[:, 3] * height
        cos, sin = torch.cos(p[:, 6]), torch.sin(p[:, 6])
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos
        a = torch.clamp(p[:, 4] * side, min=1.0)
        inside = _masks(p[:, 10].long(), u, v, a, a * p[:, 5], knobs.thin) & present
        labels = torch.where(inside, cls, labels)
        instances = torch.where(inside, k + 1, instances)
        colour = p[:, 7:10]  # (B, 3, 1, 1)
        if knobs.texture:  # stripes at the class's orientation: light, then dark, 2 px each
            theta = (cls - 1).float() * math.pi / (num_classes - 1)  # (B, 1, 1)
            phase = (xs * torch.cos(theta) + ys * torch.sin(theta)) / STRIPE_PERIOD
            light = phase - phase.floor() < 0.5  # (B, H, W); frac() is negative below 0
            colour = colour * torch.where(light, 1.25, 0.6).unsqueeze(1)  # (B, 3, H, W)
        image = torch.where(inside.unsqueeze(1), colour, image)

    scene_ids = torch.as_tensor(list(indices), device=device).view(-1, 1, 1, 1)
    image = image + 0.06 * _hash_noise(seed, scene_ids, image.shape)
    images = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    return Scenes(images, labels, instances)
