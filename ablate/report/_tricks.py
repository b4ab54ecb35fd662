"""A tricks design's own part of the report: the ablation table as a paper prints it (a ✓
column per trick), and for a factorial design its main effects and two-way interactions.

Factorial effects are estimated per seed, a seed being a block with every cell trained on it,
then averaged over seeds with a Student-t interval (Box, Hunter & Hunter, Statistics for
Experimenters, ch. 5): the main effect of a trick is the mean of the cells that apply it minus
the mean of those that do not; the interaction of two is half the difference between one's
effect with the other applied and without it. Seeds missing any cell are left out of the
effects (and counted in n).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ablate.design import Comparison, TricksDesign
from ablate.formats import Units, p_value
from ablate.report._files import write_text
from ablate.report._paired import holm, level_stats, mean_difference, paired_differences
from ablate.report._part import Part
from ablate.report._seeds import empty_series, seed_values
from ablate.report._summary import Summary
from ablate.report._text import md_code, md_text
from ablate.study_file import Study

EFFECT_COLUMNS = ("effect", "kind", "estimate", "ci_low", "ci_high", "n", "p_value", "p_holm")


def factorial_effects(
    trials: pd.DataFrame,
    *,
    metric: str,
    members: Mapping[str, frozenset[str]],
    tricks: Sequence[str],
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Main effects and two-way interactions of `tricks`, one row each, in the metric's raw
    unit: estimate, Student-t interval over seeds, p of the one-sample t-test, and Holm's
    correction over every effect in the table."""
    values = seed_values(trials, metric)
    cells = list(members)
    table = pd.DataFrame({c: values.get(c, empty_series()) for c in cells}).dropna()
    y = table.to_numpy(dtype=float)  # seeds × cells
    sign = {t: np.array([1.0 if t in members[c] else -1.0 for c in cells]) for t in tricks}
    half = len(cells) / 2
    contrasts: list[tuple[str, str, np.ndarray]] = [(t, "main effect", sign[t]) for t in tricks]
    contrasts += [
        (f"{a} × {b}", "interaction", sign[a] * sign[b])
        for a, b in itertools.combinations(tricks, 2)
    ]
    rows = []
    for name, kind, weights in contrasts:
        # ±1 weights over 2^k cells: the mean of the + cells minus that of the − cells; for
        # the product of two tricks' signs that is the interaction as defined above
        per_seed = y @ weights / half
        rows.append({"effect": name, "kind": kind, **mean_difference(per_seed, confidence)})
    frame = pd.DataFrame(rows, columns=[c for c in EFFECT_COLUMNS if c != "p_holm"])
    frame["p_holm"] = holm(frame["p_value"].to_numpy(dtype=float)) if len(frame) else []
    return frame


def tricks_part(
    study: Study, comparison: Comparison, trials: pd.DataFrame, summary: Summary, out: Path
) -> Part:
    design = getattr(study.design, "inner", study.design)  # adaptive seeds wrap it
    assert isinstance(design, TricksDesign)
    metric = study.spec.metric.name
    tricks = list(design.patches)
    lines = [f"## Ablation table ({design.design.replace('_', '-')})", ""]
    lines += [_legend(design), ""]
    lines += _paper_table(design, trials, summary, metric)
    files: list[Path] = []
    if design.design == "factorial" and len(trials):
        effects = factorial_effects(trials, metric=metric, members=design.members, tricks=tricks)
        path = out / "effects.csv"
        write_text(path, effects.to_csv(index=False))
        files.append(path)
        lines += _effects_section(effects, metric)
        if any(row.checks.health for row in summary):
            lines += [
                "Some cells failed a health check (see Health): effects computed from them "
                "share their problem and are not evidence on their own.",
                "",
            ]
    return Part(files, lines)


def _legend(design: TricksDesign) -> str:
    what = "; ".join(
        f"**{md_text(t)}** = " + ", ".join(md_code(f"{k}: {v}") for k, v in patch.items())
        for t, patch in design.patches.items()
    )
    return f"Tricks: {what}. Each row is compared with {md_text(design.against)} (paired by seed)."


def _paper_table(
    design: TricksDesign, trials: pd.DataFrame, summary: Summary, metric: str
) -> list[str]:
    """One row per cell: ✓ per trick applied, the metric's mean ± std (n), the difference
    from what it is compared with and, for a cumulative design, the running total."""
    units = Units.of(metric)
    tricks = list(design.patches)
    unit = units.name
    name = metric.split("/")[-1]
    cumulative = design.design == "cumulative"
    step = "step gain" if cumulative else f"Δ vs {md_text(design.baseline)}"
    head = [*map(md_text, tricks), f"{name} (mean ± std, n)", f"{step} [95% CI], {unit}"]
    if cumulative:
        head.append(f"running total vs {md_text(design.baseline)} [95% CI], {unit}")
    head.append("verdict")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    values = seed_values(trials, metric) if len(trials) else {}
    base = values.get(design.baseline, empty_series())
    for cell in design.cells:
        row = summary.get(cell.name)
        marks = ["✓" if t in design.members[cell.name] else "" for t in tricks]
        if row is None or not row.level.n:
            level, diff, verdict = "–", "–", "missing"
        else:
            std = "" if math.isnan(row.level.std) else f" ± {units.fixed(row.level.std)}"
            level = f"{units.fixed(row.level.mean)}{std} ({row.level.n})"
            paired = row.paired
            diff = units.interval(paired.diff, paired.diff_ci_low, paired.diff_ci_high)
            verdict = md_text(row.verdict.text)
        cells = [*marks, level, diff]
        if cumulative:
            own = values.get(cell.name, empty_series())
            total = level_stats(paired_differences(own, base), 0.95)
            running = units.interval(total.mean, total.ci_low, total.ci_high)
            cells.append("–" if cell.name == design.baseline else running)
        cells.append(verdict)
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _effects_section(effects: pd.DataFrame, metric: str) -> list[str]:
    units = Units.of(metric)
    unit = units.name
    n = int(effects["n"].max()) if len(effects) else 0
    lines = [
        "## Factorial effects",
        "",
        f"Main effects and two-way interactions in {unit}, estimated within each of the {n} "
        "seeds that trained every cell, with the Student-t 95% interval over those seeds and "
        "p after Holm's correction over every effect below (`effects.csv`). A main effect is "
        "the mean of the cells with the trick minus the mean of those without; an interaction "
        "is half the change of one trick's effect when the other is added (positive: they help "
        "each other).",
        "",
        "| effect | estimate [95% CI] | p (Holm) |",
        "| --- | --- | --- |",
    ]
    for _, row in effects.iterrows():
        interval = units.interval(row["estimate"], row["ci_low"], row["ci_high"])
        lines.append(f"| {md_text(row['effect'])} | {interval} | {p_value(row['p_holm'])} |")
    return [*lines, ""]
