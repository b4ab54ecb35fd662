"""Speed of ablate's loss kernels against the obvious implementation of each.

    python benchmarks/losses.py                     # Cityscapes-like sizes (19 classes)
    python benchmarks/losses.py --small             # small sizes: a quick smoke run
    python benchmarks/losses.py --threads 1,2       # one table per intra-op thread count
    python benchmarks/losses.py --threads 2 --busy  # with a process spinning on one core

One row per kernel: median wall time of ours and of the obvious implementation (over --repeat runs
after one warm-up, the two timed alternately so that a change of load hits both), their ratio, and
the relative difference max|ours − ref| / max|ref| of the results, with ref the obvious
implementation in float32 ("rel diff") and in float64 ("vs f64"). The header gives the thread
count and the load average, as a shared machine makes the numbers move.

Rows marked fwd+bwd time forward plus backward and compare the gradients. Lovász gradients differ
where two errors tie in float32: any order of tied errors gives a valid subgradient, and ours puts
foreground first; the loss values do not depend on it.

The obvious implementations are what one writes first:
  CPP pooling   one-hot of every pixel (ignored pixels as an extra class), adaptive average
                pooling, renormalised by the valid share;
  OHEM          softmax, gather the true-class probability, sort every valid pixel, threshold;
  Lovász        a Python loop over the classes with one sort each (Berman et al.'s code);
  center loss   the full N×C distance matrix from torch.cdist, then gather.

Why the kernels collapsed on two threads of a busy machine (issue 13), measured 2026-11-30 on the
2-core CPU, torch 2.13 (OpenMP backend), load average 4-10 from other jobs throughout, so that the
2-thread tables are always a busy machine here; an idle one could not be measured.

* Every PyTorch op on more than 32,768 elements is an OpenMP parallel region that ends in a
  barrier; when another process holds a core, the team waits there for its descheduled thread, up
  to a scheduler time slice. A multiply of 131,072 floats (30 µs of work) took on average 60-75 µs
  on 1 thread and 0.6-7.7 ms on 2 threads (max 16-40 ms); OMP_WAIT_POLICY=PASSIVE only brought
  the mean to 0.1 ms (max 4.7 ms).
* A kernel pays that wait once per region, and ours were made of many regions: Lovász ran some 20
  ops on each of 5 chunks plus 19 radix sorts with several barriers each (histogram, prefix sum and
  scatter for every 8-bit pass). The obvious per-class loop spends most of its time in
  single-threaded comparison sorts, which have no barrier, so it slowed down less and the ratios
  fell (before, 2 threads with --busy: CPP 3.1x and 4.1x, OHEM 2.2x, Lovász 1.1x; without --busy
  at load 5.5: CPP 4.3x, OHEM 1.1x, Lovász 1.4x).
* Lovász on 2 threads with --busy: 4,353 ms (new key code), 1,559 ms with only the sorts on one
  thread, 533 ms with the whole kernel on one thread (475-528 ms on 1 thread in the same run).
  CPP 1/8, CPP uneven and OHEM went from 350, 394 and 195 ms to 82, 192 and 79 ms on one thread.
  So each kernel now runs its CPU work on one intra-op thread (ablate/losses/_threads.py); OHEM's
  backward pass still runs on torch's threads (the "ohem fwd+bwd" row).
* On one thread Lovász spent about half its time in the 19 per-row radix sorts. Of the rest,
  torch.where, masked_fill, int32 − uint8 arithmetic and a cumsum that converts dtype (22 ms
  against 4 ms for int32 → int32 on 19 x 262,144) ran 3-5x slower than plain same-dtype ops;
  building the keys and weights without them, and summing the value by parts from the sorted keys,
  took the forward from 128-152 ms to 92-124 ms of CPU time (4.3-4.7x → 6.2-6.5x the loop).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ablate.losses.center import CenterLoss
from ablate.losses.lovasz import lovasz_softmax
from ablate.losses.ohem import OhemCrossEntropy
from ablate.losses.pooling import cpp_pool

IGNORE = 255


# ---------------------------------------------------------------- obvious implementations


def obvious_cpp(labels: torch.Tensor, size: tuple[int, int], num_classes: int) -> torch.Tensor:
    mapped = labels.masked_fill(labels == IGNORE, num_classes)  # ignored -> extra class
    one_hot = F.one_hot(mapped, num_classes + 1).permute(0, 3, 1, 2).float()  # (B, C+1, H, W)
    pooled = F.adaptive_avg_pool2d(one_hot, size)[:, :num_classes]  # (B, C, h, w)
    valid_share = pooled.sum(1, keepdim=True)
    return pooled / valid_share.clamp(min=1e-12)


def obvious_ohem(
    logits: torch.Tensor, labels: torch.Tensor, thresh: float, min_kept: int
) -> torch.Tensor:
    prob = F.softmax(logits, 1)
    valid = labels != IGNORE
    true_prob = prob.gather(1, labels.masked_fill(~valid, 0)[:, None])[:, 0][valid]
    nll = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="none")[valid]
    sorted_prob = true_prob.sort().values
    k = min(min_kept, sorted_prob.numel())
    kept = true_prob < thresh
    if k > 0:
        kept |= true_prob <= sorted_prob[k - 1]
    return nll[kept].mean()


def obvious_lovasz(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    num_classes = probs.shape[1]
    flat = probs.permute(0, 2, 3, 1).reshape(-1, num_classes)
    lab = labels.reshape(-1)
    flat, lab = flat[lab != IGNORE], lab[lab != IGNORE]
    losses = []
    for c in range(num_classes):
        fg = (lab == c).to(flat.dtype)
        if fg.sum() == 0:
            continue
        errors = (fg - flat[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, 0, descending=True)
        fg_sorted = fg[perm]
        gts = fg_sorted.sum()
        jaccard = 1.0 - (gts - fg_sorted.cumsum(0)) / (gts + (1.0 - fg_sorted).cumsum(0))
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
        losses.append(torch.dot(errors_sorted, jaccard))
    return torch.stack(losses).mean()


def obvious_center(
    features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor
) -> torch.Tensor:
    distances = torch.cdist(features, centers) ** 2  # (N, C)
    return distances.gather(1, labels[:, None]).sum() / (2 * features.shape[0])


# ---------------------------------------------------------------- inputs


def scene_labels(batch: int, height: int, width: int, classes: int, seed: int) -> torch.Tensor:
    """Blocky regions of 32 x 32 pixels with a band of ignored pixels along the top."""
    gen = torch.Generator().manual_seed(seed)
    coarse_shape = (batch, 1, max(height // 32, 1), max(width // 32, 1))
    coarse = torch.randint(0, classes, coarse_shape, generator=gen)
    coarse = coarse.float()
    labels = F.interpolate(coarse, size=(height, width), mode="nearest")[:, 0].long()
    noise = torch.rand(labels.shape, generator=gen) < 0.05  # speckle: not only clean blocks
    labels[noise] = torch.randint(0, classes, (int(noise.sum()),), generator=gen)
    labels[:, : max(height // 32, 1)] = IGNORE
    return labels


def scene_logits(labels: torch.Tensor, classes: int, confidence: float, seed: int) -> torch.Tensor:
    """Logits of a partly trained network: the true class gets +confidence, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    batch, height, width = labels.shape
    logits = 1.5 * torch.randn(batch, classes, height, width, generator=gen)
    logits.scatter_add_(
        1, labels.clamp(max=classes - 1)[:, None], torch.full((batch, 1, height, width), confidence)
    )
    return logits


