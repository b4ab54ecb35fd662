"""The report: trials table, statistics over seeds, plots and report.md.

`write_report` builds the typed summary rows once (`Summary`, `SummaryRow`, each with its
`Verdict`); report.md and .html, table.tex, the console (`print_summary`) and MLflow
(`publish`, `cell_aggregates`) are renderings of them."""

from ablate.report._build import Report, write_report
from ablate.report._console import print_summary
from ablate.report._health import CellHealth
from ablate.report._markdown import verdict_sentence
from ablate.report._paired import Level, Paired
from ablate.report._publish import cell_aggregates, publish
from ablate.report._summary import Summary, SummaryRow, build_summary
from ablate.report._tables import history_table, trials_table
from ablate.report._verdict import Kind, Verdict
from ablate.report.stats import per_class_diff, summarize

__all__ = [
    "CellHealth",
    "Kind",
    "Level",
    "Paired",
    "Report",
    "Summary",
    "SummaryRow",
    "Verdict",
    "build_summary",
    "cell_aggregates",
    "history_table",
    "per_class_diff",
    "print_summary",
    "publish",
    "summarize",
    "trials_table",
    "verdict_sentence",
    "write_report",
]
