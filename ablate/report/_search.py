"""The search part of a report: every sampled configuration ranked, the metric against each
searched key, the best found so far, and what each confirmed configuration was judged on: the
best K were chosen on the search seed, which flatters them, so their comparisons with the
baseline leave that seed out (`Comparison.selected_on`) and this part says so."""

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
from ablate.report._seeds import complete, empty_series, seed_values
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
    comparison: Comparison, metric: str, trials: pd.DataFrame, summary: Summary
) -> list[str]:
    """Per confirmed cell (those `comparison.selected_on` names), the seeds its comparison
    with the baseline is judged on (those it was not selected on, paired with the
    baseline's) and its mean difference there, as the summary's paired comparison holds it:
    the estimate the winner's curse does not touch."""
    units = Units.of(metric)
    unit = " points" if units.in_points else ""
    values = seed_values(trials, metric)
    base = values.get(comparison.baseline, empty_series())
    notes = []
    for cell, selected in comparison.selected_on.items():
        own = values.get(cell, empty_series())
        paired = sorted(int(s) for s in own.index.intersection(base.index) if s not in selected)
        row = summary.get(cell)
        if not paired or row is None:
            notes.append(f"- {md_code(cell)}: no confirmation seed has finished yet")
            continue
        n = len(paired)
        judged = f"the {n} seeds" if n > 1 else "the one seed"
        diff = units.fixed(row.paired.diff, signed=True)
        test = "" if n > 1 else " (one seed: no test possible)"
        by = "seed " + ", ".join(map(str, selected))
        notes.append(
            f"- {md_code(cell)}: {diff}{unit} against the baseline{test}, judged on {judged} "
            f"it was not selected on ({', '.join(map(str, paired))}); {by} selected it"
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
    return Part(files, _section(design, comparison, metric, table, trials, summary))


def _section(
    design: SearchDesign,
    comparison: Comparison,
    metric: str,
    table: pd.DataFrame,
    trials: pd.DataFrame,
    summary: Summary,
) -> list[str]:
    search = design.search
    confirmed = [c for c in comparison.compared if c != comparison.baseline]
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
            f"{design.search_seed}, which flatters them (the winner's curse), so each is judged "
            "on the seeds it was not selected on: the Δ, interval, p (Holm) and verdict below "
            "pair it with the baseline on those seeds alone, and the verdicts' n counts them "
            "(the table's n and mean ± std count every seed it trained on).",
            "",
            *selection_notes(comparison, metric, trials, summary),
            "",
        ]
    return lines
