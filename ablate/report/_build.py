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

import pandas as pd

from ablate.design import Comparison
from ablate.report._claims import (
    ClaimResult,
    claims_frame,
    claims_section,
    seed_plan,
    tested_claims,
)
from ablate.report._figure import FigureData
from ablate.report._files import cannot_write, write_text
from ablate.report._health import trial_health
from ablate.report._markdown import report_markdown
from ablate.report._part import Part
from ablate.report._provenance import Provenance, provenance
from ablate.report._search import search_part
from ablate.report._seeds import complete
from ablate.report._summary import Summary, build_summary, per_class_diff
from ablate.report._tables import (
    TRIAL_COLUMNS,
    aux_weight_series,
    gradient_table,
    history_table,
    trials_table,
)
from ablate.report._text import html_page
from ablate.report._tricks import tricks_part
from ablate.report.latex import ablation_table
from ablate.report.plots import REPORT_FIGURES
from ablate.study import Queue, TrialRecord, planned_before, planned_seeds
from ablate.study_file import Study

ALPHA = 0.05  # the claims' family-wise level (the cells' summary: its 95 % confidence)

# a design's own part of the report, by `Design.kind` (designs without one have none)
PARTS: dict[str, Callable[[Study, Comparison, pd.DataFrame, Summary, Path], Part]] = {
    "search": search_part,
    "tricks": tricks_part,
}


@dataclass(frozen=True)
class Report:
    """A written report: its folder, its summary rows (what the console and MLflow read), the
    tables as trials.csv and summary.csv hold them, every file written, the seeds each cell
    is to train on (a search's cells differ), the comparison and the provenance."""

    folder: Path
    rows: Summary
    trials: pd.DataFrame
    summary: pd.DataFrame
    files: list[Path]
    planned: dict[str, int]
    comparison: Comparison
    provenance: Provenance
    claims: tuple[ClaimResult, ...] = ()


def _figures(
    study: Study,
    comparison: Comparison,
    trials: pd.DataFrame,
    summary: Summary,
    records: Sequence[TrialRecord],
    per_class: pd.DataFrame,
    out: Path,
) -> list[Path]:
    """The common figures (`plots.REPORT_FIGURES`), over the compared cells (curves: the
    cells the summary shows)."""
    shown = study.design.summary_rows(comparison)
    history = history_table(records)
    history = history[history["cell"].isin(shown)] if len(history) else history
    gradients = gradient_table(records)
    trials = trials[trials["cell"].isin(comparison.compared)]
    data = FigureData(
        out=out,
        metric=study.spec.metric.name,
        baseline=comparison.baseline,
        against=comparison.against or None,
        factors=list(study.design.factors),
        axis=study.design.axis,
        trials=trials,
        complete=trials[complete(trials)],
        summary=summary.only(comparison.compared),
        history=history,
        gradients=gradients[gradients["cell"].isin(shown)],
        per_class=per_class,
        aux=aux_weight_series(study, comparison.compared),
    )
    return [path for figure in REPORT_FIGURES for path in figure(data)]


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
        trials = pd.DataFrame(columns=[*TRIAL_COLUMNS, *study.keys])
    if metric not in trials.columns:
        trials[metric] = math.nan
    comparison = study.design.comparison(records, queue.attrs)
    history = history_table(records)
    summary = build_summary(
        trials,
        comparison,
        metric=metric,
        goal=spec.metric.goal,
        keys=study.keys,
        history=history,
        effect=spec.metric.effect,
    )
    trials = trials.join(trial_health(trials, history, metric=metric, goal=spec.metric.goal))
    claims = tested_claims(
        study.claims,
        trials,
        summary,
        comparison,
        metric=metric,
        goal=spec.metric.goal,
        history=history,
        alpha=ALPHA,
    )
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
    files = part.files + _figures(study, comparison, trials, summary, records, per_class, plots)
    for stale in set(plots.iterdir()) - set(files):  # an earlier report's, not this one's
        if stale.is_file():
            stale.unlink()

    written = [folder / "trials.csv", folder / "summary.csv", folder / "provenance.json"]
    if claims:
        written.append(folder / "claims.csv")
        write_text(written[-1], claims_frame(claims, metric).to_csv(index=False))
    elif (folder / "claims.csv").exists():  # an earlier report's, from claims since removed
        (folder / "claims.csv").unlink()
    table = summary.frame()
    write_text(written[0], trials.drop(columns="outcome").to_csv(index=False))
    write_text(written[1], table.to_csv(index=False))
    write_text(
        written[2], json.dumps({**made_by.as_tags(), "recipe": made_by.recipe}, indent=2) + "\n"
    )
    if comparison.compared:
        written.append(folder / "table.tex")
        write_text(
            written[-1],
            ablation_table(
                summary.only(comparison.compared),
                metric=metric,
                keys=study.keys,
                baseline=comparison.baseline,
                goal=spec.metric.goal,
            ),
        )
    plan = seed_plan(spec.sweep.seeds, planned_before(queue), _stopped(comparison, claims))
    first = claims_section(claims, metric, ALPHA, plan)
    text = report_markdown(
        study, records, comparison, part, trials, summary, files, folder, made_by, first
    )
    write_text(folder / "report.md", text)
    write_text(folder / "report.html", html_page(spec.name, text, _CSS))
    written += [folder / "report.md", folder / "report.html"]
    return Report(
        folder,
        summary,
        trials.drop(columns="outcome"),
        table,
        [*written, *files],
        planned_seeds(study, queue),
        comparison,
        made_by,
        tuple(claims),
    )


def _stopped(comparison: Comparison, claims: Sequence[ClaimResult]) -> str:
    """Where the sequential tests of adaptive seeds stopped, in words ("" without any)."""
    if claims and any(c.status for c in claims):
        return "; ".join(f"claim {c.claim.index}: {c.sequential}" for c in claims if c.status)
    if not comparison.sequential:
        return ""
    return "; ".join(f"{cell}: {d.reason}" for cell, d in comparison.sequential.items())


_CSS = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
    "th{background:#f3f3f3}img{max-width:100%;margin:.5em 0}code{background:#f5f5f5}"
)
