"""Reading a study's trials back from storage and writing trials.csv, summary.csv, plots and
report.md. Everything here is rebuilt from storage alone: no training, no MLflow reads. Text
from the study file or the trials reaches report.md through `_text` only (as text, never
markup), and every file through `_files` (whole or not at all)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from ablate.design import Comparison
from ablate.names import metric_info
from ablate.report import _provenance
from ablate.report._files import cannot_write, write_text
from ablate.report._health import LATE_GAIN_POINTS, never_learned, trial_health
from ablate.report._part import Part, markdown_rows
from ablate.report._provenance import Provenance, provenance
from ablate.report._search import search_part
from ablate.report._text import html_page, md_block, md_code, md_text
from ablate.report._tricks import tricks_part
from ablate.report.latex import ablation_table, markdown_table
from ablate.report.plots import (
    plot_aux_weight,
    plot_diff_vs_baseline,
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
from ablate.study import Queue, TrialRecord, planned_seeds
from ablate.study_file import Study
from ablate.urls import mask_secrets

# a design's own part of the report, by `Design.kind` (designs without one have none)
PARTS: dict[str, Callable[[Study, Comparison, pd.DataFrame, pd.DataFrame, Path], Part]] = {
    "search": search_part,
    "tricks": tricks_part,
}


@dataclass(frozen=True)
class Report:
    folder: Path
    trials: pd.DataFrame
    summary: pd.DataFrame
    files: list[Path]
    planned: dict[str, int]  # seeds each cell is to train on (a search's cells differ)
    comparison: Comparison
    provenance: Provenance


def trials_table(records: Sequence[TrialRecord], study: Study) -> pd.DataFrame:
    """One row per trial ablate enqueued: its state, cell, seed, swept values and results."""
    keys = study.keys
    rows: list[dict[str, Any]] = []
    for r in records:
        row: dict[str, Any] = {"number": r.number, "state": r.state, "cell": r.cell, "seed": r.seed}
        row.update({k: r.overrides.get(k) for k in keys})
        row.update(r.result.final)
        row.update({f"best/{k}": v for k, v in r.result.best.items()})
        row["duration_s"] = r.result.duration_s
        row["mlflow_run_id"] = r.mlflow_run_id
        row["error"] = mask_secrets(r.error) if r.error else r.error
        rows.append(row)
    columns = ["number", "state", "cell", "seed", *keys]
    return pd.DataFrame(rows, columns=None if rows else columns)


def history_table(records: Sequence[TrialRecord]) -> pd.DataFrame:
    """Per-epoch metrics of every COMPLETE trial, long: cell, seed, epoch, metric columns."""
    rows = []
    for r in records:
        if r.state == "COMPLETE":
            for epoch, metrics in enumerate(r.result.history, start=1):
                rows.append({"cell": r.cell, "seed": r.seed, "epoch": epoch, **metrics})
    return pd.DataFrame(rows)


def gradient_table(records: Sequence[TrialRecord]) -> pd.DataFrame:
    """Gradient-flow samples of every COMPLETE trial, long: cell, seed, progress, layer, value."""
    rows = []
    for r in records:
        total = r.result.total_steps
        if r.state != "COMPLETE" or not total:
            continue
        for iteration, layers in r.result.gradients:
            rows += [
                {
                    "cell": r.cell,
                    "seed": r.seed,
                    "progress": iteration / total,
                    "layer": layer,
                    "value": value,
                }
                for layer, value in layers.items()
            ]
    return pd.DataFrame(rows, columns=["cell", "seed", "progress", "layer", "value"])


def aux_weight_series(study: Study, cells: Sequence[str], points: int = 101) -> pd.DataFrame:
    """α_t against training progress for each of `cells` whose recipe is known up front,
    computed from the recipes (exactly what `fit` uses), long: cell, progress, weight. Empty
    when no cell's schedule moves the weight."""
    known = [study.recipes[c].loss.aux for c in cells if c in study.recipes]
    if all(aux.schedule == "constant" for aux in known):  # nothing moves: no torch to import
        return pd.DataFrame(columns=["cell", "progress", "weight"])
    from ablate.losses.aux import aux_weight_at

    rows = []
    for cell in cells:
        if cell not in study.recipes:
            continue
        aux = study.recipes[cell].loss.aux
        for i in range(points):
            t = i / (points - 1)
            weight = aux_weight_at(aux.schedule, aux.weight, t, until=aux.until, gamma=aux.gamma)
            rows.append({"cell": cell, "progress": t, "weight": weight})
    frame = pd.DataFrame(rows, columns=["cell", "progress", "weight"])
    moving = frame.groupby("cell")["weight"].nunique() > 1
    return frame if moving.any() else frame.iloc[0:0]


