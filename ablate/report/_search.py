"""The search part of a report: every sampled configuration ranked, the metric against each
searched key, the best found so far, and a plain statement of how much the confirmation
can be trusted (the best K were chosen on the search seed, so that seed flatters them)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ablate.design import BASELINE, Comparison, SearchDesign
from ablate.formats import Units
from ablate.names import metric_scale
from ablate.report._figure import axis_label, require, save
from ablate.report._files import write_text
from ablate.report._part import Part, markdown_rows
from ablate.report._seeds import complete
from ablate.report._summary import Summary
from ablate.report._text import md_code
from ablate.study_file import Study

_PANEL_COLUMNS = 3


def search_table(
    design: SearchDesign, metric: str, trials: pd.DataFrame, confirmed: Sequence[str]
) -> pd.DataFrame:
    """One row per search configuration, best first: its rank among the completed ones, its
    values, the metric on the search seed, its state (and its `outcome`, which search.csv
    leaves out) and whether it was confirmed."""
    keys = list(design.space)
    mine = trials[(trials["cell"] != BASELINE) & (trials["seed"] == design.search_seed)]
    # the last try of each cell tells its state (earlier tries failed and were retried)
    last = mine.sort_values("number").groupby("cell", sort=False).tail(1)
    table = last[["number", "cell", *keys, "state", metric, "outcome"]].copy()
    table["confirmed"] = table["cell"].isin(list(confirmed))
    done = complete(table)
    ascending = design.goal != "maximize"
    ranked = table[done].sort_values([metric, "number"], ascending=[ascending, True])
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    rest = table[~done].sort_values("number")
    rest.insert(0, "rank", pd.NA)
    return pd.concat([ranked, rest], ignore_index=True)


def selection_notes(
    design: SearchDesign, metric: str, trials: pd.DataFrame, confirmed: Sequence[str]
) -> list[str]:
    """Per confirmed cell, its mean difference from the baseline on the seeds it was *not*
    chosen on: the estimate the winner's curse does not touch."""
    units = Units.of(metric)
    unit = " points" if units.in_points else ""
    done = trials[complete(trials) & (trials["seed"] != design.search_seed)]
    base = done[done["cell"] == BASELINE].set_index("seed")[metric]
    notes = []
    for cell in confirmed:
        own = done[done["cell"] == cell].set_index("seed")[metric]
        paired = own.index.intersection(base.index)
        if not len(paired):
            notes.append(f"- {md_code(cell)}: no confirmation seed has finished yet")
            continue
        diff = units.fixed(float((own[paired] - base[paired]).mean()), signed=True)
        notes.append(
            f"- {md_code(cell)}: {diff}{unit} against the baseline on the {len(paired)} "
            f"seed(s) it was not chosen on ({', '.join(str(s) for s in paired)})"
        )
    return notes


