"""The trial loop: one plain function that trains one recipe with one seed and evaluates it."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ablate.data import (
    ShapeKnobs,
    Source,
    class_names,
    load_splits,
    load_test_split,
)
from ablate.errors import one_line
from ablate.losses.balance import median_frequency_weights
from ablate.losses.objective import Objective
from ablate.models import build_model, check_outputs
from ablate.spec import Recipe
from ablate.train.checkpoint import load_checkpoint, save_checkpoint, set_aside
from ablate.train.evaluate import Stats, evaluate, inference_for, input_stats, normalise
from ablate.train.gradflow import GradientProbe

# loss.ce.class_weight = balanced: the training batches its class frequencies are counted on
# (the whole split when it has fewer), so a large dataset on disk is not read in full first
CLASS_WEIGHT_BATCHES = 100


@dataclass(frozen=True)
class EpochResult:
    """Everything measured in one epoch, under MLflow's metric names."""

    epoch: int  # counted from 1
    metrics: Mapping[str, float]  # epoch means and validation results
    aux_weights: Sequence[tuple[int, float]] = ()  # (iteration, α_t) of every training step
    # (iteration, {layer: mean |grad|}) every `train.diagnostics.grad_every` steps
    gradients: Sequence[tuple[int, Mapping[str, float]]] = ()

    @property
    def iteration(self) -> int:
        """Optimisation steps trained before this evaluation: its metrics' step in MLflow,
        the one axis they share with the per-step series. The epoch number where the metrics
        do not hold `train/iteration`."""
        return int(self.metrics.get("train/iteration", self.epoch))


@dataclass(frozen=True)
class FitResult:
    history: list[EpochResult]
    diverged: bool  # the loss became NaN or infinite; training stopped there
    duration_s: float
    best: Mapping[str, float] = field(default_factory=dict)  # best epoch value of each val metric
    # with train.save_model: {"model": state_dict, "objective": state_dict (center-loss centers)}
    checkpoint: Mapping[str, Any] | None = None
    total_steps: int = 0  # optimisation steps planned (progress t/T = iteration / total_steps)
    resumed_at: int = 0  # evaluations taken from a checkpoint (0: trained from the start)
    test: Mapping[str, float] = field(default_factory=dict)  # test/<metric> of the final model
    # loss.ce.class_weight = balanced: {class name: weight} the cross-entropy used; else {}
    class_weights: Mapping[str, float] = field(default_factory=dict)
    # a checkpoint that could not be used and was moved away, as one line for the run's tags:
    # "set aside as <path>: <reason>" or "could not set aside <path> (<error>): <reason>"; else ""
    set_aside: str = ""

    @property
    def final(self) -> Mapping[str, float]:
        return self.history[-1].metrics if self.history else {}


class Diverged(Exception):
    """Raised inside the loop when a loss is not finite."""


def autocast_for(amp: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a GradScaler is needed) for the `train.amp` setting."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None, False
    if amp in ("auto", "bf16"):
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16, True
        return torch.bfloat16, False
    return torch.float16, device.type == "cuda"


def _optimizer(recipe: Recipe, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    t = recipe.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)


def _memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last on CUDA, where convolutions under autocast run faster in it. Not on the
    CPU: there oneDNN's channels-last 1×1 convolution backward hung or crashed ("double free")
    in small fits on this project's 2-core AMD machines (torch 2.13.0+cpu)."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


@dataclass
class _Run:
    """What one training run holds while it trains: built once by `fit`, stepped per batch."""

    recipe: Recipe
    device: torch.device
    train: Source
    val: Source
    names: list[str]
    model: nn.Module
    objective: Objective
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: Callable[[], AbstractContextManager[object]]
    order: torch.Generator  # batch order, from the trial's seed
    probe: GradientProbe
    total_steps: int  # train.iters, or train.epochs × batches per epoch
    eval_every: int  # eval.every, or batches per epoch
    stats: Stats  # input normalisation (data.normalize)
    step: int = 0
    epoch_state: Tensor | None = None  # `order`'s state when the current epoch's batches began
    in_epoch: int = 0  # batches of the current epoch already trained
    batches: Iterator[Any] | None = None