def _plots(
    study: Study,
    comparison: Comparison,
    trials: pd.DataFrame,
    summary: pd.DataFrame,
    records: Sequence[TrialRecord],
    per_class: pd.DataFrame,
    out: Path,
) -> list[Path]:
    """The common plots, over the compared cells (curves: the cells the summary shows)."""
    metric = study.spec.metric.name
    factors = list(study.design.factors)
    shown = study.design.summary_rows(comparison)
    history = history_table(records)
    history = history[history["cell"].isin(shown)] if len(history) else history
    gradients = gradient_table(records)
    gradients = gradients[gradients["cell"].isin(shown)]
    trials = trials[trials["cell"].isin(comparison.compared)]
    summary = summary[summary["cell"].isin(comparison.compared)]
    files: list[Path] = []
    complete = trials[trials["state"] == "COMPLETE"]
    if (summary["cell"] != comparison.baseline).any() and summary["n_pairs"].gt(0).any():
        files += plot_diff_vs_baseline(
            summary,
            metric=metric,
            baseline=comparison.baseline,
            out_dir=out,
            stem="diff_vs_baseline",
            against=comparison.against or None,
        )
    if len(complete) and complete[metric].notna().any():
        if len(factors) == 2:
            files += plot_heatmap(
                summary,
                row_key=factors[0],
                col_key=factors[1],
                out_dir=out,
                stem="diff_heatmap",
                metric=metric,
            )
        files += plot_metric_vs_key(
            complete,
            summary,
            key=study.design.axis,
            metric=metric,
            baseline=comparison.baseline,
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
    series = aux_weight_series(study, comparison.compared)
    if len(series):
        files += plot_aux_weight(series, out_dir=out, stem="aux_weight")
    if len(gradients):
        files += plot_gradient_flow(gradients, out_dir=out, stem="gradient_flow")
    return files


def _two_way_section(study: Study, trials: pd.DataFrame) -> list[str]:
    """Two crossed keys: the table of means and the two-way ANOVA with interaction."""
    factors = list(study.design.factors)
    metric = study.spec.metric.name
    if len(factors) != 2 or not len(trials):
        return []
    on_grid = trials[trials["cell"].isin(list(study.design.crossed))]
    table = two_way(on_grid, metric=metric, row_key=factors[0], col_key=factors[1])
    test = interaction_test(on_grid, metric=metric, row_key=factors[0], col_key=factors[1])
    lines = [
        "## Two-way table",
        "",
        f"Mean {md_code(metric)} by {md_code(factors[0])} (rows) × {md_code(factors[1])}:",
        "",
    ]
    means = table["mean"].reset_index()
    means.columns = [factors[0], *(f"{factors[1]}={c}" for c in means.columns[1:])]
    lines += [markdown_rows(means, list(means.columns)), ""]
    lines += [
        "Two-way ANOVA (seed as a block): "
        + "; ".join(
            f"{term}: F = {test[f'F_{term}']:.3g}, p = {test[f'p_{term}']:.3g}"
            for term in ANOVA_TERMS
        )
        + (f". {md_text(test['note'])}" if test.get("note") else ""),
        "",
    ]
    return lines


def _summary(
    study: Study, trials: pd.DataFrame, comparison: Comparison, history: pd.DataFrame
) -> pd.DataFrame:
    summary = summarize(
        trials,
        metric=study.spec.metric.name,
        goal=study.spec.metric.goal,
        baseline=comparison.baseline,
        keys=study.keys,
        cells=comparison.cells,
        history=history,
        effect=study.spec.metric.effect,
        references=comparison.references,
    )
    if comparison.best_searched:  # ranked against it, not tested
        at = summary["cell"] == comparison.baseline
        summary.loc[at, "verdict"] = "best of the search (one seed)"
    if comparison.sequential:
        _sequential_verdicts(summary, comparison)
    return summary


# verdicts of the fixed-n test that a sequential decision must not replace: the comparison
# itself cannot be trusted (or has no data), whatever the test says
_KEPT = ("inconclusive", "diverged", "missing", "n/a", "baseline")


def _sequential_verdicts(summary: pd.DataFrame, comparison: Comparison) -> None:
    """Adaptive seeds: a comparison's verdict is its sequential test's (the fixed-n p-value
    of the table is not valid after optional stopping); `seeds_used` and `stopped` say where
    and why it stopped."""
    used, stopped = [], []
    for i, row in summary.iterrows():
        decision = comparison.sequential.get(str(row["cell"]))
        used.append(decision.n if decision else math.nan)
        stopped.append(decision.reason if decision else "")
        verdict = str(row["verdict"])
        if decision is None or verdict.startswith(_KEPT):
            continue
        summary.loc[i, "verdict"] = {
            "better": "better",
            "worse": "worse",
            "equivalent": "no difference that matters",
            "max": f"undecided at the most seeds (n = {decision.n})",
            "undecided": "undecided: more seeds are queued",
        }[decision.status]
    summary["seeds_used"] = used
    summary["stopped"] = stopped


def write_report(
    study: Study, queue: Queue, results: Path, argv: Sequence[str] | None = None
) -> Report:
    """Write results/<name>/{trials.csv, summary.csv, report.md, report.html, provenance.json,
    table.tex, plots/} from storage: nothing is trained and MLflow is not read. A design may
    add files and a section of its own (a search: search.csv and its plot); table.tex only
    where cells are compared. `argv` is the command recorded as provenance (default: this
    process's). A file the disk refuses (full, read-only) is a `UserError` naming it; each
    file is replaced whole or not at all, so the previous report's stays readable."""
    try:
        return _write_report(study, queue, results, argv)
    except OSError as exc:
        if exc.filename is None or not Path(str(exc.filename)).is_relative_to(results):
            raise
        raise cannot_write(exc, f"ablate report {study.spec.name}") from exc


def _write_report(study: Study, queue: Queue, results: Path, argv: Sequence[str] | None) -> Report:
    folder = results / study.spec.name
    plots = folder / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    spec = study.spec
    metric = spec.metric.name
    records = queue.records()
    trials = trials_table(records, study)
    if not len(trials):
        trials = pd.DataFrame(columns=["number", "state", "cell", "seed", *study.keys])
    if metric not in trials.columns:
        trials[metric] = math.nan
    comparison = study.design.comparison(records, queue.attrs)
    history = history_table(records)
    summary = _summary(study, trials, comparison, history)
    trials = trials.join(trial_health(trials, history, metric=metric, goal=spec.metric.goal))
    made_by = provenance(study, records, argv)
    class_columns = [c for c in trials.columns if c.startswith("val/iou/")]
    per_class = (
        per_class_diff(
            trials,
            baseline=comparison.baseline,
            class_columns=class_columns,
            cells=comparison.compared,
        )
        if class_columns and comparison.compared
        else pd.DataFrame(columns=["cell", "class", "diff"])
    )
    make_part = PARTS.get(study.design.kind)
    part = make_part(study, comparison, trials, summary, folder) if make_part else Part([], [])
    files = part.files + _plots(study, comparison, trials, summary, records, per_class, plots)
    for stale in set(plots.iterdir()) - set(files):  # an earlier report's, not this one's
        if stale.is_file():
            stale.unlink()

    written = [folder / "trials.csv", folder / "summary.csv", folder / "provenance.json"]
    write_text(written[0], trials.to_csv(index=False))
    write_text(written[1], summary.to_csv(index=False))
    write_text(
        written[2], json.dumps({**made_by.as_tags(), "recipe": made_by.recipe}, indent=2) + "\n"
    )
    if comparison.compared:
        written.append(folder / "table.tex")
        compared = summary[summary["cell"].isin(comparison.compared)]
        write_text(
            written[-1],
            ablation_table(
                compared,
                metric=metric,
                keys=study.keys,
                baseline=comparison.baseline,
                goal=spec.metric.goal,
            ),
        )
    text = _report_markdown(
        study, records, comparison, part, trials, summary, files, folder, made_by
    )
    write_text(folder / "report.md", text)
    write_text(folder / "report.html", html_page(spec.name, text, _CSS))
    written += [folder / "report.md", folder / "report.html"]
    return Report(
        folder,
        trials,
        summary,
        [*written, *files],
        planned_seeds(study, queue),
        comparison,
        made_by,
    )


_CSS = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
    "th{background:#f3f3f3}img{max-width:100%;margin:.5em 0}code{background:#f5f5f5}"
)