def plot_search(
    table: pd.DataFrame,
    *,
    keys: Sequence[str],
    log_keys: Sequence[str],
    metric: str,
    goal: str,
    baseline_mean: float,
    out_dir: Path | str,
    stem: str,
    confirmed: pd.DataFrame | None = None,
) -> list[Path]:
    """One panel per searched key (the metric of every completed configuration against its
    value, confirmed ones ringed, the baseline's mean dashed) and one of the best value found
    so far against the order tried. `confirmed` (summary rows: cell, mean, ci_low, ci_high)
    adds each confirmed configuration's mean over every seed with its interval, drawn beside
    its ring: how far the search seed flattered it."""
    require(table, ["number", "outcome", metric, *keys], "the search table")
    done = table[complete(table)].sort_values("number")
    scale = metric_scale(metric)
    panels = len(keys) + 1
    ncols = min(_PANEL_COLUMNS, panels)
    nrows = math.ceil(panels / ncols)
    fig = Figure(figsize=(3.6 * ncols, 3.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    y = done[metric].to_numpy(dtype=float) * scale
    ringed = done["confirmed"].to_numpy(dtype=bool)
    for ax, key in zip(axes, keys, strict=False):
        x = done[key].to_numpy(dtype=float)
        ax.scatter(x[~ringed], y[~ringed], s=22, color="tab:blue", alpha=0.75, label="searched")
        ax.scatter(
            x[ringed], y[ringed], s=60, facecolor="none", edgecolor="tab:red", label="confirmed"
        )
        if confirmed is not None and len(confirmed):
            _draw_confirmed(ax, done, confirmed, key, scale)
        if key in log_keys:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(axis_label(metric))
    best_ax = axes[len(keys)]
    best = np.fmax.accumulate(y) if goal == "maximize" else np.fmin.accumulate(y)
    order = np.arange(1, len(done) + 1)
    best_ax.plot(order, y, "o", ms=3, color="0.6", label="each configuration")
    best_ax.step(order, best, where="post", color="tab:blue", label="best so far")
    best_ax.xaxis.get_major_locator().set_params(integer=True)
    best_ax.set_xlabel("configurations tried")
    best_ax.set_ylabel(axis_label(metric))
    for ax in axes[: len(keys) + 1]:
        if math.isfinite(baseline_mean):
            ax.axhline(baseline_mean * scale, ls="--", color="0.3", lw=1, label="baseline mean")
    for ax in axes[len(keys) + 1 :]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    return save(fig, out_dir, stem)


def _draw_confirmed(
    ax: Any, done: pd.DataFrame, confirmed: pd.DataFrame, key: str, scale: float
) -> None:
    at = done.set_index("cell")[key]
    rows = confirmed[confirmed["cell"].isin(at.index)]
    x = at[rows["cell"]].to_numpy(dtype=float)
    mean = rows["mean"].to_numpy(dtype=float) * scale
    low = (rows["mean"] - rows["ci_low"]).to_numpy(dtype=float) * scale
    high = (rows["ci_high"] - rows["mean"]).to_numpy(dtype=float) * scale
    ax.errorbar(
        x,
        mean,
        yerr=np.nan_to_num(np.vstack([low, high])),
        fmt="D",
        ms=5,
        color="tab:red",
        capsize=3,
        label="confirmed: mean, 95% CI",
    )


_SEARCH_ROWS = 20  # configurations listed in report.md (all are in search.csv)


def search_part(
    study: Study,
    comparison: Comparison,
    trials: pd.DataFrame,
    summary: Summary,
    folder: Path,
) -> Part:
    """search.csv, the search plot and the report's "Search" section."""
    design = study.design
    assert isinstance(design, SearchDesign)
    metric = study.spec.metric.name
    confirmed = [c for c in comparison.compared if c != comparison.baseline]
    table = search_table(design, metric, trials, confirmed)
    csv = folder / "search.csv"
    write_text(csv, table.drop(columns="outcome").to_csv(index=False))
    files = [csv]
    if complete(table).any():
        baseline = summary.get(design.baseline)
        files += plot_search(
            table,
            keys=list(design.space),
            log_keys=[k for k, r in design.space.items() if r.log],
            metric=metric,
            goal=design.goal,
            baseline_mean=baseline.level.mean if baseline else math.nan,
            out_dir=folder / "plots",
            stem="search",
            confirmed=summary.only(confirmed).frame(),
        )
    return Part(files, _section(design, metric, table, trials, confirmed))


def _section(
    design: SearchDesign,
    metric: str,
    table: pd.DataFrame,
    trials: pd.DataFrame,
    confirmed: list[str],
) -> list[str]:
    search = design.search
    lines = [
        "## Search",
        "",
        f"{search.sampler.upper() if search.sampler == 'tpe' else 'Random'} search over "
        f"{', '.join(md_code(k) for k in design.space)}: {len(table)} of {search.n_trials} "
        f"configurations tried, each trained once on seed {design.search_seed}. Ranked by "
        f"{md_code(metric)}; the whole list is in `search.csv`.",
        "",
        markdown_rows(
            table.head(_SEARCH_ROWS), ["rank", "cell", *design.space, metric, "state", "confirmed"]
        ),
        "",
    ]
    if not search.confirm_top:
        lines += [
            "Nothing was confirmed (`sweep.search.confirm_top: 0`): one seed per configuration "
            "cannot tell a better configuration from a lucky seed. Set `confirm_top` to train "
            "the best on every seed and compare them with a baseline.",
            "",
        ]
    elif not confirmed:
        lines += ["The confirmation starts once every search trial has ended.", ""]
    else:
        lines += [
            f"Confirmed: the best {len(confirmed)}, trained on every seed of "
            f"{list(design.seeds)} beside the baseline. They were picked on seed "
            f"{design.search_seed}, which flatters them (the winner's curse) wherever that seed "
            "is among the ones averaged below; on the other seeds alone:",
            "",
            *selection_notes(design, metric, trials, confirmed),
            "",
        ]
    return lines
