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

from ablate.report.plots import plot_heatmap, plot_metric_vs_key, plot_training_curves
from ablate.report.stats import summarize, verdict_sentence
from ablate.spec import Study
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


def _plots(
    study: Study, trials: pd.DataFrame, summary: pd.DataFrame, history: pd.DataFrame, out: Path
) -> list[Path]:
    metric = study.spec.metric.name
    files: list[Path] = []
    complete = trials[trials["state"] == "COMPLETE"] if len(trials) else trials
    if len(complete) and metric in complete.columns:
        if study.spec.sweep.grid and len(study.spec.sweep.grid) == 2:
            row_key, col_key = list(study.spec.sweep.grid)
            files += plot_heatmap(
                summary,
                row_key=row_key,
                col_key=col_key,
                out_dir=out,
                stem="diff_heatmap",
                metric=metric,
            )
        grid_keys = list(study.spec.sweep.grid)
        key = grid_keys[0] if len(grid_keys) == 1 and not study.spec.sweep.variants else None
        files += plot_metric_vs_key(
            complete,
            summary,
            key=key,
            metric=metric,
            baseline=study.baseline,
            out_dir=out,
            stem="metric_vs_cell",
        )
    if len(history):
        # the CE term, not the total: totals with different aux weights are not comparable
        wanted = ["train/loss/ce", metric, "val/loss"]
        if (
            "train/aux_weight" in history.columns
            and (history.groupby(["cell", "seed"])["train/aux_weight"].nunique() > 1).any()
        ):
            wanted.append("train/aux_weight")  # only when some schedule actually changes it
        metrics = [m for m in dict.fromkeys(wanted) if m in history.columns]
        files += plot_training_curves(history, metrics=metrics, out_dir=out, stem="training_curves")
    return files


def write_report(study: Study, ostudy: optuna.Study, results: Path) -> Report:
    """Write results/<name>/{trials.csv, summary.csv, report.md, plots/} from storage."""
    folder = results / study.spec.name
    plots = folder / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    spec = study.spec
    trials = trials_table(ostudy, study)
    cells = [c.name for c in study.cells]
    if not len(trials):
        trials = pd.DataFrame(columns=["number", "state", "cell", "seed", *study.keys])
    if spec.metric.name not in trials.columns:
        trials[spec.metric.name] = math.nan
    summary = summarize(
        trials,
        metric=spec.metric.name,
        goal=spec.metric.goal,
        baseline=study.baseline,
        keys=study.keys,
        cells=cells,
    )
    history = history_table(ostudy)
    files = _plots(study, trials, summary, history, plots)

    trials.drop(columns=["error"], errors="ignore").to_csv(folder / "trials.csv", index=False)
    summary.to_csv(folder / "summary.csv", index=False)
    (folder / "report.md").write_text(
        _report_markdown(study, trials, summary, files, folder), encoding="utf-8"
    )
    return Report(
        folder,
        trials,
        summary,
        [folder / "trials.csv", folder / "summary.csv", folder / "report.md", *files],
    )


def _report_markdown(
    study: Study, trials: pd.DataFrame, summary: pd.DataFrame, files: list[Path], folder: Path
) -> str:
    import torch

    spec = study.spec
    states = trials["state"].value_counts().to_dict() if len(trials) else {}
    total_s = (
        float(pd.to_numeric(trials.get("duration_s"), errors="coerce").sum())
        if len(trials)
        else 0.0
    )
    lines = [
        f"# {spec.name}",
        "",
        spec.description.strip() or "(no description)",
        "",
        f"- study file: `{study.path}`",
        f"- cells: {len(study.cells)} × seeds {spec.sweep.seeds}; baseline: `{study.baseline}`",
        f"- metric: `{spec.metric.name}` ({spec.metric.goal})",
        f"- trials by state: {', '.join(f'{k} {v}' for k, v in sorted(states.items())) or 'none'}",
        f"- training time, summed over trials: {total_s / 60:.1f} min",
        f"- python {platform.python_version()}, torch {torch.__version__}, "
        f"optuna {optuna.__version__}",
        "",
        "## Verdicts",
        "",
    ]
    for _, row in summary.iterrows():
        if row["cell"] != study.baseline:
            lines.append(f"- {verdict_sentence(row.to_dict(), spec.metric.name)}")
    lines += [
        "",
        "## Summary",
        "",
        "Mean of the metric over seeds with a 95% Student-t interval; `diff` is the mean paired "
        "(by seed) difference from the baseline, `p_holm` its paired t-test p-value after Holm's "
        "correction over the compared cells.",
        "",
        _markdown_table(
            summary,
            [
                "cell",
                *study.keys,
                "n",
                "mean",
                "std",
                "ci_low",
                "ci_high",
                "diff",
                "p_value",
                "p_holm",
                "verdict",
            ],
        ),
        "",
        "## Plots",
        "",
    ]
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
