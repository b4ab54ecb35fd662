"""`ablate diagnose`'s figure: each stage's mean |gradient| over the steps of one run, against
the 1e-7 under which Wang et al. (2015) place a companion head."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ablate.report._figure import save
from ablate.report._plot_gradients import WANG_THRESHOLD, _layer_colors


def plot_stage_gradients(
    samples: Sequence[tuple[int, Mapping[str, float]]],
    *,
    title: str,
    out_dir: Path | str,
    stem: str,
    threshold: float = WANG_THRESHOLD,
    flagged: Collection[str] = (),
) -> list[Path]:
    """One line per stage (input to output, in the samples' key order): its mean |∂L/∂w| at
    each sampled step, log y, the threshold dashed; the `flagged` stages (under it, by the
    caller's reading) are marked in the legend. A value of exactly 0 cannot be drawn on the
    log axis and leaves a gap."""
    if not samples:
        raise ValueError("no gradient samples: nothing to plot")
    stages = list(samples[0][1])
    steps = [i for i, _ in samples]
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    for stage, color in _layer_colors(stages).items():
        values = [g[stage] if g[stage] > 0 else float("nan") for _, g in samples]
        under = f" (under {threshold:g})" if stage in flagged else ""
        ax.plot(steps, values, color=color, label=f"{stage}{under}")
    ax.axhline(threshold, ls="--", lw=1, color="0.3", label=f"Wang et al. ({threshold:g})")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("training step")
    ax.set_ylabel(r"mean $|\partial L / \partial w|$ of stage")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3, which="major")
    fig.legend(loc="outside right upper", fontsize="small", title="stage")
    return save(fig, out_dir, stem)
