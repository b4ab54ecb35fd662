"""Paper-ready tables of a study's summary: LaTeX (booktabs) and Markdown, with the same content.

One row per cell: the cell (the baseline marked), its swept values, the number of completed
seeds, mean ± std of the metric, the mean paired difference from the baseline with its 95%
Student-t interval, the minimal detectable effect (MDE, 80 % power at the corrected level) and
the Holm-corrected p-value of the paired t-test. Bold marks a significant best, never a mere
highest number (`bold_means`): the best mean is bold only where its comparison says it is best,
a cell's verdict being "better" than the baseline, or, for the baseline, every other cell's
"worse"; no mean is bold otherwise (nor when all tie).
Fraction metrics (IoU, accuracy) are shown ×100 in points with 2 decimals, as the rest of the
report does; others in their own units with 3. A value that does not exist (a cell with no
completed seed, the baseline's own difference, a swept key a cell leaves unset) is a dash.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ablate.formats import Units, p_value
from ablate.report._summary import SummaryRow
from ablate.report._text import md_text, one_line
from ablate.report._verdict import Kind

Goal = Literal["maximize", "minimize"]
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    # in braces: a row that starts with "[" would be read as the optional argument of the
    # previous row's "\\"
    "[": "{[}",
    "]": "{]}",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


def escape_latex(text: str) -> str:
    """`text` on one line (a blank line in a table is an error) with LaTeX's special
    characters escaped, for use in text mode."""
    return _LATEX_PATTERN.sub(lambda m: _LATEX_SPECIAL[m.group()], one_line(text))


@dataclass(frozen=True)
class _Syntax:
    """How one output language writes the shared content."""

    text: Callable[[str], str]  # escapes plain text
    number: Callable[[str, bool], str]  # wraps a formatted number, bold or not
    missing: str
    pm: str
    headers: tuple[str, str, str, str, str]  # n, mean header suffix, difference, MDE, p-value


_LATEX = _Syntax(
    text=escape_latex,
    number=lambda s, bold: f"$\\mathbf{{{s}}}$" if bold else f"${s}$",
    missing="--",  # typesets as an en dash; "–" itself needs a UTF-8 aware setup
    pm=r" \pm ",
    headers=("$n$", r" (\%)", r"$\Delta$ [95\% CI]", "MDE", r"$p_{\mathrm{Holm}}$"),
)
_MARKDOWN = _Syntax(
    text=md_text,
    number=lambda s, bold: f"**{s}**" if bold else s,
    missing="–",
    pm=" ± ",
    headers=("n", " (%)", "Δ [95% CI]", "MDE", "p (Holm)"),
)


def ablation_table(
    summary: Iterable[SummaryRow],
    *,
    metric: str,
    keys: Sequence[str],
    baseline: str,
    caption: str | None = None,
    goal: Goal | None = None,
) -> str:
    """A LaTeX `table` (booktabs rules, needs `\\usepackage{booktabs}`) of the summary.

    `caption` is inserted as LaTeX, unescaped, so it may hold markup; None gives one that says
    what the columns are. `goal` decides which mean is best (bold where its comparison shows
    it significantly best: `bold_means`); None reads it from the metric's name: lower is
    better for a loss, higher for anything else.
    """
    header, rows = _content(summary, metric, keys, baseline, goal, _LATEX)
    spec = "l" * (1 + len(keys)) + "r" * 5
    caption = _default_caption(metric) if caption is None else caption
    lines = [r"\begin{table}[tbp]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{caption}}}")
    lines += [
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def markdown_table(
    summary: Iterable[SummaryRow],
    *,
    metric: str,
    keys: Sequence[str],
    baseline: str,
    goal: Goal | None = None,
) -> str:
    """The same table as `ablation_table`, in Markdown (numbers right-aligned), for a README."""
    header, rows = _content(summary, metric, keys, baseline, goal, _MARKDOWN)
    align = ["---"] * (1 + len(keys)) + ["---:"] * 5
    lines = [_markdown_row(header), _markdown_row(align), *map(_markdown_row, rows)]
    return "\n".join(lines) + "\n"


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _content(
    summary: Iterable[SummaryRow],
    metric: str,
    keys: Sequence[str],
    baseline: str,
    goal: Goal | None,
    syntax: _Syntax,
) -> tuple[list[str], list[list[str]]]:
    """The header and the body rows, each cell already written in `syntax`."""
    rows = list(summary)
    if baseline not in {row.cell for row in rows}:
        raise ValueError(f"baseline cell {baseline!r} is not in the summary")
    units = Units.of(metric)
    digits = units.digits
    goal = goal or ("minimize" if "loss" in metric.lower() else "maximize")

    means = [round(row.level.mean * units.scale, digits) for row in rows]
    bold = bold_means(rows, means, baseline, goal)

    n_header, unit, diff_header, mde_header, p_header = syntax.headers
    name = syntax.text(metric.removeprefix("val/")) + (unit if units.in_points else "")
    header = [
        syntax.text("cell"),
        *map(syntax.text, keys),
        n_header,
        name,
        diff_header,
        mde_header,
        p_header,
    ]
    body = []
    for row, strong in zip(rows, bold, strict=True):
        cell = row.cell + (" (baseline)" if row.cell == baseline else "")
        values = [_value_text(row.values.get(key), syntax) for key in keys]
        spread = _mean_std(row, units, syntax, bold=strong)
        diff = syntax.missing if row.cell == baseline else _difference(row, units, syntax)
        mde = _number(row.paired.mde, units.fixed(row.paired.mde, digits), syntax)
        p_holm = _number(row.paired.p_holm, p_value(row.paired.p_holm, tight=True), syntax)
        body.append([syntax.text(cell), *values, str(row.level.n), spread, diff, mde, p_holm])
    return header, body


def bold_means(
    rows: Sequence[SummaryRow], means: Sequence[float], baseline: str, goal: Goal
) -> list[bool]:
    """Per row, whether its mean (as shown, rounded) is bold: it is the best and its
    comparison says so. A cell is bold when its verdict is a significant difference from the
    baseline (better or worse: the Holm-corrected test, or adaptive seeds' sequential test)
    in the favourable direction; the baseline when every other cell with a mean is
    significantly worse than it. A comparison with another cell than the baseline (a
    cumulative design's row above) says nothing about the best, and a table where every
    mean ties has no best: no bold there."""
    finite = [m for m in means if not math.isnan(m)]
    if len(set(finite)) < 2:  # no mean, one, or all tie: none is best
        return [False] * len(rows)
    best = (max if goal == "maximize" else min)(finite)

    def favours(row: SummaryRow) -> bool | None:
        """Whether the cell's significant difference from the baseline favours it (None: no
        significant difference from the baseline)."""
        if row.reference not in ("", baseline) or row.verdict.kind not in _SIGNIFICANT:
            return None
        return row.paired.diff > 0 if goal == "maximize" else row.paired.diff < 0

    others = [
        favours(row)
        for row, mean in zip(rows, means, strict=True)
        if row.cell != baseline and not math.isnan(mean)
    ]
    return [
        mean == best
        and (all(f is False for f in others) if row.cell == baseline else favours(row) is True)
        for row, mean in zip(rows, means, strict=True)
    ]


_SIGNIFICANT = (Kind.BETTER, Kind.WORSE)  # verdicts that found a difference


def _number(value: float, shown: str, syntax: _Syntax) -> str:
    """`shown` (the formatted `value`) in `syntax`, or its dash where `value` is NaN."""
    return syntax.missing if math.isnan(value) else syntax.number(shown, False)


def _value_text(value: Any, syntax: _Syntax) -> str:
    """A swept value as the study file would write it; unset or null is a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return syntax.missing
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, float):
        return syntax.text(f"{value:g}")
    return syntax.text(str(value))