# ---------------------------------------------------------------- harness


@dataclass
class Row:
    kernel: str
    ours_ms: float
    obvious_ms: float
    rel_diff: float
    rel_diff_f64: float


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_ms_pair(
    ours: Callable[[], object], obvious: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Median wall times of both, timed alternately so that a change of load hits both alike."""
    ours_times, obvious_times = [], []
    for _ in range(repeat):
        ours_times.append(seconds(ours))
        obvious_times.append(seconds(obvious))
    return 1e3 * statistics.median(ours_times), 1e3 * statistics.median(obvious_times)


def rel_diff(ours: torch.Tensor, reference: torch.Tensor) -> float:
    ours, reference = ours.detach().double(), reference.detach().double()
    return float((ours - reference).abs().max() / reference.abs().max().clamp(min=1e-30))


def measure(
    kernel: str,
    ours: Callable[[], torch.Tensor],
    obvious: Callable[[], torch.Tensor],
    obvious_f64: Callable[[], torch.Tensor],
    repeat: int,
) -> Row:
    ours_out, obvious_out = ours(), obvious()  # also the warm-up
    ours_ms, obvious_ms = median_ms_pair(ours, obvious, repeat)
    return Row(
        kernel,
        ours_ms,
        obvious_ms,
        rel_diff(ours_out, obvious_out),
        rel_diff(ours_out, obvious_f64()),
    )


def backward_of(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor):
    """Forward plus backward; returns the gradient, so results can be compared."""
    leaf = x.detach().requires_grad_(True)

    def run() -> torch.Tensor:
        leaf.grad = None
        loss_fn(leaf).backward()
        assert leaf.grad is not None
        return leaf.grad

    return run


def busy_loop() -> None:
    """A process that only burns CPU: another program on the machine."""
    while True:
        pass


def measure_all(args: argparse.Namespace) -> list[Row]:
    """Every row at the current thread count."""
    classes = 19
    if args.small:
        cpp_shape, dense_shape, n_feat, min_kept = (2, 64, 128), (2, 64, 128), 4096, 4000
    else:
        cpp_shape, dense_shape, n_feat, min_kept = (4, 512, 1024), (2, 256, 512), 65536, 100_000
    rows: list[Row] = []

    # CPP pooling to 1/8 (windows tile evenly) and to an uneven size
    labels = scene_labels(*cpp_shape, classes, seed=1)
    for name, size in [
        ("cpp_pool 1/8", (cpp_shape[1] // 8, cpp_shape[2] // 8)),
        ("cpp_pool uneven", (int(cpp_shape[1] / 8.5), int(cpp_shape[2] / 8.5))),
    ]:
        rows.append(
            measure(
                name,
                lambda s=size: cpp_pool(labels, s, classes),
                lambda s=size: obvious_cpp(labels, s, classes),
                lambda s=size: obvious_cpp(labels, s, classes).double(),
                args.repeat,
            )
        )

    # OHEM: a confident network (k-th selection needed) and an untrained one (no selection)
    labels = scene_labels(*dense_shape, classes, seed=2)
    for name, confidence in [("ohem (k-th select)", 6.0), ("ohem (no select)", 0.0)]:
        logits = scene_logits(labels, classes, confidence, seed=3)
        ohem = OhemCrossEntropy(thresh=0.7, min_kept=min_kept)
        rows.append(
            measure(
                name,
                lambda lg=logits, o=ohem: o(lg, labels),
                lambda lg=logits: obvious_ohem(lg, labels, 0.7, min_kept),
                lambda lg=logits: obvious_ohem(lg.double(), labels, 0.7, min_kept),
                args.repeat,
            )
        )
    logits = scene_logits(labels, classes, 6.0, seed=3)
    rows.append(
        measure(
            "ohem fwd+bwd (select)",
            backward_of(lambda x: ohem(x, labels), logits),
            backward_of(lambda x: obvious_ohem(x, labels, 0.7, min_kept), logits),
            backward_of(lambda x: obvious_ohem(x, labels, 0.7, min_kept), logits.double()),
            args.repeat,
        )
    )

    # Lovász-Softmax on the probabilities of a partly trained network
    for name, confidence in [("lovasz", 3.0), ("lovasz (confident)", 8.0)]:
        probs = scene_logits(labels, classes, confidence, seed=4).softmax(1)
        rows.append(
            measure(
                name,
                lambda p=probs: lovasz_softmax(p, labels),
                lambda p=probs: obvious_lovasz(p, labels),
                lambda p=probs: obvious_lovasz(p.double(), labels),
                args.repeat,
            )
        )
    rows.append(
        measure(
            "lovasz fwd+bwd",
            backward_of(lambda x: lovasz_softmax(x, labels), probs),
            backward_of(lambda x: obvious_lovasz(x, labels), probs),
            backward_of(lambda x: obvious_lovasz(x, labels), probs.double()),
            args.repeat,
        )
    )

    # center loss on pixel embeddings
    gen = torch.Generator().manual_seed(5)
    features = torch.randn(n_feat, 64, generator=gen)
    feature_labels = torch.randint(0, classes, (n_feat,), generator=gen)
    center = CenterLoss(classes, 64).eval()
    center.centers.copy_(torch.randn(classes, 64, generator=gen))
    centers = center.centers
    rows.append(
        measure(
            "center_loss",
            lambda: center(features, feature_labels),
            lambda: obvious_center(features, feature_labels, centers),
            lambda: obvious_center(features.double(), feature_labels, centers.double()),
            args.repeat,
        )
    )
    rows.append(
        measure(
            "center_loss fwd+bwd",
            backward_of(lambda x: center(x, feature_labels), features),
            backward_of(lambda x: obvious_center(x, feature_labels, centers), features),
            backward_of(
                lambda x: obvious_center(x, feature_labels, centers.double()), features.double()
            ),
            args.repeat,
        )
    )

    return rows


def print_table(rows: list[Row], threads: int, args: argparse.Namespace) -> None:
    busy = f", {args.busy} busy-loop process(es) running" if args.busy else ""
    print(
        f"torch {torch.__version__}, {threads} thread(s) of {os.cpu_count()} cores{busy}, "
        f"{'small' if args.small else 'Cityscapes-like'} sizes, median of {args.repeat}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'kernel':<24} {'ours ms':>9} {'obvious ms':>11} {'ratio':>7} "
        f"{'rel diff':>9} {'vs f64':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.kernel:<24} {row.ours_ms:>9.2f} {row.obvious_ms:>11.2f} "
            f"{row.obvious_ms / row.ours_ms:>6.1f}x {row.rel_diff:>9.1e} {row.rel_diff_f64:>9.1e}"
        )
    print()


def thread_counts(text: str) -> list[int]:
    counts = [int(t) for t in text.split(",") if t.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts like 1,2; got {text!r}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per kernel (median)")
    parser.add_argument(
        "--threads",
        type=thread_counts,
        default=[torch.get_num_threads()],
        help="comma-separated intra-op thread counts, one table each (default: torch's own)",
    )
    parser.add_argument(
        "--busy",
        type=int,
        nargs="?",
        const=1,
        default=0,
        help="run N processes (default 1) that spin on a core during the measurement",
    )
    args = parser.parse_args()
    spinners = [
        mp.get_context("spawn").Process(target=busy_loop, daemon=True) for _ in range(args.busy)
    ]
    for spinner in spinners:
        spinner.start()
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            print_table(measure_all(args), threads, args)
    finally:
        for spinner in spinners:
            spinner.terminate()


if __name__ == "__main__":
    main()
