"""Cost of gradient-flow diagnostics (`train.diagnostics.grad_every`) on a training step.

In one loop, per step: a full training step (forward, backward, SGD) and, on the gradients it
left, our probe and the obvious per-parameter loop (`p.grad.abs().sum()` then `float()` for every
weight), each timed on its own. Interleaving keeps the comparison fair on a busy machine.
Overhead = probe time / step time at grad_every = 1 (the worst case; K divides it by K).

    python benchmarks/diagnostics.py [--steps 20] [--batch 16] [--size 96]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ablate.models import build_model
from ablate.train.gradflow import GradientProbe, parameter_groups


def naive(model: torch.nn.Module, groups: dict[str, str]) -> dict[str, float]:
    """The obvious loop: per weight, |grad| summed and read back, grouped as the probe does."""
    sums: dict[str, list[float]] = {}
    for name, p in model.named_parameters():
        if p.grad is not None and p.dim() > 1:
            entry = sums.setdefault(groups[name], [0.0, 0.0])
            entry[0] += float(p.grad.abs().sum())
            entry[1] += p.numel()
    return {k: s / n for k, (s, n) in sums.items()}


def measure(name: str, args: argparse.Namespace) -> tuple[float, float, float]:
    """Median ms of (training step, probe, naive loop)."""
    torch.manual_seed(0)
    model = build_model(name, 6)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 6, (args.batch, args.size, args.size))
    probe = GradientProbe(model)
    groups = parameter_groups(model)
    steps, probes, loops = [], [], []
    for i in range(args.steps + 3):
        t0 = time.perf_counter()
        out = model(x)
        logits = torch.nn.functional.interpolate(out["out"], y.shape[-2:], mode="bilinear")
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        ours = probe.measure()
        t2 = time.perf_counter()
        reference = naive(model, groups)
        t3 = time.perf_counter()
        if i >= 3:  # warm-up steps are not counted
            steps.append(t1 - t0)
            probes.append(t2 - t1)
            loops.append(t3 - t2)
        assert all(abs(ours[k] - v) <= 1e-5 * abs(v) for k, v in reference.items())
    return tuple(statistics.median(v) * 1000 for v in (steps, probes, loops))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} at "
        f"{args.size}×{args.size}, median of {args.steps} steps"
    )
    header = ("model", "step ms", "probe ms", "overhead", "loop ms", "overhead", "loop/probe")
    print("{:<12} {:>8} {:>9} {:>9} {:>8} {:>9} {:>11}".format(*header))
    for name in ("pspnet_tiny", "dsnet", "unet_ds"):
        step, ours, loop = measure(name, args)
        print(
            f"{name:<12} {step:8.1f} {ours:9.2f} {ours / step:9.2%} {loop:8.2f} "
            f"{loop / step:9.2%} {loop / ours:10.1f}x"
        )


if __name__ == "__main__":
    main()