def _set_up(recipe: Recipe, seed: int, dev: torch.device) -> _Run:
    """Data, model (checked against the output contract), objective, optimiser, AMP."""
    d, t = recipe.data, recipe.train
    torch.set_num_threads(t.threads)  # part of the recipe: numbers do not follow --workers
    torch.use_deterministic_algorithms(t.deterministic)
    if dev.type == "cuda":
        torch.backends.cudnn.deterministic = t.deterministic
        torch.backends.cudnn.benchmark = not t.deterministic
    train, val = load_splits(
        d.name,
        d.num_classes,
        d.image_size,
        d.train_size,
        d.val_size,
        d.seed,
        dev,
        root=d.root,
        num_workers=d.num_workers,
        knobs=_knobs(recipe),
    )
    class_weight = _class_weight(recipe, train)  # before seeding: a DataLoader draws from torch
    torch.manual_seed(seed)
    model = build_model(recipe.model.name, d.num_classes, recipe.model.args).to(dev)
    model = model.to(memory_format=_memory_format(dev))  # type: ignore[call-overload]
    first_images = next(iter(val.batches(2)))[0]
    with torch.no_grad():
        first = model.eval()(normalise(first_images, input_stats(recipe)))
    check_outputs(first, d.num_classes, name=f"model {recipe.model.name!r}")
    embed_dim = first["embed"].shape[1]
    objective = Objective(recipe.loss, d.num_classes, embed_dim, d.ignore_index, class_weight)
    dtype, needs_scaler = autocast_for(t.amp, dev)

    def autocast() -> AbstractContextManager[object]:
        return torch.autocast(dev.type, dtype=dtype) if dtype else nullcontext()

    per_epoch = math.ceil(len(train) / t.batch_size)
    return _Run(
        recipe=recipe,
        device=dev,
        train=train,
        val=val,
        names=class_names(d.name, d.num_classes),
        model=model,
        objective=objective.to(dev),
        optimizer=_optimizer(recipe, list(model.parameters())),
        scaler=torch.amp.GradScaler(dev.type, enabled=needs_scaler),
        autocast=autocast,
        order=torch.Generator().manual_seed(seed),
        probe=GradientProbe(model),
        total_steps=t.iters or t.epochs * per_epoch,
        eval_every=recipe.eval.every or per_epoch,
        stats=input_stats(recipe),
    )


def _knobs(recipe: Recipe) -> ShapeKnobs:
    """The `shapes` generator's knobs (`data.shapes`), for every split alike."""
    return ShapeKnobs(**recipe.data.shapes.model_dump())


def _class_weight(recipe: Recipe, train: Source) -> Tensor | None:
    """Median-frequency class weights (`loss.ce.class_weight: balanced`) from the labels of at
    most CLASS_WEIGHT_BATCHES training batches in an order fixed by `data.seed` alone (the same
    weights for every trial seed); None otherwise."""
    d = recipe.data
    if recipe.loss.ce.class_weight != "balanced":
        return None
    order = torch.Generator().manual_seed(d.seed)
    batches = itertools.islice(train.batches(recipe.train.batch_size, order), CLASS_WEIGHT_BATCHES)
    return median_frequency_weights(
        (labels for _, labels, _ in batches), d.num_classes, d.ignore_index
    )


def _next_batch(run: _Run) -> Any:
    """The next training batch, starting a new epoch (a new order) when one runs out."""
    while True:
        if run.batches is None:
            run.epoch_state = run.order.get_state()
            run.batches = iter(run.train.batches(run.recipe.train.batch_size, run.order))
            run.in_epoch = 0
        try:
            batch = next(run.batches)
        except StopIteration:
            run.batches = None
            continue
        run.in_epoch += 1
        return batch


def _train_until(run: _Run, stop: int) -> EpochResult:
    """Train from the current step up to `stop` under the poly schedule; the mean loss terms
    of those steps, α_t per step and gradient samples (the epoch field is set by the caller).
    Raises Diverged on a non-finite loss."""
    t = run.recipe.train
    run.model.train()
    run.objective.train()
    start = time.perf_counter()
    sums: dict[str, Tensor] = {}
    aux_weights: list[tuple[int, float]] = []
    center_weights: list[float] = []
    gradients: list[tuple[int, Mapping[str, float]]] = []
    steps = images_seen = 0
    while run.step < stop:
        raw, labels, _ = _next_batch(run)
        for group in run.optimizer.param_groups:
            group["lr"] = t.lr * (1 - run.step / run.total_steps) ** t.poly_power
        images = normalise(raw, run.stats).contiguous(memory_format=_memory_format(run.device))
        with run.autocast():
            outputs = run.model(images)
        loss = run.objective(outputs, labels, run.step / run.total_steps)
        if not torch.isfinite(loss.total):
            raise Diverged(f"loss became {float(loss.total.detach())} at iteration {run.step}")
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss.total).backward()
        if t.diagnostics.grad_every and run.step % t.diagnostics.grad_every == 0:
            scale = run.scaler.get_scale() if run.scaler.is_enabled() else 1.0
            gradients.append((run.step, run.probe.measure(scale)))
        run.scaler.step(run.optimizer)
        run.scaler.update()
        for key, value in [
            ("train/loss", loss.total),
            *((f"train/loss/{k}", v) for k, v in loss.terms.items()),
        ]:
            sums[key] = sums.get(key, 0.0) + value.detach()
        if "aux" in loss.weights:
            aux_weights.append((run.step, loss.weights["aux"]))
        if "center" in loss.weights:
            center_weights.append(loss.weights["center"])
        run.step += 1
        steps += 1
        images_seen += raw.shape[0]
    metrics = {k: float(v) / steps for k, v in sums.items()}
    if aux_weights:
        metrics["train/aux_weight"] = sum(w for _, w in aux_weights) / len(aux_weights)
    if center_weights:  # λ_t: the mean over the evaluation's steps (it ramps with a warm-up)
        metrics["train/center_weight"] = sum(center_weights) / len(center_weights)
    metrics["train/images_per_s"] = images_seen / (time.perf_counter() - start)
    metrics["train/lr"] = run.optimizer.param_groups[0]["lr"]
    metrics["train/iteration"] = float(run.step)
    return EpochResult(0, metrics, aux_weights, gradients)