def _run_facts(study: Study, records: Sequence[TrialRecord], trials: pd.DataFrame) -> list[str]:
    """What was run: the file, the design, the metric, the trials and the time they took."""
    spec = study.spec
    states = trials["state"].value_counts().to_dict() if len(trials) else {}
    durations = pd.to_numeric(trials.get("duration_s"), errors="coerce") if len(trials) else None
    total_s = float(durations.sum()) if durations is not None else 0.0
    starts = [r.started for r in records if r.started]
    ends = [r.ended for r in records if r.ended]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else math.nan
    effect = spec.metric.effect
    matters = f"; the smallest difference that matters: {effect:g}" if effect else ""
    unit = " point(s)" if metric_info(spec.metric.name).scale != 1.0 else ""
    return [
        f"- study file: {md_code(study.path)} (provenance at the end)",
        f"- design: {md_text(study.describe())}; baseline: {md_code(study.baseline or 'none')}",
        f"- metric: {md_code(spec.metric.name)} ({spec.metric.goal}){matters}"
        f"{unit if effect else ''}",
        f"- trials by state: {', '.join(f'{k} {v}' for k, v in sorted(states.items())) or 'none'}",
        f"- time: {wall / 60:.1f} min from the first trial's start to the last one's end; "
        f"{total_s / 60:.1f} min of training summed over trials",
    ]


