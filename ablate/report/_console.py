"""The summary `ablate run` and `ablate report` print: the cells the design shows (the rest
are in the files), in the metric's display unit, and a line when a health check failed."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ablate.formats import Units, p_value

if TYPE_CHECKING:
    from ablate.report._build import Report
    from ablate.study_file import Study


def print_summary(console: Console, report: Report, study: Study) -> None:
    """The report's summary rows as a table on `console`. A cell's name and verdict are text:
    "[x]" in them is no markup."""
    metric = study.spec.metric.name
    units = Units.of(metric)
    unit = "points" if units.in_points else (units.unit or "raw")
    table = Table(
        "cell",
        "n",
        f"{metric} ({units.unit or 'raw'})",
        "95% CI of mean",
        f"Δ vs baseline ({unit}) [paired 95% CI]",
        "MDE",
        "p (Holm)",
        "verdict",
        title=f"{study.spec.name}: {metric} over seeds",
    )
    rows = report.rows.only(study.design.summary_rows(report.comparison))
    for row in rows:
        level, paired = row.level, row.paired
        diff = units.fixed(paired.diff, signed=True)
        if not math.isnan(paired.diff_ci_low):  # one paired seed has no interval
            bounds = (
                units.fixed(x, signed=True) for x in (paired.diff_ci_low, paired.diff_ci_high)
            )
            diff += " [{}, {}]".format(*bounds)
        table.add_row(
            escape(row.cell),
            str(level.n),
            units.fixed(level.mean),
            f"{units.fixed(level.ci_low)} … {units.fixed(level.ci_high)}",
            diff,
            units.fixed(paired.mde),
            p_value(paired.p_holm, tight=True),
            escape(row.verdict.text),
        )
    console.print(table)
    if len(rows) < len(report.rows):
        console.print(f"… {len(report.rows) - len(rows)} more rows in summary.csv")
    problems = sum(1 for row in rows if row.checks.health)
    if problems:
        console.print(f"[yellow]health: {problems} cell(s) failed a check (report.md, Health)")
    print_claims(console, report, units)


def print_claims(console: Console, report: Report, units: Units) -> None:
    """Each declared claim's verdict, one line each (claims.csv has the numbers), or that the
    comparisons above are exploratory when none was declared."""
    if not report.claims:
        console.print("no claims declared: the comparisons above are exploratory")
        return
    console.print(f"claims (declared before the run; {len(report.claims)}, see claims.csv):")
    for c in report.claims:
        said = units.interval(c.diff, c.ci_low, c.ci_high)
        adjusted = f", p (Holm) {p_value(c.p_adj, tight=True)}" if not math.isnan(c.p_adj) else ""
        console.print(
            f"  {c.claim.index}. {escape(c.claim.sentence)}: Δ {said} {units.name}{adjusted}"
            f" — [bold]{escape(c.text)}[/bold]",
            highlight=False,
        )