def _state(
    run: _Run,
    history: list[EpochResult],
    best: dict[str, float],
    elapsed: float,
    identity: dict[str, Any],
) -> dict[str, Any]:
    """Everything `_restore` needs to continue this run as if it had never stopped, as tensors
    and plain values only: what `torch.load(weights_only=True)` reads back."""
    return {
        "identity": identity,
        "step": run.step,
        "epoch_state": run.epoch_state,
        "in_epoch": run.in_epoch,
        "order": run.order.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if run.device.type == "cuda" else None,
        "model": run.model.state_dict(),
        "objective": run.objective.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "history": [_plain(result) for result in history],
        "best": dict(best),
        "elapsed_s": float(elapsed),
    }


def _plain(result: EpochResult) -> dict[str, Any]:
    """An evaluation as plain values (no dataclass in a checkpoint)."""
    return {
        "epoch": result.epoch,
        "metrics": dict(result.metrics),
        "aux_weights": [(int(i), float(w)) for i, w in result.aux_weights],
        "gradients": [(int(i), dict(g)) for i, g in result.gradients],
    }


def _evaluation(plain: Mapping[str, Any]) -> EpochResult:
    """`_plain` undone; a KeyError or TypeError on a checkpoint of another shape."""
    return EpochResult(
        int(plain["epoch"]),
        {str(k): float(v) for k, v in plain["metrics"].items()},
        [(int(i), float(w)) for i, w in plain["aux_weights"]],
        [(int(i), {str(k): float(v) for k, v in g.items()}) for i, g in plain["gradients"]],
    )


@dataclass(frozen=True)
class _Progress:
    """What a checkpoint gives back beside the run's own state."""

    history: list[EpochResult]
    best: dict[str, float]
    elapsed_s: float