def _test_section(
    compared: pd.DataFrame, metric: str, baseline: str, against: str | None = None
) -> list[str]:
    """The compared cells on the held-out test split, where the trials measured one."""
    if "test_mean" not in compared.columns or compared["test_mean"].isna().all():
        return []
    info = metric_info(metric)
    test = "test/" + metric.removeprefix("val/")

    def shown(value: float, signed: bool = False) -> str:
        if math.isnan(value):
            return "–"
        return f"{value * info.scale:{'+' if signed else ''}.2f}"

    lines = [
        "## Held-out test split",
        "",
        f"Mean {test} over seeds ({info.unit or 'as measured'}), measured once on each trial's "
        f"final model, and its mean paired difference from {md_text(against or 'the baseline')}. "
        "The verdicts above "
        "use validation; this is where they are checked on images no choice was made on.",
        "",
        f"| cell | n | {test} | Δ vs {md_text(against or baseline)} |",
        "| --- | --- | --- | --- |",
    ]
    for _, row in compared.iterrows():
        lines.append(
            f"| {md_text(row['cell'])} | {int(row['n'])} | {shown(row['test_mean'])} | "
            f"{shown(row['test_diff'], signed=True)} |"
        )
    return [*lines, ""]


def _health_section(
    summary: pd.DataFrame, trials: pd.DataFrame, comparison: Comparison, metric: str
) -> list[str]:
    """Above everything else: whether the models learned and settled, so no reader takes a
    comparison of failures for a finding."""
    shown = summary[summary["cell"].isin(comparison.compared)]
    done = trials[(trials["state"] == "COMPLETE") & trials["cell"].isin(comparison.compared)]
    lines = ["## Health", ""]
    if len(shown) and len(done):
        collapsed = int(shown["collapsed"].fillna(0).sum())
        if collapsed == len(done):
            lines += [
                f"**The models did not learn: all {len(done)} completed trials predict one "
                "class.** Every comparison below is inconclusive; fix the recipe (learning "
                "rate, epochs, `ablate diagnose`) before reading any difference.",
                "",
            ]
    unlearned = never_learned(done) if len(done) else []
    if unlearned:
        lines.append(
            f"- classes never learned (IoU 0 in all {len(done)} completed trials): "
            f"{md_text(', '.join(unlearned))}; their per-class differences are not shown"
        )
    for _, row in shown.iterrows():
        problems = [row["health"]] if isinstance(row["health"], str) and row["health"] else []
        if int(row["diverged"] or 0):
            problems.append(f"{int(row['diverged'])} seed(s) diverged")
        if problems:
            lines.append(f"- {md_code(row['cell'])}: {md_text('; '.join(problems))}")
    if len(lines) == 2:
        lines.append(
            "Every check passed: no trial predicts a single class, every class was learned "
            f"somewhere, every cell's mean curve gained at most {LATE_GAIN_POINTS:g} point(s) "
            "(1 % for raw metrics) over the last quarter of training, and nothing diverged."
        )
    elif not any(line.startswith("**") for line in lines):
        lines.insert(
            2,
            "Checks that failed (a cell with a collapsed or diverged seed, or an unconverged "
            "curve where no difference was found, is *inconclusive*):",
        )
        lines.insert(3, "")
    return [*lines, ""]


