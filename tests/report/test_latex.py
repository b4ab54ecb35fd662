"""Paper tables: the exact LaTeX and Markdown for a small summary, escaping and missing values."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from ablate.report import Level, Paired, SummaryRow
from ablate.report._text import md_text
from ablate.report.latex import ablation_table, escape_latex, markdown_table

KEY = "loss.aux.weight"
NAN = np.nan


def row(cell: str, weight: Any, n: int, mean: float, std: float, **comparison: float) -> SummaryRow:
    return SummaryRow(cell, {KEY: weight}, Level(n, mean, std), paired=Paired(**comparison))


def with_means(rows: list[SummaryRow], means: list[float]) -> list[SummaryRow]:
    return [replace(r, level=replace(r.level, mean=m)) for r, m in zip(rows, means, strict=True)]


# A baseline, a clear gain (p_holm < 0.001), an unclear one, one seed only, a cell that never ran.
SUMMARY = [
    row("aux_0", 0.0, 3, 0.61, 0.01),
    row(
        "aux_0.2",
        0.2,
        3,
        0.6423,
        0.0006,
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
        diff=0.0267,
        diff_ci_low=-0.0113,
        diff_ci_high=0.0646,
        mde=0.1,
        p_holm=0.1134,
    ),
    row("aux_1", 1.0, 1, 0.58, NAN, diff=-0.03),
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
    summary = SUMMARY[:3]
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
    assert "| aux_0.4 | 3 | **0.250 ± 0.021** |" in table
    assert table.splitlines()[0] == "| cell | n | loss | Δ [95% CI] | MDE | p (Holm) |"


def test_ties_for_best_are_all_bold():
    table = markdown_table(
        with_means(SUMMARY[:3], [0.5, 0.6, 0.6000001]),
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