def _restore(run: _Run, state: dict[str, Any]) -> _Progress:
    progress = _Progress(
        [_evaluation(plain) for plain in state["history"]],
        {str(k): float(v) for k, v in state["best"].items()},
        float(state["elapsed_s"]),
    )
    run.model.load_state_dict(state["model"])
    run.objective.load_state_dict(state["objective"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scaler.load_state_dict(state["scaler"])
    run.step = int(state["step"])
    if state["epoch_state"] is not None:  # replay the current epoch's order up to where it was
        run.order.set_state(state["epoch_state"])
        run.batches = iter(run.train.batches(run.recipe.train.batch_size, run.order))
        for _ in range(state["in_epoch"]):
            next(run.batches, None)
        run.epoch_state, run.in_epoch = state["epoch_state"], state["in_epoch"]
    run.order.set_state(state["order"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return progress


# what restoring a checkpoint of another shape raises (a missing key, a tensor of another size)
_UNRESTORABLE = (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError)


def _start(
    recipe: Recipe, seed: int, dev: torch.device, checkpoint: Path | None, identity: dict[str, Any]
) -> tuple[_Run, _Progress | None, str]:
    """The run set up and, where this trial's checkpoint is there, continued from it; with
    `set_aside`'s line when a checkpoint was there but could not be used (the run then starts
    from the beginning, set up afresh if a failed restore had changed it)."""
    run = _set_up(recipe, seed, dev)
    loaded = load_checkpoint(checkpoint, identity)
    if loaded.state is None or checkpoint is None:
        return run, None, loaded.set_aside
    try:
        return run, _restore(run, loaded.state), ""
    except _UNRESTORABLE as exc:
        line = set_aside(checkpoint, "damaged", f"does not restore ({one_line(exc, 200)})")
        return _set_up(recipe, seed, dev), None, line


def _test(run: _Run, recipe: Recipe) -> dict[str, float]:
    """The final model on the held-out test split, once, as `test/<metric>`; {} without one.
    Nothing is chosen on it: picking (the best epoch, a search's winner) uses validation."""
    d = recipe.data
    split = load_test_split(
        d.name,
        d.num_classes,
        d.image_size,
        d.test_size,
        d.seed,
        run.device,
        root=d.root,
        test_split=d.test_split,
        num_workers=d.num_workers,
        knobs=_knobs(recipe),
    )
    if split is None:
        return {}
    return {"test/" + k.removeprefix("val/"): v for k, v in _measure(run, split).items()}


def _measure(run: _Run, split: Source) -> dict[str, float]:
    """The model on `split` as the recipe evaluates (`val/` metric names)."""
    d, recipe = run.recipe.data, run.recipe
    return evaluate(
        run.model,
        split,
        d.num_classes,
        run.names,
        recipe.train.batch_size,
        d.ignore_index,
        run.autocast,
        recipe.eval.boundary_width,
        inference_for(recipe),
    )


def fit(
    recipe: Recipe,
    seed: int,
    device: str | torch.device = "cpu",
    on_epoch: Callable[[EpochResult], None] | None = None,
    checkpoint: Path | None = None,
) -> FitResult:
    """Train `recipe` with `seed` (model init and batch order; the data are fixed by
    `data.seed`) for `train.iters` iterations or `train.epochs` epochs, evaluating every
    `eval.every` iterations or every epoch. SGD with momentum or AdamW under a poly
    learning-rate decay per iteration. A non-finite loss stops training and marks the result
    diverged.

    With `checkpoint`, the run is saved there every `train.checkpoint_every` evaluations and,
    when a checkpoint of this recipe and seed is there already, continued from it: its
    evaluations are passed to `on_epoch` again, and the numbers equal those of a run that was
    never stopped (bit for bit on the CPU). A checkpoint there that cannot be used (damaged,
    not tensors and plain values, another trial's) is moved aside, named in a warning and in
    `FitResult.set_aside`, and the run starts from the beginning."""
    start = time.perf_counter()
    identity = {"recipe": recipe.model_dump(mode="json"), "seed": seed}
    run, progress, aside = _start(recipe, seed, torch.device(device), checkpoint, identity)
    history: list[EpochResult] = []
    best: dict[str, float] = {}
    earlier = 0.0
    if progress is not None:
        history, best, earlier = progress.history, progress.best, progress.elapsed_s
        for result in history:
            if on_epoch is not None:
                on_epoch(result)
    resumed = len(history)
    try:
        while run.step < run.total_steps:
            stop = min(run.total_steps, (run.step // run.eval_every + 1) * run.eval_every)
            trained = _train_until(run, stop)
            metrics = dict(trained.metrics)
            metrics.update(_measure(run, run.val))
            for key, value in metrics.items():
                if key.startswith("val/") and not math.isnan(value):
                    better = max if key != "val/loss" else min
                    best[key] = better(best.get(key, value), value)
            result = EpochResult(len(history) + 1, metrics, trained.aux_weights, trained.gradients)
            history.append(result)
            due = len(history) % recipe.train.checkpoint_every == 0
            if checkpoint is not None and due and run.step < run.total_steps:
                elapsed = earlier + time.perf_counter() - start
                save_checkpoint(checkpoint, _state(run, history, best, elapsed, identity))
            if on_epoch is not None:
                on_epoch(result)
    except Diverged:
        duration = earlier + time.perf_counter() - start
        return FitResult(
            history,
            True,
            duration,
            best,
            total_steps=run.total_steps,
            resumed_at=resumed,
            class_weights=_by_class(run),
            set_aside=aside,
        )
    test = _test(run, recipe)
    saved = None
    if recipe.train.save_model:
        saved = {"model": run.model.state_dict(), "objective": run.objective.state_dict()}
    duration = earlier + time.perf_counter() - start
    return FitResult(
        history,
        False,
        duration,
        best,
        checkpoint=saved,
        total_steps=run.total_steps,
        resumed_at=resumed,
        test=test,
        class_weights=_by_class(run),
        set_aside=aside,
    )


def _by_class(run: _Run) -> dict[str, float]:
    """The cross-entropy's class weights by class name ({} when unweighted)."""
    weights = run.objective.class_weight
    return {} if weights is None else dict(zip(run.names, weights.tolist(), strict=True))