def _sequential_section(compared: pd.DataFrame, comparison: Comparison, study: Study) -> list[str]:
    """Adaptive seeds: per comparison, the seeds it took and why it stopped."""
    if not comparison.sequential or "stopped" not in compared.columns:
        return []
    lines = [
        "## Adaptive seeds",
        "",
        "Seeds were added in rounds while a comparison was undecided. Each comparison is a "
        "group-sequential paired t-test whose error budget (α = 0.05 split over the "
        "comparisons) is spent over its looks by an O'Brien–Fleming-type function (Lan & "
        "DeMets 1983); with `metric.effect` it also stops when an equivalence test (TOST) "
        "shows no difference that large. The verdicts come from this test; the p-values and "
        "intervals of the table below are fixed-n values, not adjusted for the stopping.",
        "",
        "| cell | seeds used | why it stopped |",
        "| --- | --- | --- |",
    ]
    for _, row in compared.iterrows():
        if row["cell"] != comparison.baseline and row["stopped"]:
            cell, used, why = md_text(row["cell"]), int(row["seeds_used"]), md_text(row["stopped"])
            lines.append(f"| {cell} | {used} | {why} |")
    return [*lines, ""]


def _seeds_advice(summary: pd.DataFrame, study: Study) -> list[str]:
    """With `metric.effect`: how many seeds each comparison needs to detect it."""
    effect = study.spec.metric.effect
    if not effect or "seeds_needed" not in summary.columns:
        return []
    # only healthy comparisons: for the others more seeds are not what is missing
    tested = summary[summary["verdict"].astype(str).str.match("better|worse|no detectable")]
    if not len(tested):
        return []
    unit = " point(s)" if metric_info(study.spec.metric.name).scale != 1.0 else ""
    short = tested[tested["seeds_needed"] > tested["n_pairs"]]
    if not len(short):
        return [
            f"Every comparison tested could detect {effect:g}{unit} (`metric.effect`, the "
            "smallest difference that matters) with 80 % power at the seeds it has.",
            "",
        ]
    lines = [
        f"To detect {effect:g}{unit} (`metric.effect`) with 80 % power at the corrected level, "
        "with the seed spread seen here (an estimate itself):",
        "",
    ]
    for _, row in short.iterrows():
        need = row["seeds_needed"]
        text = "more than 10,000 seeds" if math.isinf(need) else f"about {int(need)} seeds"
        lines.append(f"- {md_code(row['cell'])}: {text} (has {int(row['n_pairs'])})")
    return [*lines, ""]