def _mean_std(row: SummaryRow, units: Units, syntax: _Syntax, *, bold: bool) -> str:
    if math.isnan(row.level.mean):
        return syntax.missing
    text = units.fixed(row.level.mean, units.digits)
    if not math.isnan(row.level.std):  # one seed has no spread
        text += f"{syntax.pm}{units.fixed(row.level.std, units.digits)}"
    return syntax.number(text, bold)


def _difference(row: SummaryRow, units: Units, syntax: _Syntax) -> str:
    paired = row.paired
    if math.isnan(paired.diff):
        return syntax.missing
    text = syntax.number(units.fixed(paired.diff, units.digits, signed=True), False)
    if not (math.isnan(paired.diff_ci_low) or math.isnan(paired.diff_ci_high)):
        # Each number on its own: in LaTeX math mode the space before "[" would vanish.
        bounds = (
            syntax.number(units.fixed(x, units.digits, signed=True), False)
            for x in (paired.diff_ci_low, paired.diff_ci_high)
        )
        text += " [{}, {}]".format(*bounds)
    return text


def _default_caption(metric: str) -> str:
    name = escape_latex(metric)
    unit = " in points ($\\times 100$)" if Units.of(metric).in_points else ""
    return (
        f"{name}{unit}: mean $\\pm$ std over $n$ seeds. $\\Delta$: mean paired (by seed) "
        r"difference from the baseline with its 95\% CI; MDE: the difference the paired test "
        r"detects with 80\% power at the Holm-corrected level; $p_{\mathrm{Holm}}$: paired "
        r"$t$-test, Holm-corrected over the compared cells. Bold: the best mean, only where "
        r"it is significantly best (a cell significantly better than the baseline, "
        r"$p_{\mathrm{Holm}} < 0.05$, or the baseline when every other cell is significantly "
        r"worse); -- : no value."
    )
