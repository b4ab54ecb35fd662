"""report.md: what was run, the health checks, the comparisons' verdicts as sentences, the
ablation table, the held-out test split, a design's own part, the plots, provenance and the
trials. Rendered from the typed summary rows (`Summary`) and the records; text from the study
file or the trials passes through `_text` (as text, never markup), numbers through
`ablate.formats`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from ablate.design import Comparison
from ablate.formats import Units, p_said, significant
from ablate.report import _provenance
from ablate.report._anova import ANOVA_TERMS, interaction_test, two_way
from ablate.report._health import LATE_GAIN_POINTS, MIN_POINTS, never_learned
from ablate.report._part import Part, markdown_rows
from ablate.report._provenance import Provenance
from ablate.report._seeds import complete
from ablate.report._summary import Summary, SummaryRow
from ablate.report._text import md_block, md_code, md_text
from ablate.report._verdict import Kind
from ablate.report.latex import markdown_table
from ablate.study import TrialRecord
from ablate.study_file import Study

_STATS_NOTE = (
    "Mean ± std over seeds; Δ is the mean paired (by seed) difference from the baseline with its "
    "paired 95% t-interval; MDE is the smallest true difference the paired t-test would detect "
    "with 80 % power at the Holm-corrected level, from the seed spread seen (as uncertain as "
    "that spread: `summary.csv`'s mde_low and mde_high are its 95% interval, from the "
    "chi-square interval of the spread); p (Holm) is the "
    "paired t-test after Holm's correction over the compared cells. Differences and MDE are in "
    "the metric's points. The same table for LaTeX is in `table.tex`; `summary.csv` adds d_z "
    "(mean difference / sd of the differences: not Cohen's d of two groups) beside Cohen's d_av, "
    "the Wilcoxon signed-rank test (from 6 pairs, where it can reach p < 0.05) and a bootstrap "
    "interval (from 10 pairs). Bold marks a significant best: the best mean is bold only where "
    "its comparison is significant in its favour (a cell whose verdict is better than the "
    "baseline, or the baseline when every other cell's is worse); no mean is bold otherwise."
)


def report_markdown(
    study: Study,
    records: Sequence[TrialRecord],
    comparison: Comparison,
    part: Part,
    trials: pd.DataFrame,
    summary: Summary,
    files: list[Path],
    folder: Path,
    made_by: Provenance,
    first: Sequence[str] = (),
) -> str:
    """The whole of report.md; `first`: the lines that open it after what was run (the
    declared claims and their verdicts)."""
    spec = study.spec
    metric = spec.metric.name
    lines = [
        f"# {md_text(spec.name)}",
        "",
        md_block(spec.description.strip()) or "(no description)",
        "",
        *_run_facts(study, records, trials),
        "",
        *first,
    ]
    compared = summary.only(comparison.compared)
    if len(compared):
        lines += _health_section(compared, trials)
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
    lines += _sequential_section(compared, comparison, metric)
    if len(compared):
        lines += ["## Verdicts", ""]
        lines += [
            f"- {verdict_sentence(row, metric)}"
            for row in compared
            if row.cell != comparison.baseline
        ]
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
    lines += _test_section(compared, comparison.against or None)
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


def verdict_sentence(row: SummaryRow, metric: str, *, confidence: float = 0.95) -> str:
    """One plain sentence of Markdown for a summary row, e.g. "x: mIoU +1.42 points vs
    baseline (paired 95% t-interval +0.31 to +2.53 points, p_holm = 0.004, n = 3) — better."
    Names (the cell, what it is compared with, a verdict that names one) are Markdown text.

    Fraction metrics (IoU, accuracy) are shown ×100 as points, others in their own units.
    """
    units = Units.of(metric)
    name = metric.split("/")[-1]
    cell, verdict = md_text(row.cell), md_text(row.verdict.text)
    paired = row.paired
    if row.verdict.kind is Kind.BASELINE:
        mean = units.amount(row.level.mean, points="%")
        return f"{cell}: baseline, {name} = {mean} (n = {row.level.n})."
    if paired.n_pairs == 0:
        against = md_text(row.reference) if row.reference else "the baseline"
        return f"{cell}: no completed seed paired with {against} — {verdict}."
    against = md_text(row.reference) if row.reference else "baseline"
    diff = f"{name} {units.amount(paired.diff, signed=True)} vs {against}"
    if paired.n_pairs < 2:
        return f"{cell}: {diff} (one paired seed, no test possible) — {verdict}."
    low = units.amount(paired.diff_ci_low, signed=True, unit=False)
    high = units.amount(paired.diff_ci_high, signed=True)
    level = f"paired {confidence * 100:g}% t-interval {low} to {high}"
    p_holm = p_said(paired.p_holm, "p_holm")
    return f"{cell}: {diff} ({level}, {p_holm}, n = {paired.n_pairs}) — {verdict}."


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
    unit = " point(s)" if Units.of(spec.metric.name).in_points else ""
    return [
        f"- study file: {md_code(study.path)} (provenance at the end)",
        f"- design: {md_text(study.describe())}; baseline: {md_code(study.baseline or 'none')}",
        f"- metric: {md_code(spec.metric.name)} ({spec.metric.goal}){matters}"
        f"{unit if effect else ''}",
        f"- trials by state: {', '.join(f'{k} {v}' for k, v in sorted(states.items())) or 'none'}",
        f"- time: {wall / 60:.1f} min from the first trial's start to the last one's end; "
        f"{total_s / 60:.1f} min of training summed over trials",
    ]


def _health_section(compared: Summary, trials: pd.DataFrame) -> list[str]:
    """Above everything else: whether the models learned and settled, so no reader takes a
    comparison of failures for a finding. A check that could not run (convergence with
    fewer than `MIN_POINTS` evaluations) reads "not checked", never "passed"."""
    cells = [row.cell for row in compared]
    done = trials[complete(trials) & trials["cell"].isin(cells)]
    lines = ["## Health", ""]
    learned_nothing = bool(len(done)) and sum(row.checks.collapsed for row in compared) == len(done)
    if learned_nothing:
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
    for row in compared:
        problems = [row.checks.health] if row.checks.health else []
        if row.diverged:
            problems.append(f"{row.diverged} seed(s) diverged")
        if problems:
            lines.append(f"- {md_code(row.cell)}: {md_text('; '.join(problems))}")
    unchecked = [row.cell for row in compared if row.level.n and row.checks.converged is None]
    curves = (
        f"mean curve gained at most {LATE_GAIN_POINTS:g} point(s) (1 % for raw metrics) over "
        "the last quarter of training"
    )
    if len(lines) == 2 and not unchecked:
        lines.append(
            "Every check passed: no trial predicts a single class, every class was learned "
            f"somewhere, every cell's {curves}, and nothing diverged."
        )
        return [*lines, ""]
    if len(lines) == 2:
        others = len(unchecked) < sum(1 for row in compared if row.level.n)
        settled = f"every other cell's {curves}, " if others else ""
        lines.append(
            "These checks passed: no trial predicts a single class, every class was learned "
            f"somewhere, {settled}and nothing diverged. {_not_checked(unchecked, compared)}"
        )
        return [*lines, ""]
    if not learned_nothing:
        lines.insert(
            2,
            "Checks that failed (a cell with a collapsed or diverged seed, or an unsettled "
            "comparison where no difference was found, is *inconclusive*):",
        )
        lines.insert(3, "")
    if any(r.checks.converged is False or r.checks.diff_converged is False for r in compared):
        lines += [
            "",
            "A curve still rising unsettles a comparison only where the mean paired "
            "difference between the cell's curve and its reference's also moved, either way, "
            f"by more than {LATE_GAIN_POINTS:g} point(s) (1 % for raw metrics) over the last "
            "quarter (or where that difference curve cannot be formed): two curves rising "
            "together leave their difference where it is.",
        ]
    if unchecked:
        lines += ["", _not_checked(unchecked, compared)]
    return [*lines, ""]


def _not_checked(unchecked: Sequence[str], compared: Summary) -> str:
    """Convergence, where it could not be judged for the cells `unchecked`."""
    which = len(unchecked) < sum(1 for row in compared if row.level.n)
    cells = f" for {', '.join(md_code(c) for c in unchecked)}" if which else ""
    return (
        f"Convergence: not checked{cells} (judging whether a curve had settled needs at least "
        f"{MIN_POINTS} evaluations of the metric)."
    )


def _sequential_section(compared: Summary, comparison: Comparison, metric: str) -> list[str]:
    """Adaptive seeds: per comparison, the seeds it took, its repeated confidence interval at
    that look and why it stopped."""
    if not comparison.sequential or "stopped" not in compared.optional:
        return []
    units = Units.of(metric)
    lines = [
        "## Adaptive seeds",
        "",
        "Seeds were added in rounds while a comparison was undecided. Each comparison is a "
        "group-sequential paired t-test whose error budget (α = 0.05 split over the "
        "comparisons) is spent over its looks by an O'Brien–Fleming-type function (Lan & "
        "DeMets 1983), with exact boundaries for the joint distribution of the looks and each "
        "look's t-test at its boundary's nominal level, calibrated by simulation so the "
        "t-tests hold α for this plan; with `metric.effect` it also stops "
        "when an equivalence test (TOST) shows no difference that large. The verdicts come "
        "from this test, and the repeated confidence interval beside each keeps its coverage "
        "however the looks went; the mean it is centred on is not adjusted for stopping (an "
        "early stop overstates it), and the p-values and intervals of the table below are "
        "fixed-n values, not adjusted for the stopping.",
        "",
        f"| cell | seeds used | Δ [repeated CI] ({units.name}) | why it stopped |",
        "| --- | --- | --- | --- |",
    ]
    for row in compared:
        decision = comparison.sequential.get(row.cell)
        if row.cell != comparison.baseline and row.stopped and decision is not None:
            cell, why = md_text(row.cell), md_text(row.stopped)
            shown = units.interval(decision.diff, decision.ci_low, decision.ci_high)
            lines.append(f"| {cell} | {int(row.seeds_used)} | {shown} | {why} |")
    return [*lines, ""]


def _seeds_advice(compared: Summary, study: Study) -> list[str]:
    """With `metric.effect`: how many seeds each comparison needs to detect it."""
    effect = study.spec.metric.effect
    # only healthy comparisons: for the others more seeds are not what is missing
    tested = [row for row in compared if row.verdict.kind.tested]
    if not effect or not tested:
        return []
    unit = " point(s)" if Units.of(study.spec.metric.name).in_points else ""
    short = [row for row in tested if row.paired.seeds_needed > row.paired.n_pairs]
    if not short:
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
    for row in short:
        need = row.paired.seeds_needed
        text = "more than 10,000 seeds" if math.isinf(need) else f"about {int(need)} seeds"
        lines.append(f"- {md_code(row.cell)}: {text} (has {row.paired.n_pairs})")
    return [*lines, ""]


def _test_section(compared: Summary, against: str | None = None) -> list[str]:
    """The compared cells on the held-out test split, where the trials measured one: each
    one's mean and its mean paired difference with its paired 95% t-interval."""
    if "test_mean" not in compared.optional or all(math.isnan(r.test_mean) for r in compared):
        return []
    metric = compared.metric
    units = Units.of(metric)
    test = "test/" + metric.removeprefix("val/")
    lines = [
        "## Held-out test split",
        "",
        f"Mean {test} over seeds ({units.unit or 'as measured'}), measured once on each trial's "
        f"final model, and its mean paired difference from {md_text(against or 'the baseline')} "
        "with its paired 95% t-interval. The verdicts above "
        "use validation; this is where they are checked on images no choice was made on.",
        "",
        f"| cell | n | {test} | Δ vs {md_text(against or compared.baseline)} [95% CI] |",
        "| --- | --- | --- | --- |",
    ]
    for row in compared:
        diff = units.fixed(row.test_diff, signed=True)
        if not math.isnan(row.test_diff) and not math.isnan(row.test_diff_ci_low):
            bounds = (
                units.fixed(x, signed=True) for x in (row.test_diff_ci_low, row.test_diff_ci_high)
            )
            diff += " [{}, {}]".format(*bounds)
        lines.append(
            f"| {md_text(row.cell)} | {row.level.n} | {units.fixed(row.test_mean)} | {diff} |"
        )
    return [*lines, ""]


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

    def shown(term: str) -> str:
        f, p = (significant(test[f"{s}_{term}"], 3, missing="nan") for s in ("F", "p"))
        return f"{term}: F = {f}, p = {p}"

    lines += [
        "Two-way ANOVA (seed as a block): "
        + "; ".join(shown(term) for term in ANOVA_TERMS)
        + (f". {md_text(test['note'])}" if test.get("note") else ""),
        "",
    ]
    return lines


def _link(path: Path, folder: Path) -> str:
    """A file of the report as a link target relative to report.md (`%`-encoded: a name
    with a space or a parenthesis would end a Markdown link)."""
    return quote(path.relative_to(folder).as_posix())