_STATS_NOTE = (
    "Mean ± std over seeds; Δ is the mean paired (by seed) difference from the baseline with its "
    "paired 95% t-interval; MDE is the smallest true difference the paired t-test would detect "
    "with 80 % power at the Holm-corrected level, from the seed spread seen; p (Holm) is the "
    "paired t-test after Holm's correction over the compared cells. Differences and MDE are in "
    "the metric's points. The same table for LaTeX is in `table.tex`; `summary.csv` adds d_z "
    "(mean difference / sd of the differences: not Cohen's d of two groups) beside Cohen's d_av, "
    "the Wilcoxon signed-rank test (from 6 pairs, where it can reach p < 0.05) and a bootstrap "
    "interval (from 10 pairs)."
)


def _report_markdown(
    study: Study,
    records: Sequence[TrialRecord],
    comparison: Comparison,
    part: Part,
    trials: pd.DataFrame,
    summary: pd.DataFrame,
    files: list[Path],
    folder: Path,
    made_by: Provenance,
) -> str:
    spec = study.spec
    metric = spec.metric.name
    lines = [
        f"# {md_text(spec.name)}",
        "",
        md_block(spec.description.strip()) or "(no description)",
        "",
        *_run_facts(study, records, trials),
        "",
    ]
    compared = summary[summary["cell"].isin(comparison.compared)]
    if len(compared):
        lines += _health_section(summary, trials, comparison, metric)
    forest = [f for f in files if f.name == "diff_vs_baseline.png"]
    if forest:
        against = md_text(comparison.against or "the baseline")
        lines += [
            f"## Difference from {against}",
            "",
            f"![diff_vs_baseline]({_link(forest[0], folder)})",
            "",
            f"Each dot is a cell's mean paired difference from {against}, its bar the paired "
            "95% t-interval; the grey band is ± the MDE: true differences inside it this study "
            "would usually miss.",
            "",
        ]
    lines += part.sections
    lines += _sequential_section(compared, comparison, study)
    if len(compared):
        lines += ["## Verdicts", ""]
        for _, row in compared.iterrows():
            if row["cell"] != comparison.baseline:
                lines.append(f"- {verdict_sentence(_as_text(row.to_dict()), metric)}")
        lines += [
            "",
            *_seeds_advice(compared, study),
            "## Ablation table",
            "",
            _STATS_NOTE,
            "",
            markdown_table(
                compared,
                metric=metric,
                keys=study.keys,
                baseline=comparison.baseline,
                goal=spec.metric.goal,
            ),
            "",
        ]
    lines += _test_section(compared, metric, comparison.baseline, comparison.against or None)
    lines += [*_two_way_section(study, trials), "## Plots", ""]
    lines += [
        f"![{md_text(f.stem)}]({_link(f, folder)})"
        for f in files
        if f.suffix == ".png" and f not in forest
    ]
    lines += ["", *_provenance.markdown(made_by)]
    lines += [
        "## Trials",
        "",
        markdown_rows(trials, ["number", "state", "cell", "seed", metric, "duration_s", "error"]),
    ]
    return "\n".join(lines) + "\n"


def _as_text(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row whose names (the cell, what it is compared with, the verdict that may
    name it) are Markdown text, for a sentence of report.md."""
    names = {
        k: md_text(row[k]) for k in ("cell", "reference", "verdict") if isinstance(row.get(k), str)
    }
    return {**row, **names}


def _link(path: Path, folder: Path) -> str:
    """A file of the report as a link target relative to report.md (`%`-encoded: a name
    with a space or a parenthesis would end a Markdown link)."""
    return quote(path.relative_to(folder).as_posix())
