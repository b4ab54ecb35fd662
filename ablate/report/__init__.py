"""The report: trials table, statistics over seeds, plots and report.md."""

from ablate.report._build import Report, history_table, trials_table, write_report
from ablate.report._publish import publish
from ablate.report.stats import per_class_diff, summarize, verdict_sentence

__all__ = [
    "Report",
    "history_table",
    "per_class_diff",
    "publish",
    "summarize",
    "trials_table",
    "verdict_sentence",
    "write_report",
]
