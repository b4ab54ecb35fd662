"""Statistics across seeds: per-cell summaries and paired comparisons with the baseline cell.

Every cell of a study is trained once per seed, and the seed fixes the data order and the
initialisation, so two cells trained with the same seed share much of their noise. Comparisons
with the baseline are therefore *paired by seed*: the paired t-test, the Wilcoxon signed-rank test,
Cohen's d_z and a bootstrap interval all work on the per-seed differences cell − baseline. Holm's
step-down procedure corrects the p-values for the number of cells compared.

For two-key grids, `two_way` tabulates the metric and `interaction_test` runs a two-way ANOVA
with interaction (seed as a block) to ask whether the effect of one key depends on the other.

The trials table's `outcome` column holds each trial's `Outcome`, and only COMPLETE trials enter
the statistics. A seed that was retried (FAILED, then COMPLETE) counts once, by its best
outcome; DIVERGED seeds are counted in a divergence rate, not silently dropped.
"""

from ablate.names import is_fraction_metric
from ablate.report._anova import ANOVA_TERMS, interaction_test, two_way
from ablate.report._paired import Level, Paired, holm
from ablate.report._summary import (
    SUMMARY_STATS,
    Summary,
    SummaryRow,
    build_summary,
    per_class_diff,
    summarize,
)

__all__ = [
    "ANOVA_TERMS",
    "SUMMARY_STATS",
    "Level",
    "Paired",
    "Summary",
    "SummaryRow",
    "build_summary",
    "holm",
    "interaction_test",
    "is_fraction_metric",
    "per_class_diff",
    "summarize",
    "two_way",
]
