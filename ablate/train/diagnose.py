"""Where do companion heads go? The deep-supervision placement rule of Wang et al. (2015).

"Training deeper convolutional networks with deep supervision" trains the plain net for a few
hundred iterations, looks at the mean |gradient| of each layer's weights, and adds a companion
head where it has fallen under 1e-7 — the layers below learn nothing from the main loss alone.
`diagnose` does that for a study's base recipe, per stage (see `gradflow` for what a stage is).

Without `keep_aux` the companion losses are off while measuring (`loss.aux.weight = 0`): a head
already in place feeds the stages below it, which would hide the very gradient the rule reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ablate.errors import UserError
from ablate.models import build_model
from ablate.names import VANISHING_GRADIENT
from ablate.spec import Recipe, apply_overrides
from ablate.train.fit import fit
from ablate.train.gradflow import GradientProbe

SAMPLES = 50  # gradient samples over the run when no interval is given: a smooth curve, cheap


@dataclass(frozen=True)
class StageGradient:
    """One stage's mean |∂L/∂w| over its weights: at the first step, and over the second half of
    the run (after the first steps' transient), which the rule reads."""

    name: str
    first: float
    late: float
    vanishing: bool  # late < threshold


@dataclass(frozen=True)
class Diagnosis:
    stages: tuple[StageGradient, ...]  # input to output
    recommended: tuple[str, ...]  # the stages a companion head should follow
    samples: tuple[tuple[int, Mapping[str, float]], ...]  # (iteration, {stage: mean |grad|})
    steps: int
    every: int  # steps between samples
    threshold: float
    aux_weight: float  # loss.aux.weight while measuring
    diverged: bool  # the loss became non-finite: no gradients past that point

    @property
    def first_vanishing(self) -> str | None:
        """The first stage (from the input) under the threshold, or None."""
        return next((s.name for s in self.stages if s.vanishing), None)


def _stage(
    name: str,
    samples: Sequence[tuple[int, Mapping[str, float]]],
    late: Sequence[Mapping[str, float]],
    threshold: float,
) -> StageGradient:
    first = samples[0][1][name] if samples else math.nan
    mean = sum(g[name] for g in late) / len(late) if late else math.nan
    return StageGradient(name, first, mean, mean < threshold)


def stage_names(recipe: Recipe) -> list[str]:
    """The stages of the recipe's model, input to output. Only the module tree is needed, so the
    model is built on the meta device without its `pretrained` weights (no memory, no file
    read), or on the CPU as it is where its builder cannot run on meta."""
    name, num_classes, args = recipe.model.name, recipe.data.num_classes, recipe.model.args
    try:
        with torch.device("meta"):
            lean = {k: v for k, v in args.items() if k != "pretrained"}
            model = build_model(name, num_classes, lean)
    except Exception:  # a builder that computes with tensor values cannot run on meta
        model = build_model(name, num_classes, args)
    return GradientProbe(model).stages


def recommend(stages: Sequence[StageGradient]) -> tuple[str, ...]:
    """The stages after which a companion head goes: every vanishing stage but the last (the
    main head is there already); a vanishing stem is served by a head after the stage that
    follows it, as no model carries a head on its stem."""
    chosen: list[str] = []
    for k, stage in enumerate(stages[:-1]):
        if not stage.vanishing:
            continue
        name = stages[k + 1].name if stage.name == "stem" else stage.name
        if name != stages[-1].name and name not in chosen:
            chosen.append(name)
    return tuple(chosen)


def diagnose(
    recipe: Recipe,
    steps: int = 300,
    *,
    every: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    keep_aux: bool = False,
    threshold: float = VANISHING_GRADIENT,
) -> Diagnosis:
    """Train `recipe` for `steps` iterations (one evaluation, at the end; nothing tracked),
    sampling each stage's mean |gradient| every `every` steps (default: SAMPLES samples), and
    flag the stages whose mean over the second half of the run is under `threshold`."""
    every = every or max(1, steps // SAMPLES)
    changes: dict[str, object] = {
        "train.iters": steps,
        "train.diagnostics.grad_every": every,
        "train.save_model": False,
        "eval.every": steps,
    }
    if not keep_aux:
        changes["loss.aux.weight"] = 0.0
    measured = apply_overrides(recipe, changes)
    names = stage_names(measured)
    result = fit(measured, seed, device)
    samples = tuple(
        (i, {name: grads[name] for name in names})
        for e in result.history
        for i, grads in e.gradients
    )
    late = [g for i, g in samples if i >= steps // 2] or [g for _, g in samples[-1:]]
    stages = tuple(_stage(name, samples, late, threshold) for name in names)
    return Diagnosis(
        stages,
        recommend(stages),
        samples,
        steps,
        every,
        threshold,
        measured.loss.aux.weight,
        result.diverged,
    )


def check_device(device: str) -> str:
    """The device name, or a UserError saying why it cannot train here."""
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise UserError(f"--device {device!r}: not a device name (cpu, cuda, cuda:1, …)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device!r}: CUDA is not available on this machine")
    return device
