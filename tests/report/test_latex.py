"""Paper tables: the exact LaTeX and Markdown for a small summary, escaping and missing values."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from ablate.report import Level, Paired, SummaryRow
from ablate.report._text import md_text
from ablate.report._verdict import Kind, Verdict
from ablate.report.latex import ablation_table, escape_latex, markdown_table

KEY = "loss.aux.weight"
NAN = np.nan


def row(
    cell: str,
    weight: Any,
    n: int,
    mean: float,
    std: float,
    kind: Kind = Kind.MISSING,
    **comparison: float,
) -> SummaryRow:
    verdict = Verdict(kind, n)
    return SummaryRow(
        cell, {KEY: weight}, Level(n, mean, std), paired=Paired(**comparison), verdict=verdict
    )


def with_kinds(rows: list[SummaryRow], kinds: list[Kind]) -> list[SummaryRow]:
    return [replace(r, verdict=Verdict(k, r.level.n)) for r, k in zip(rows, kinds, strict=True)]


def with_means(rows: list[SummaryRow], means: list[float]) -> list[SummaryRow]:
    return [replace(r, level=replace(r.level, mean=m)) for r, m in zip(rows, means, strict=True)]


# A baseline, a clear gain (p_holm < 0.001), an unclear one, one seed only, a cell that never ran.
SUMMARY = [
    row("aux_0", 0.0, 3, 0.61, 0.01, Kind.BASELINE),
    row(
        "aux_0.2",
        0.2,
        3,
        0.6423,
        0.0006,
        Kind.BETTER,
        diff=0.0323,
        diff_ci_low=0.031,
        diff_ci_high=0.0336,
        mde=0.00524,
        p_holm=0.0004,
    ),
    row(
        "aux_0.4",
        0.4,
        3,
        0.6367,
        0.0208,
        Kind.NO_DIFFERENCE,
        diff=0.0267,
        diff_ci_low=-0.0113,
        diff_ci_high=0.0646,
        mde=0.1,
        p_holm=0.1134,
    ),
    row("aux_1", 1.0, 1, 0.58, NAN, Kind.ONE_SEED, diff=-0.03),
    row("no_run", None, 0, NAN, NAN),
]

EXPECTED_LATEX = r"""\begin{table}[tbp]
\centering
\caption{Auxiliary weight.}
\begin{tabular}{llrrrrr}
\toprule
cell & loss.aux.weight & $n$ & mIoU (\%) & $\Delta$ [95\% CI] & MDE & $p_{\mathrm{Holm}}$ \\
\midrule
aux\_0 (baseline) & 0 & 3 & $61.00 \pm 1.00$ & -- & -- & -- \\
aux\_0.2 & 0.2 & 3 & $\mathbf{64.23 \pm 0.06}$ & $+3.23$ [$+3.10$, $+3.36$] & $0.52$ & $<0.001$ \\
aux\_0.4 & 0.4 & 3 & $63.67 \pm 2.08$ & $+2.67$ [$-1.13$, $+6.46$] & $10.00$ & $0.113$ \\
aux\_1 & 1 & 1 & $58.00$ & $-3.00$ & -- & -- \\
no\_run & -- & 0 & -- & -- & -- & -- \\
\bottomrule
\end{tabular}
\end{table}
"""

EXPECTED_MARKDOWN = """\
| cell | loss.aux.weight | n | mIoU (%) | Δ [95% CI] | MDE | p (Holm) |
| --- | --- | ---: | ---: | ---: | ---: | ---: |
| aux_0 (baseline) | 0 | 3 | 61.00 ± 1.00 | – | – | – |
| aux_0.2 | 0.2 | 3 | **64.23 ± 0.06** | +3.23 [+3.10, +3.36] | 0.52 | <0.001 |
| aux_0.4 | 0.4 | 3 | 63.67 ± 2.08 | +2.67 [-1.13, +6.46] | 10.00 | 0.113 |
| aux_1 | 1 | 1 | 58.00 | -3.00 | – | – |
| no_run | – | 0 | – | – | – | – |
"""


def test_latex_table_is_exact_in_points_with_best_bold_and_baseline_marked():
    table = ablation_table(
        SUMMARY, metric="val/mIoU", keys=[KEY], baseline="aux_0", caption="Auxiliary weight."
    )
    assert table == EXPECTED_LATEX


def test_markdown_table_has_the_same_content():
    assert markdown_table(SUMMARY, metric="val/mIoU", keys=[KEY], baseline="aux_0") == (
        EXPECTED_MARKDOWN
    )


def test_default_caption_explains_the_columns():
    table = ablation_table(SUMMARY, metric="val/mIoU", keys=[KEY], baseline="aux_0")
    caption = next(line for line in table.splitlines() if line.startswith(r"\caption{"))
    assert "mean $\\pm$ std" in caption and "95\\% CI" in caption and "Holm" in caption
    assert "points" in caption


def test_empty_caption_leaves_it_out():
    table = ablation_table(SUMMARY, metric="val/mIoU", keys=[KEY], baseline="aux_0", caption="")
    assert r"\caption" not in table


def test_latex_escapes_special_characters_in_names_keys_and_values():
    summary = [
        replace(row("base_line", 0, 2, 0.5, 0.1), values={"model.head_type": "psp_v2"}),
        replace(row("a&b 50% #1 $x^2~{y}\\", 0, 2, 0.6, 0.1), values={"model.head_type": "fcn"}),
    ]
    table = ablation_table(
        summary, metric="val/mIoU", keys=["model.head_type"], baseline="base_line"
    )
    assert r"cell & model.head\_type & $n$" in table
    assert r"base\_line (baseline) & psp\_v2 & 2" in table
    expected = r"a\&b 50\% \#1 \$x\textasciicircum{}2\textasciitilde{}\{y\}\textbackslash{} & fcn"
    assert expected in table


def test_escape_latex_leaves_plain_text_alone():
    assert escape_latex("aux weight 0.4") == "aux weight 0.4"
    assert escape_latex("a_b_c") == r"a\_b\_c"
    assert escape_latex("<|>") == r"\textless{}\textbar{}\textgreater{}"


def test_markdown_escapes_pipes_and_markup_but_keeps_inner_underscores():
    assert md_text("no_aux_head") == "no_aux_head"  # cannot open emphasis in CommonMark
    assert md_text("_private_") == r"\_private\_"
    assert md_text("a|b *c* `d` [e] <f>") == r"a\|b \*c\* \`d\` \[e\] &lt;f&gt;"


def test_minimize_goal_bolds_the_lowest_and_other_units_keep_three_decimals():
    # read as a loss, both cells are significantly higher (worse) than the baseline
    summary = with_kinds(SUMMARY[:3], [Kind.BASELINE, Kind.WORSE, Kind.WORSE])
    loss = markdown_table(summary, metric="val/loss", keys=[KEY], baseline="aux_0").splitlines()
    assert loss[0] == "| cell | loss.aux.weight | n | loss | Δ [95% CI] | MDE | p (Holm) |"
    # The goal is read from the name: lower is better for a loss.
    assert loss[2] == "| aux_0 (baseline) | 0 | 3 | **0.610 ± 0.010** | – | – | – |"
    assert loss[4] == (
        "| aux_0.4 | 0.4 | 3 | 0.637 ± 0.021 | +0.027 [-0.011, +0.065] | 0.100 | 0.113 |"
    )
    explicit = markdown_table(
        summary, metric="val/loss", keys=[KEY], baseline="aux_0", goal="maximize"
    )
    assert "**0.642 ± 0.001**" in explicit


def test_without_keys_only_the_cell_names_the_row():
    table = markdown_table(
        with_means(SUMMARY[:3], [0.30, 0.35, 0.25]),
        metric="val/loss",
        keys=[],
        baseline="aux_0",
    )
    assert "| aux_0.4 | 3 | 0.250 ± 0.021 |" in table  # the lowest, not significantly: not bold
    assert table.splitlines()[0] == "| cell | n | loss | Δ [95% CI] | MDE | p (Holm) |"


def test_ties_for_a_significant_best_are_all_bold():
    table = markdown_table(
        with_kinds(
            with_means(SUMMARY[:3], [0.5, 0.6, 0.6000001]),
            [Kind.BASELINE, Kind.BETTER, Kind.BETTER],
        ),
        metric="val/mIoU",
        keys=[],
        baseline="aux_0",
    )
    assert table.count("**60.00 ±") == 2


def test_booleans_and_null_values_read_like_the_study_file():
    summary = [
        replace(r, values={"flag": flag})
        for r, flag in zip(SUMMARY[:3], [True, False, None], strict=True)
    ]
    table = markdown_table(summary, metric="val/mIoU", keys=["flag"], baseline="aux_0")
    assert [line.split(" | ")[1] for line in table.splitlines()[2:]] == ["true", "false", "–"]


def test_unknown_baseline_is_an_error():
    with pytest.raises(ValueError, match="baseline"):
        markdown_table(SUMMARY, metric="val/mIoU", keys=[KEY], baseline="nope")


def test_when_every_cell_ties_none_is_bold():
    # a study whose models all predict background: the same mean everywhere is no "best"
    table = markdown_table(
        with_means(SUMMARY[:3], [0.122, 0.122, 0.122]),
        metric="val/mIoU",
        keys=[],
        baseline="aux_0",
    )
    assert "**" not in table and table.count("12.20 ±") == 3


def _tables(summary: list[SummaryRow], **options: Any) -> tuple[str, str]:
    """The Markdown and the LaTeX table of `summary` (mIoU, no keys, baseline aux_0)."""
    kwargs: dict[str, Any] = {"metric": "val/mIoU", "keys": [], "baseline": "aux_0", **options}
    return markdown_table(summary, **kwargs), ablation_table(summary, caption="", **kwargs)


@pytest.mark.parametrize("kind", [Kind.NO_DIFFERENCE, Kind.INCONCLUSIVE, Kind.ONE_SEED])
def test_a_best_mean_that_is_not_significantly_better_is_not_bold(kind: Kind):
    # aux_0.4 has the highest mean, but its comparison with the baseline found no difference
    # (p_holm 0.113), could not be trusted, or had one seed: the highest number is no finding
    summary = with_kinds(
        with_means(SUMMARY[:3], [0.61, 0.62, 0.65]), [Kind.BASELINE, Kind.BETTER, kind]
    )
    markdown, latex = _tables(summary)
    assert "**" not in markdown and r"\mathbf" not in latex
    assert "| aux_0.4 | 3 | 65.00 ± 2.08 |" in markdown


def test_a_significantly_better_best_mean_is_bold_in_both_tables():
    markdown, latex = _tables(SUMMARY)
    assert markdown.count("**") == 2 and "| aux_0.2 | 3 | **64.23 ± 0.06** |" in markdown
    assert latex.count(r"\mathbf") == 1 and r"$\mathbf{64.23 \pm 0.06}$" in latex


def _baseline_best(*kinds: Kind) -> list[SummaryRow]:
    """The baseline highest; each other cell below it, its verdict `kinds`."""
    rows = [row("aux_0", 0.0, 3, 0.70, 0.01, Kind.BASELINE)]
    for i, kind in enumerate(kinds):
        rows.append(row(f"c{i}", 0.1, 3, 0.60 + i / 100, 0.01, kind, diff=-0.1, p_holm=0.01))
    return rows


def test_the_best_baseline_is_bold_only_when_every_other_cell_is_significantly_worse():
    assert "**70.00 ± 1.00**" in _tables(_baseline_best(Kind.WORSE, Kind.WORSE))[0]
    assert "**" not in _tables(_baseline_best(Kind.WORSE, Kind.NO_DIFFERENCE))[0]
    # a cell that never ran has no mean to be beaten: it does not stand in the way
    never_ran = [*_baseline_best(Kind.WORSE), row("no_run", None, 0, NAN, NAN)]
    assert "**70.00 ± 1.00**" in _tables(never_ran)[0]
    assert "**" not in _tables(_baseline_best())[0]  # nothing compared: no best


def test_the_goal_says_which_side_of_a_significant_difference_is_bold():
    lower = [
        row("aux_0", 0.0, 3, 0.50, 0.01, Kind.BASELINE),
        row("aux_0.2", 0.2, 3, 0.40, 0.01, Kind.BETTER, diff=-0.1, p_holm=0.01),
    ]
    assert _tables(lower, goal="minimize")[0].count("**") == 2  # only the cell's, lower
    assert "| aux_0.2 | 3 | **40.00 ± 1.00** |" in _tables(lower, goal="minimize")[0]
    higher = _tables(lower, goal="maximize")[0]  # the baseline is significantly higher
    assert higher.count("**") == 2 and "| 3 | **50.00 ± 1.00** |" in higher


def test_a_best_compared_with_another_cell_than_the_baseline_is_not_bold():
    # a cumulative design's row is tested against the row above, which says nothing of the best
    summary = [*SUMMARY[:1], replace(SUMMARY[1], reference="aux_0.4"), *SUMMARY[2:3]]
    assert "**" not in _tables(summary)[0]


def test_the_default_caption_says_what_bold_means():
    caption = ablation_table(SUMMARY, metric="val/mIoU", keys=[KEY], baseline="aux_0")
    assert "Bold: the best mean, only where it is significantly best" in caption
    assert "every other cell is significantly worse" in caption
