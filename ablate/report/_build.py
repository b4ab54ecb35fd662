"""Reading a study's trials back from storage and writing trials.csv, summary.csv, plots and
report.md. Everything here is rebuilt from storage alone: no training, no MLflow reads."""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from ablate.losses.aux import aux_weight_at
from ablate.report._search import plot_search, search_table, selection_notes
from ablate.report.latex import ablation_table, markdown_table
from ablate.report.plots import (
    plot_aux_weight,
    plot_gradient_flow,
    plot_heatmap,
    plot_metric_vs_key,
    plot_per_class_diff,
    plot_training_curves,
)
from ablate.report.stats import (
    ANOVA_TERMS,
    interaction_test,
    per_class_diff,
    summarize,
    two_way,
    verdict_sentence,
)
from ablate.spec import Study
from ablate.study import confirmed_cells, planned_seeds
from ablate.study._storage import trial_key

_STATE = {
    TrialState.COMPLETE: "COMPLETE",
    TrialState.FAIL: "FAIL",
    TrialState.RUNNING: "RUNNING",
    TrialState.WAITING: "WAITING",
}


@dataclass(frozen=True)
class Report:
    folder: Path
    trials: pd.DataFrame
    summary: pd.DataFrame
    files: list[Path]
    planned: dict[str, int]  # seeds each cell is to train on (a search's cells differ)


def _state(trial: optuna.trial.FrozenTrial) -> str:
    if trial.state == TrialState.PRUNED:
        return "DIVERGED" if trial.user_attrs.get("outcome") == "diverged" else "NO_VALUE"
    return _STATE[trial.state]


def trials_table(ostudy: optuna.Study, study: Study) -> pd.DataFrame:
    """One row per trial ablate enqueued: its state, cell, seed, swept values and results."""
    keys = study.keys
    rows: list[dict[str, Any]] = []
    for t in ostudy.get_trials(deepcopy=False):
        pair = trial_key(t)
        if pair is None:
            continue
        overrides = t.user_attrs.get("overrides", {})
        row: dict[str, Any] = {
            "number": t.number,
            "state": _state(t),
            "cell": pair[0],
            "seed": pair[1],
        }
        row.update({k: overrides.get(k) for k in keys})
        row.update(t.user_attrs.get("final", {}))
        row.update({f"best/{k}": v for k, v in t.user_attrs.get("best", {}).items()})
        row["duration_s"] = t.user_attrs.get("duration_s", math.nan)
        row["mlflow_run_id"] = t.user_attrs.get("mlflow_run_id", "")
        row["error"] = t.user_attrs.get("error", "")
        rows.append(row)
    columns = ["number", "state", "cell", "seed", *keys]
    return pd.DataFrame(rows, columns=None if rows else columns)


def history_table(ostudy: optuna.Study) -> pd.DataFrame:
    """Per-epoch metrics of every COMPLETE trial, long: cell, seed, epoch, metric columns."""
    rows = []
    for t in ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        pair = trial_key(t)
        if pair is None:
            continue
        for epoch, metrics in enumerate(t.user_attrs.get("history", []), start=1):
            rows.append({"cell": pair[0], "seed": pair[1], "epoch": epoch, **metrics})
    return pd.DataFrame(rows)


def gradient_table(ostudy: optuna.Study) -> pd.DataFrame:
    """Gradient-flow samples of every COMPLETE trial, long: cell, seed, progress, layer, value."""
    rows = []
    for t in ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        pair = trial_key(t)
        total = t.user_attrs.get("total_steps") or 0
        if pair is None or not total:
            continue
        for iteration, layers in t.user_attrs.get("gradients", []):
            rows += [
                {
                    "cell": pair[0],
                    "seed": pair[1],
                    "progress": iteration / total,
                    "layer": layer,
                    "value": value,
                }
                for layer, value in layers.items()
            ]
    return pd.DataFrame(rows, columns=["cell", "seed", "progress", "layer", "value"])


