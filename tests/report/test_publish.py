"""What the report gives MLflow: every aggregate a cell run gets is a column of summary.csv."""

from ablate.report import SummaryRow
from ablate.report._publish import aggregate_names
from ablate.report.stats import SUMMARY_STATS


def test_every_aggregate_a_cell_run_gets_is_a_summary_column() -> None:
    columns = aggregate_names("val/mIoU")
    assert set(columns) <= set(SUMMARY_STATS) <= set(SummaryRow("x").columns())
    assert columns["mean"] == "val/mIoU/mean_pct" and columns["p_holm"] == "val/mIoU/p_holm"