def _markdown_table(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    cols = [c for c in columns if c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, float):
                cells.append("–" if math.isnan(v) else f"{v:.4g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aux_weight_series(study: Study, points: int = 101) -> pd.DataFrame:
    """α_t against training progress for every cell, computed from the recipes (exactly what
    `fit` uses), long: cell, progress, weight. Empty when no cell's schedule moves the weight."""
    rows = []
    for cell in study.cells:
        aux = study.recipes[cell.name].loss.aux
        for i in range(points):
            t = i / (points - 1)
            weight = aux_weight_at(aux.schedule, aux.weight, t, until=aux.until, gamma=aux.gamma)
            rows.append({"cell": cell.name, "progress": t, "weight": weight})
    frame = pd.DataFrame(rows)
    moving = frame.groupby("cell")["weight"].nunique() > 1
    return frame if moving.any() else frame.iloc[0:0]


def _search_plot(study: Study, focus: _Focus, summary: pd.DataFrame, out: Path) -> list[Path]:
    search = study.search
    table = focus.search
    if search is None or table is None or not (table["state"] == "COMPLETE").any():
        return []
    baseline = summary.loc[summary["cell"] == study.baseline, "mean"]
    return plot_search(
        table,
        keys=list(search.space),
        log_keys=[k for k, r in search.space.items() if r.log],
        metric=study.spec.metric.name,
        goal=study.spec.metric.goal,
        baseline_mean=float(baseline.iloc[0]) if len(baseline) else math.nan,
        out_dir=out,
        stem="search",
        confirmed=summary[summary["cell"].isin(focus.compared[1:])],
    )


def _plots(
    study: Study,
    focus: _Focus,
    trials: pd.DataFrame,
    summary: pd.DataFrame,
    ostudy: optuna.Study,
    per_class: pd.DataFrame,
    out: Path,
) -> list[Path]:
    metric = study.spec.metric.name
    grid = list(study.spec.sweep.grid)
    files = _search_plot(study, focus, summary, out)
    # the cells whose curves are drawn: all of a grid, a search's compared (or best few)
    shown = focus.compared or focus.cells[:_SHOWN_UNCONFIRMED]
    history = history_table(ostudy)
    gradients = gradient_table(ostudy)
    if focus.search is not None:
        history = history[history["cell"].isin(shown)] if len(history) else history
        gradients = gradients[gradients["cell"].isin(shown)]
        trials = trials[trials["cell"].isin(focus.compared)]
        summary = summary[summary["cell"].isin(focus.compared)]
    complete = trials[trials["state"] == "COMPLETE"] if len(trials) else trials
    if len(complete) and complete[metric].notna().any():
        if len(grid) == 2:
            files += plot_heatmap(
                summary,
                row_key=grid[0],
                col_key=grid[1],
                out_dir=out,
                stem="diff_heatmap",
                metric=metric,
            )
        key = grid[0] if len(grid) == 1 and not study.spec.sweep.variants else None
        files += plot_metric_vs_key(
            complete,
            summary,
            key=key,
            metric=metric,
            baseline=focus.baseline,
            out_dir=out,
            stem="metric_vs_cell",
        )
    if len(history):
        # the CE term, not the total: totals with different aux weights are not comparable
        wanted = ["train/loss/ce", metric, "val/loss", "val/boundary_iou", "val/small_iou"]
        metrics = [m for m in dict.fromkeys(wanted) if m in history.columns]
        files += plot_training_curves(history, metrics=metrics, out_dir=out, stem="training_curves")
    if len(per_class) and per_class["diff"].notna().any():
        files += plot_per_class_diff(per_class, out_dir=out, stem="per_class_diff")
    series = aux_weight_series(study) if focus.search is None else pd.DataFrame()
    if len(series):
        files += plot_aux_weight(series, out_dir=out, stem="aux_weight")
    if len(gradients):
        files += plot_gradient_flow(gradients, out_dir=out, stem="gradient_flow")
    return files


def _two_way_section(study: Study, trials: pd.DataFrame) -> list[str]:
    """Two grid keys: the table of means and the two-way ANOVA with interaction."""
    grid = list(study.spec.sweep.grid)
    metric = study.spec.metric.name
    if len(grid) != 2 or not len(trials):
        return []
    cells = set(expand_grid_names(study))
    on_grid = trials[trials["cell"].isin(cells)]
    table = two_way(on_grid, metric=metric, row_key=grid[0], col_key=grid[1])
    test = interaction_test(on_grid, metric=metric, row_key=grid[0], col_key=grid[1])
    lines = ["## Two-way table", "", f"Mean `{metric}` by `{grid[0]}` (rows) × `{grid[1]}`:", ""]
    means = table["mean"].reset_index()
    means.columns = [grid[0], *(f"{grid[1]}={c}" for c in means.columns[1:])]
    lines += [_markdown_table(means, list(means.columns)), ""]
    lines += [
        "Two-way ANOVA (seed as a block): "
        + "; ".join(
            f"{term}: F = {test[f'F_{term}']:.3g}, p = {test[f'p_{term}']:.3g}"
            for term in ANOVA_TERMS
        )
        + (f". {test['note']}" if test.get("note") else ""),
        "",
    ]
    return lines


def expand_grid_names(study: Study) -> list[str]:
    return [c.name for c in study.cells if c.name not in study.spec.sweep.variants]


@dataclass(frozen=True)
class _Focus:
    """Which cells a report compares. A grid compares every cell with its baseline; a search
    ranks every configuration but compares only the confirmed ones with the baseline (none
    when nothing is confirmed: one seed each cannot carry a comparison)."""

    cells: list[str]  # summary.csv's rows, in order
    baseline: str  # the cell the others are paired with
    compared: list[str]  # verdicts, the ablation table and per-class plots (baseline first)
    search: pd.DataFrame | None = None  # a search's ranked configurations


_SHOWN_UNCONFIRMED = 5  # a search without confirmation draws the curves of its best few


def _focus(study: Study, ostudy: optuna.Study, trials: pd.DataFrame) -> _Focus:
    cells = [c.name for c in study.cells]
    if study.search is None:
        return _Focus(cells, study.baseline, cells)
    confirmed = list(confirmed_cells(ostudy))
    table = search_table(study, trials, confirmed, study.spec.metric.goal)
    ranked = [str(c) for c in table["cell"]]
    order = [c for c in cells if c == study.baseline] + confirmed
    order += [c for c in ranked if c not in order]
    order += [c for c in cells if c not in order]
    if study.baseline:
        return _Focus(order, study.baseline, [study.baseline, *confirmed], table)
    best = ranked[0] if ranked else cells[0]
    return _Focus(order, best, [], table)


def _summary(study: Study, trials: pd.DataFrame, focus: _Focus) -> pd.DataFrame:
    summary = summarize(
        trials,
        metric=study.spec.metric.name,
        goal=study.spec.metric.goal,
        baseline=focus.baseline,
        keys=study.keys,
        cells=focus.cells,
    )
    if focus.search is not None and not study.baseline:  # ranked against the best, not tested
        summary.loc[summary["cell"] == focus.baseline, "verdict"] = "best of the search (one seed)"
    return summary


def write_report(study: Study, ostudy: optuna.Study, results: Path) -> Report:
    """Write results/<name>/{trials.csv, summary.csv, report.md, table.tex, plots/} from
    storage: nothing is trained and MLflow is not read. A search also gets search.csv; without
    a confirmation it has no baseline, so no table.tex."""
    folder = results / study.spec.name
    plots = folder / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    spec = study.spec
    metric = spec.metric.name
    trials = trials_table(ostudy, study)
    if not len(trials):
        trials = pd.DataFrame(columns=["number", "state", "cell", "seed", *study.keys])
    if metric not in trials.columns:
        trials[metric] = math.nan
    focus = _focus(study, ostudy, trials)
    summary = _summary(study, trials, focus)
    class_columns = [c for c in trials.columns if c.startswith("val/iou/")]
    per_class = (
        per_class_diff(
            trials, baseline=focus.baseline, class_columns=class_columns, cells=focus.compared
        )
        if class_columns and focus.compared
        else pd.DataFrame(columns=["cell", "class", "diff"])
    )
    files = _plots(study, focus, trials, summary, ostudy, per_class, plots)

    written = [folder / "trials.csv", folder / "summary.csv"]
    trials.drop(columns=["error"], errors="ignore").to_csv(written[0], index=False)
    summary.to_csv(written[1], index=False)
    if focus.search is not None:
        written.append(folder / "search.csv")
        focus.search.to_csv(written[-1], index=False)
    if focus.compared:
        written.append(folder / "table.tex")
        compared = summary[summary["cell"].isin(focus.compared)]
        written[-1].write_text(
            ablation_table(
                compared,
                metric=metric,
                keys=study.keys,
                baseline=focus.baseline,
                goal=spec.metric.goal,
            ),
            encoding="utf-8",
        )
    text = _report_markdown(study, ostudy, focus, trials, summary, files, folder)
    (folder / "report.md").write_text(text, encoding="utf-8")
    (folder / "report.html").write_text(_html(spec.name, text), encoding="utf-8")
    written += [folder / "report.md", folder / "report.html"]
    return Report(folder, trials, summary, [*written, *files], planned_seeds(study, ostudy))


_CSS = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
    "th{background:#f3f3f3}img{max-width:100%;margin:.5em 0}code{background:#f5f5f5}"
)


def _html(title: str, markdown_text: str) -> str:
    """report.md as a standalone page (plots linked relatively), for a browser."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )


def _run_facts(study: Study, ostudy: optuna.Study, trials: pd.DataFrame) -> list[str]:
    """What was run: the file, the commit, versions, devices and time."""
    import torch

    spec = study.spec
    states = trials["state"].value_counts().to_dict() if len(trials) else {}
    durations = pd.to_numeric(trials.get("duration_s"), errors="coerce") if len(trials) else None
    total_s = float(durations.sum()) if durations is not None else 0.0
    starts = [t.datetime_start for t in ostudy.get_trials(deepcopy=False) if t.datetime_start]
    ends = [t.datetime_complete for t in ostudy.get_trials(deepcopy=False) if t.datetime_complete]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else math.nan
    return [
        f"- study file: `{study.path}`; commit: `{_commit(study.path)}`",
        f"- design: {study.describe()}; baseline: `{study.baseline or 'none'}`",
        f"- metric: `{spec.metric.name}` ({spec.metric.goal})",
        f"- trials by state: {', '.join(f'{k} {v}' for k, v in sorted(states.items())) or 'none'}",
        f"- time: {wall / 60:.1f} min from the first trial's start to the last one's end; "
        f"{total_s / 60:.1f} min of training summed over trials",
        f"- devices: {_devices(ostudy)}; python {platform.python_version()}, torch "
        f"{torch.__version__}, optuna {optuna.__version__}, on {platform.platform(terse=True)}",
    ]


def _commit(path: Path) -> str:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=path.resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown (not a git checkout)"


def _devices(ostudy: optuna.Study) -> str:
    found = sorted(
        {
            str(t.user_attrs.get("device", "?"))
            for t in ostudy.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE
        }
    )
    return ", ".join(found) or "none yet"


def _report_markdown(
    study: Study,
    ostudy: optuna.Study,
    focus: _Focus,
    trials: pd.DataFrame,
    summary: pd.DataFrame,
    files: list[Path],
    folder: Path,
) -> str:
    spec = study.spec
    lines = [
        f"# {spec.name}",
        "",
        spec.description.strip() or "(no description)",
        "",
        *_run_facts(study, ostudy, trials),
        "",
        *_search_section(study, focus, trials),
    ]
    compared = summary[summary["cell"].isin(focus.compared)]
    if len(compared):
        lines += ["## Verdicts", ""]
        for _, row in compared.iterrows():
            if row["cell"] != focus.baseline:
                lines.append(f"- {verdict_sentence(row.to_dict(), spec.metric.name)}")
        lines += [
            "",
            "## Ablation table",
            "",
            "Mean ± std over seeds; Δ is the mean paired (by seed) difference from the baseline "
            "with its 95% t-interval; p_holm is the paired t-test after Holm's correction over "
            "the compared cells. The same table for LaTeX is in `table.tex`; every column, with "
            "the Wilcoxon test, d_z and a bootstrap interval, is in `summary.csv`.",
            "",
            markdown_table(
                compared,
                metric=spec.metric.name,
                keys=study.keys,
                baseline=focus.baseline,
                goal=spec.metric.goal,
            ),
            "",
        ]
    lines += [*_two_way_section(study, trials), "## Plots", ""]
    lines += [
        f"![{f.stem}]({f.relative_to(folder).as_posix()})" for f in files if f.suffix == ".png"
    ]
    lines += [
        "",
        "## Trials",
        "",
        _markdown_table(
            trials, ["number", "state", "cell", "seed", spec.metric.name, "duration_s", "error"]
        ),
    ]
    return "\n".join(lines) + "\n"


_SEARCH_ROWS = 20  # configurations listed in report.md (all are in search.csv)


def _search_section(study: Study, focus: _Focus, trials: pd.DataFrame) -> list[str]:
    search, table = study.search, focus.search
    if search is None or table is None:
        return []
    metric = study.spec.metric.name
    confirmed = [c for c in focus.compared if c != focus.baseline]
    lines = [
        "## Search",
        "",
        f"{search.sampler.upper() if search.sampler == 'tpe' else 'Random'} search over "
        f"{', '.join(f'`{k}`' for k in search.space)}: {len(table)} of {search.n_trials} "
        f"configurations tried, each trained once on seed {study.search_seed}. Ranked by "
        f"`{metric}`; the whole list is in `search.csv`.",
        "",
        _markdown_table(
            table.head(_SEARCH_ROWS), ["rank", "cell", *search.space, metric, "state", "confirmed"]
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
            f"{study.spec.sweep.seeds} beside the baseline. They were picked on seed "
            f"{study.search_seed}, which flatters them (the winner's curse) wherever that seed "
            "is among the ones averaged below; on the other seeds alone:",
            "",
            *selection_notes(study, trials, confirmed),
            "",
        ]
    return lines
