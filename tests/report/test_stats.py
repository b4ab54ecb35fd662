"""Statistics across seeds: expected values are computed here from the textbook formulas."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablate.report import Kind, Paired, SummaryRow, Verdict, verdict_sentence
from ablate.report.stats import (
    ANOVA_TERMS,
    SUMMARY_STATS,
    holm,
    interaction_test,
    is_fraction_metric,
    per_class_diff,
    summarize,
    two_way,
)
from ablate.study import Outcome

KEY = "loss.aux.weight"
METRIC = "val/mIoU"
BASE = [0.60, 0.62, 0.61]  # baseline mIoU on seeds 0, 1, 2
AUX = [0.63, 0.66, 0.62]  # paired differences: 0.03, 0.04, 0.01
T_975_2 = 4.302652729911275  # Student-t 97.5% quantile, 2 degrees of freedom (printed tables)


def make_trials(cells: dict[str, tuple[Any, list[float]]], extra: list[dict] | None = None):
    """cells: name -> (key value, metric per seed 0..k-1), all COMPLETE; extra rows appended."""
    rows: list[dict[str, Any]] = []
    for cell, (value, metrics) in cells.items():
        for seed, m in enumerate(metrics):
            rows.append(
                {"outcome": Outcome.COMPLETE, "cell": cell, "seed": seed, KEY: value, METRIC: m}
            )
    rows += extra or []
    table = pd.DataFrame(rows)
    table.insert(0, "number", range(len(table)))
    return table


def run(trials: pd.DataFrame, **kw: Any) -> pd.DataFrame:
    args: dict[str, Any] = {"metric": METRIC, "goal": "maximize", "baseline": "a", "keys": [KEY]}
    return summarize(trials, **(args | kw)).set_index("cell")


def test_columns_come_in_the_documented_order():
    summary = summarize(
        make_trials({"a": (0.0, BASE)}), metric=METRIC, goal="maximize", baseline="a", keys=[KEY]
    )
    assert list(summary.columns) == ["cell", KEY, *SUMMARY_STATS]
    assert SUMMARY_STATS[-1] == "verdict" and SUMMARY_STATS[0] == "n"


def test_level_statistics_match_the_student_t_formula():
    row = run(make_trials({"a": (0.0, BASE), "b": (0.4, AUX)})).loc["a"]
    # mean 0.61, deviations -0.01, 0.01, 0 -> s^2 = 0.0002 / 2, s = 0.01
    half = T_975_2 * 0.01 / math.sqrt(3)
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(0.61)
    assert row["std"] == pytest.approx(0.01)
    assert row["ci_low"] == pytest.approx(0.61 - half)
    assert row["ci_high"] == pytest.approx(0.61 + half)
    assert row[KEY] == 0.0


def test_paired_comparison_matches_hand_computation():
    row = run(make_trials({"a": (0.0, BASE), "b": (0.4, AUX)})).loc["b"]
    mean = 0.08 / 3  # of the differences 0.03, 0.04, 0.01
    sd = math.sqrt(((0.03 - mean) ** 2 + (0.04 - mean) ** 2 + (0.01 - mean) ** 2) / 2)
    t = mean / (sd / math.sqrt(3))
    assert row["diff"] == pytest.approx(mean)
    assert row["diff_ci_low"] == pytest.approx(mean - T_975_2 * sd / math.sqrt(3))
    assert row["diff_ci_high"] == pytest.approx(mean + T_975_2 * sd / math.sqrt(3))
    assert row["n_pairs"] == 3
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(t, df=2))
    assert row["p_holm"] == pytest.approx(row["p_value"])  # one comparison: Holm changes nothing
    assert row["d_z"] == pytest.approx(mean / sd)
    # d_av: the mean difference over the mean of the two cells' sds (0.01 and 0.0208...)
    assert row["d_av"] == pytest.approx(mean / ((0.01 + np.std(AUX, ddof=1)) / 2))
    # The exact signed-rank test's smallest p with 3 pairs is 1/4, and a percentile bootstrap
    # of 3 pairs has 10 distinct resamples: neither can mean anything here, both are left out.
    assert math.isnan(row["p_wilcoxon"])
    assert math.isnan(row["boot_low"]) and math.isnan(row["boot_high"])
    # MDE at 80 % power, one comparison (alpha 0.05), from the noncentral t
    assert row["mde"] == pytest.approx(3.2640435 * sd, rel=1e-6)  # d = 3.264 at n = 3
    detect = f"{row['mde'] * 100:.2f} points"
    low, high = (f"{row[k] * 100:+.2f}" for k in ("diff_ci_low", "diff_ci_high"))
    mde_low, mde_high = (  # the MDE at the bounds of the chi-square interval of the sd
        row["mde"] * math.sqrt(2 / stats.chi2.ppf(q, 2)) * 100 for q in (0.975, 0.025)
    )
    assert row["verdict"] == (
        f"no detectable difference at n = 3: rules out gains above {high} and losses below "
        f"{low} points (95 % paired t-interval); could detect ≥ {detect} with 80 % power "
        f"(95 % interval of that {mde_low:.2f}–{mde_high:.2f}, from 3 seeds' spread)"
    )


def test_pairs_only_seeds_complete_in_both_cells():
    trials = make_trials({"a": (0.0, BASE), "b": (0.4, [*AUX, 0.99])})  # seed 3 has no baseline
    row = run(trials).loc["b"]
    assert row["n"] == 4 and row["n_pairs"] == 3
    assert row["diff"] == pytest.approx(0.08 / 3)


def test_holm_matches_hand_computed_example():
    # sorted 0.01, 0.03, 0.04, 0.20 -> x4, x3, x2, x1 = 0.04, 0.09, 0.08, 0.20
    # monotone: 0.04, 0.09, 0.09, 0.20; back in the input order:
    adjusted = holm([0.01, 0.04, 0.03, 0.20])
    np.testing.assert_allclose(adjusted, [0.04, 0.09, 0.09, 0.20])


def test_holm_caps_at_one_and_skips_nan():
    adjusted = holm([0.5, np.nan, 0.6])
    np.testing.assert_allclose(adjusted, [1.0, np.nan, 1.0])
    assert holm([]).shape == (0,)


def test_summary_p_holm_is_holm_over_non_baseline_cells():
    trials = make_trials(
        {
            "a": (0.0, BASE),
            "b": (0.4, AUX),
            "c": (0.8, [0.50, 0.52, 0.49]),
            "d": (1.0, [0.61, 0.60, 0.62]),
        }
    )
    summary = run(trials)
    others = summary.drop(index="a")
    np.testing.assert_allclose(others["p_holm"], holm(others["p_value"].to_numpy()))
    assert math.isnan(summary.loc["a", "p_holm"])
    assert summary.loc["c", "verdict"] == "worse"  # -10.7 points, p_holm about 0.01


def test_missing_cells_get_rows_with_nan():
    trials = make_trials({"a": (0.0, BASE), "b": (0.4, AUX)})
    summary = run(trials, cells=["a", "ghost", "b"])
    assert list(summary.index) == ["a", "ghost", "b"]
    ghost = summary.loc["ghost"]
    assert ghost["n"] == 0 and ghost["n_pairs"] == 0
    for column in ("mean", "std", "ci_low", "diff", "p_value", "p_holm", "boot_low"):
        assert math.isnan(ghost[column])
    assert ghost["verdict"] == "missing"


def test_cells_default_to_order_of_first_appearance():
    trials = make_trials({"b": (0.4, AUX), "a": (0.0, BASE)})
    assert list(run(trials).index) == ["b", "a"]


def test_retry_counts_seed_once_and_divergence_per_seed():
    extra = [
        {"outcome": Outcome.FAILED, "cell": "b", "seed": 3, KEY: 0.4, METRIC: np.nan},
        {"outcome": Outcome.COMPLETE, "cell": "b", "seed": 3, KEY: 0.4, METRIC: 0.64},
        {"outcome": Outcome.DIVERGED, "cell": "b", "seed": 4, KEY: 0.4, METRIC: np.nan},
        {"outcome": None, "cell": "b", "seed": 5, KEY: 0.4, METRIC: np.nan},
        {"outcome": Outcome.FAILED, "cell": "b", "seed": 6, KEY: 0.4, METRIC: np.nan},
    ]
    row = run(make_trials({"a": (0.0, BASE), "b": (0.4, AUX)}, extra)).loc["b"]
    assert row["n"] == 4  # seeds 0-3
    assert row["diverged"] == 1
    assert row["divergence_rate"] == pytest.approx(1 / 6)  # 4 complete + 1 diverged + 1 failed
    assert row["n_pairs"] == 3


def test_complete_trial_with_nan_metric_is_left_out():
    trials = make_trials({"a": (0.0, BASE), "b": (0.4, [0.63, np.nan, 0.62])})
    row = run(trials).loc["b"]
    assert row["n"] == 2 and row["n_pairs"] == 2
    assert row["mean"] == pytest.approx(0.625)
    assert row["diff"] == pytest.approx((0.03 + 0.01) / 2)


def test_baseline_choice_flips_the_sign_and_marks_its_row():
    trials = make_trials({"a": (0.0, BASE), "b": (0.4, AUX)})
    summary = run(trials, baseline="b")
    assert summary.loc["b", "verdict"] == "baseline"
    assert math.isnan(summary.loc["b", "diff"])
    assert summary.loc["a", "diff"] == pytest.approx(-0.08 / 3)


def test_unknown_baseline_is_an_error():
    with pytest.raises(ValueError, match="baseline"):
        run(make_trials({"a": (0.0, BASE)}), baseline="nope")


def test_minimize_goal_calls_a_lower_value_better():
    base = [1.00, 1.10, 0.95, 1.05, 1.02]
    lower = [b - 0.10 + e for b, e in zip(base, [0.00, 0.01, -0.01, 0.005, -0.005], strict=True)]
    trials = make_trials(
        {"a": (0.0, base), "b": (0.4, lower), "c": (0.8, [b + 0.2 for b in lower])}
    )
    summary = run(trials, metric=METRIC, goal="minimize")
    assert summary.loc["b", "verdict"] == "better"
    assert summary.loc["c", "verdict"] == "worse"  # +0.1 on every seed (with noise), p tiny
    assert run(trials, goal="maximize").loc["b", "verdict"] == "worse"


def test_one_seed_study_has_no_test():
    summary = run(make_trials({"a": (0.0, [0.6]), "b": (0.4, [0.7])}))
    row = summary.loc["b"]
    assert row["n"] == 1 and row["n_pairs"] == 1
    assert math.isnan(row["std"]) and math.isnan(row["ci_low"])
    assert row["diff"] == pytest.approx(0.1)
    for column in ("p_value", "p_holm", "p_wilcoxon", "d_z", "boot_low", "diff_ci_low"):
        assert math.isnan(row[column])
    assert row["verdict"] == "n/a (one seed)"


def test_identical_differences():
    zero = run(make_trials({"a": (0.0, BASE), "b": (0.4, BASE)})).loc["b"]
    assert zero["p_value"] == 1.0 and math.isnan(zero["p_wilcoxon"]) and zero["d_z"] == 0
    assert zero["mde"] == 0 and zero["verdict"].startswith("no detectable difference at n = 3")
    # a constant shift is the limit of a shrinking spread: p -> 0, d_z -> inf, not NaN
    shifted = run(make_trials({"a": (0.0, [0.5, 0.6]), "b": (0.4, [0.75, 0.85])})).loc["b"]
    assert shifted["p_value"] == 0.0 and shifted["d_z"] == math.inf
    assert shifted["verdict"] == "better"
    lower = run(make_trials({"a": (0.0, [0.5, 0.6]), "b": (0.4, [0.25, 0.35])})).loc["b"]
    assert lower["p_value"] == 0.0 and lower["d_z"] == -math.inf and lower["verdict"] == "worse"


TEN_BASE = [0.60, 0.62, 0.61, 0.59, 0.63, 0.60, 0.61, 0.62, 0.58, 0.60]
TEN_DIFF = [0.03, 0.04, 0.01, 0.02, 0.00, 0.03, 0.01, 0.02, 0.05, 0.01]  # sums to 0.22


def test_bootstrap_is_reproducible_seeded_and_starts_at_ten_pairs():
    aux = [b + d for b, d in zip(TEN_BASE, TEN_DIFF, strict=True)]
    trials = make_trials({"a": (0.0, TEN_BASE), "b": (0.4, aux)})
    first = run(trials, n_boot=2000, rng_seed=1).loc["b"]
    again = run(trials, n_boot=2000, rng_seed=1).loc["b"]
    assert (first["boot_low"], first["boot_high"]) == (again["boot_low"], again["boot_high"])
    assert 0.0 < first["boot_low"] < 0.022 < first["boot_high"] < 0.05
    nine = run(make_trials({"a": (0.0, TEN_BASE[:9]), "b": (0.4, aux[:9])})).loc["b"]
    assert math.isnan(nine["boot_low"]) and not math.isnan(nine["p_value"])


@pytest.mark.parametrize(("n", "reported"), [(5, False), (6, True)])
def test_wilcoxon_is_reported_from_the_n_where_it_can_reject(n: int, reported: bool):
    # all differences positive: the exact two-sided p is 2 / 2^n (0.0625 at 5, 0.03125 at 6)
    aux = [b + d + 0.001 for b, d in zip(TEN_BASE, TEN_DIFF, strict=True)]
    row = run(make_trials({"a": (0.0, TEN_BASE[:n]), "b": (0.4, aux[:n])})).loc["b"]
    if reported:
        assert row["p_wilcoxon"] == pytest.approx(2 / 2**n)
    else:
        assert math.isnan(row["p_wilcoxon"])


def test_per_class_diff_pairs_finite_values_per_class():
    trials = make_trials({"a": (0.0, BASE), "b": (0.4, AUX)})
    trials["val/iou/road"] = [0.9, 0.8, 0.7, 0.95, 0.80, 0.75]
    trials["val/iou/pole"] = [0.1, np.nan, 0.3, 0.2, 0.25, 0.3]
    table = per_class_diff(trials, baseline="a", class_columns=["val/iou/road", "val/iou/pole"])
    assert list(table.columns) == [
        "cell",
        "class",
        "diff",
        "ci_low",
        "ci_high",
        "n_pairs",
        "p_value",
        "p_holm",
        "never_learned",
    ]
    road = table.set_index("class").loc["road"]
    pole = table.set_index("class").loc["pole"]
    assert road["cell"] == "b" and road["n_pairs"] == 3
    assert road["diff"] == pytest.approx((0.05 + 0.0 + 0.05) / 3)
    assert pole["n_pairs"] == 2 and pole["diff"] == pytest.approx(0.05)
    d = np.array([0.1, 0.0])
    half = stats.t.ppf(0.975, 1) * np.std(d, ddof=1) / math.sqrt(2)
    assert pole["ci_low"] == pytest.approx(0.05 - half)


def sentence_row(kind: Kind, n_pairs: int, **paired: float) -> SummaryRow:
    return SummaryRow(
        "aux.weight=0.4", paired=Paired(n_pairs=n_pairs, **paired), verdict=Verdict(kind)
    )


def test_verdict_sentence_reads_in_points():
    row = sentence_row(
        Kind.BETTER, 3, diff=0.01423, diff_ci_low=0.003, diff_ci_high=0.025, p_holm=0.031
    )
    assert verdict_sentence(row, "val/mIoU") == (
        "aux.weight=0.4: mIoU +1.42 points vs baseline "
        "(paired 95% t-interval +0.30 to +2.50 points, p_holm = 0.031, n = 3) — better."
    )
    loss = sentence_row(Kind.WORSE, 3, diff=-0.5, diff_ci_low=-0.6, diff_ci_high=-0.4, p_holm=0.031)
    assert verdict_sentence(loss, "val/loss").startswith(
        "aux.weight=0.4: loss -0.50 nats vs baseline"
    )


@pytest.mark.parametrize(
    ("verdict", "n_pairs", "expected"),
    [
        (Verdict(Kind.MISSING), 0, "x: no completed seed paired with the baseline — missing."),
        (Verdict(Kind.ONE_SEED), 1, "x: mIoU +1.00 points vs baseline (one paired seed"),
        (
            Verdict(Kind.DIVERGED, n=3),
            0,
            "x: no completed seed paired with the baseline — diverged (3 of 3 seeds)",
        ),
    ],
)
def test_verdict_sentence_without_a_test(verdict: Verdict, n_pairs: int, expected: str):
    row = SummaryRow("x", paired=Paired(diff=0.01, n_pairs=n_pairs), verdict=verdict)
    assert verdict_sentence(row, METRIC).startswith(expected)


def test_fraction_metrics_are_recognised_by_name():
    assert is_fraction_metric("val/mIoU") and is_fraction_metric("val/iou/car")
    assert is_fraction_metric("best/val/pixel_acc")
    assert not is_fraction_metric("train/loss") and not is_fraction_metric("duration_s")


# --------------------------------------------------------------------------- two-key grids

# A 2 × 2 grid, seeds 0-2. Cell means 5, 7 / 7, 13 -> grand mean 8, row means 6, 10, column means
# 6, 10. Interaction residuals m_ij - m_i - m_j + m = +1, -1 / -1, +1. Deviations from the cell
# mean per seed: (-1, +1, 0), (-1, +2, -1), (-1, 0, +1), (-1, +1, 0), so seed means are
# 8 - 1, 8 + 1, 8 + 0 and the residuals after the seed block are 0, 0, 0 / 0, +1, -1 /
# 0, -1, +1 / 0, 0, 0.
GRID = {
    ("full", 0.0): [4.0, 6.0, 5.0],
    ("full", 0.4): [6.0, 9.0, 6.0],
    ("cpp", 0.0): [6.0, 7.0, 8.0],
    ("cpp", 0.4): [12.0, 14.0, 13.0],
}
SS_ROW = 2 * 3 * ((6 - 8) ** 2 + (10 - 8) ** 2)  # b r sum_i (m_i - m)^2 = 48
SS_COL = 2 * 3 * ((6 - 8) ** 2 + (10 - 8) ** 2)  # a r sum_j (m_j - m)^2 = 48
SS_INT = 3 * (1 + 1 + 1 + 1)  # r sum_ij (interaction residual)^2 = 12
SS_WITHIN = (1 + 1 + 0) + (1 + 4 + 1) + (1 + 0 + 1) + (1 + 1 + 0)  # = 12, df a b (r - 1) = 8
SS_SEED = 2 * 2 * (1 + 1 + 0)  # a b sum_k (m_k - m)^2 = 8, df r - 1 = 2
SS_BLOCKED_ERROR = 4  # 1 + 1 + 1 + 1 = SS_WITHIN - SS_SEED, df (a b - 1)(r - 1) = 6


def grid_trials(grid: dict[tuple[Any, Any], list[float]], extra: list[dict] | None = None):
    rows = [
        {
            "outcome": Outcome.COMPLETE,
            "cell": f"{t}_{w}",
            "seed": seed,
            "target": t,
            "w": w,
            METRIC: m,
        }
        for (t, w), values in grid.items()
        for seed, m in enumerate(values)
    ]
    table = pd.DataFrame(rows + (extra or []))
    table.insert(0, "number", range(len(table)))
    return table


def anova(trials: pd.DataFrame, **kw: Any) -> dict[str, Any]:
    return interaction_test(trials, metric=METRIC, row_key="target", col_key="w", **kw)


def test_two_way_tabulates_mean_and_n_of_complete_seeds():
    extra = [
        {
            "outcome": Outcome.FAILED,
            "cell": "cpp_0.4",
            "seed": 3,
            "target": "cpp",
            "w": 0.4,
            METRIC: 99.0,
        },
        {
            "outcome": Outcome.COMPLETE,
            "cell": "cpp_0.4",
            "seed": 4,
            "target": "cpp",
            "w": 0.4,
        },  # NaN
        {"outcome": Outcome.FAILED, "cell": "lovasz_0.0", "seed": 0, "target": "lovasz", "w": 0.0},
    ]
    table = two_way(grid_trials(GRID, extra), metric=METRIC, row_key="target", col_key="w")
    assert list(table["mean"].index) == ["full", "cpp", "lovasz"]
    assert list(table["mean"].columns) == [0.0, 0.4]
    assert table.index.name == "target" and table["mean"].columns.name == "w"
    np.testing.assert_allclose(table["mean"].to_numpy(), [[5, 7], [7, 13], [np.nan, np.nan]])
    np.testing.assert_array_equal(table["n"].to_numpy(), [[3, 3], [3, 3], [0, 0]])


def test_two_way_rejects_two_cells_on_one_pair():
    extra = [{"outcome": Outcome.COMPLETE, "cell": "again", "seed": 0, "target": "cpp", "w": 0.4}]
    with pytest.raises(ValueError, match=r"share target=cpp, w=0\.4"):
        two_way(grid_trials(GRID, extra), metric=METRIC, row_key="target", col_key="w")


def test_interaction_test_matches_hand_computed_sums_of_squares():
    plain = anova(grid_trials(GRID), block_seed=False)
    for term, ss in zip(ANOVA_TERMS, (SS_ROW, SS_COL, SS_INT), strict=True):
        assert plain[f"ss_{term}"] == pytest.approx(ss)
        assert plain[f"df_{term}"] == 1
        assert plain[f"F_{term}"] == pytest.approx(ss / (SS_WITHIN / 8))  # 32, 32, 8
        assert plain[f"p_{term}"] == pytest.approx(stats.f.sf(ss / 1.5, 1, 8))
    assert (plain["ss_error"], plain["df_error"]) == (pytest.approx(SS_WITHIN), 8)
    assert plain["ss_seed"] == 0 and plain["df_seed"] == 0
    assert (plain["n_seeds"], plain["n_dropped"], plain["note"]) == (3, 0, "")

    blocked = anova(grid_trials(GRID))
    assert blocked["blocked"] and blocked["ss_seed"] == pytest.approx(SS_SEED)
    assert (blocked["ss_error"], blocked["df_error"]) == (pytest.approx(SS_BLOCKED_ERROR), 6)
    assert blocked["ss_interaction"] == pytest.approx(SS_INT)
    assert blocked["F_interaction"] == pytest.approx(SS_INT / (4 / 6))  # 18
    assert blocked["p_interaction"] == pytest.approx(stats.f.sf(18.0, 1, 6))
    assert blocked["p_interaction"] < plain["p_interaction"]  # the block took out seed noise


def test_seed_block_with_two_cells_is_the_paired_t_test():
    # One row level, two columns: the blocked F for the column is t^2 of the paired t-test.
    grid = {("full", 0.0): BASE, ("full", 0.4): AUX}
    result = anova(grid_trials(grid))
    paired = stats.ttest_rel(AUX, BASE)
    assert result["F_col"] == pytest.approx(paired.statistic**2)
    assert result["p_col"] == pytest.approx(paired.pvalue)
    assert math.isnan(result["F_row"]) and math.isnan(result["F_interaction"])
    assert "one level" in result["note"]


def test_without_block_one_key_is_one_way_anova():
    groups = [[0.60, 0.62, 0.61], [0.63, 0.66, 0.62], [0.58, 0.64, 0.60]]
    grid = {("full", w): g for w, g in zip((0.0, 0.4, 0.8), groups, strict=True)}
    result = anova(grid_trials(grid), block_seed=False)
    one_way = stats.f_oneway(*groups)
    assert result["F_col"] == pytest.approx(one_way.statistic)
    assert result["p_col"] == pytest.approx(one_way.pvalue)


def test_a_missing_result_costs_that_result_alone():
    grid = {pair: [*values, 20.0] for pair, values in GRID.items()}  # a fourth seed ...
    del grid[("cpp", 0.4)][3]  # ... that one pair lacks (it crashed)
    trials = grid_trials(grid)
    result = anova(trials)
    assert (result["n_seeds"], result["n_results"], result["n_dropped"]) == (4, 15, 0)
    assert "1 (pair, seed) result(s) missing" in result["note"]
    # Type III sums of squares by hand: each term's SS is the rise in residual SS when its
    # sum-coded columns leave the full least-squares model (seed block included)
    y = trials[METRIC].to_numpy()
    row = np.where(trials["target"] == "full", 1.0, -1.0)
    col = np.where(trials["w"] == 0.0, 1.0, -1.0)
    seed = trials["seed"].to_numpy()
    blocks = np.stack([np.where(seed == k, 1.0, np.where(seed == 3, -1.0, 0.0)) for k in range(3)])
    columns = {"row": row, "col": col, "interaction": row * col}

    def rss(without: str | None) -> float:
        kept = [v for k, v in columns.items() if k != without]
        x = np.column_stack([np.ones_like(y), *kept, *blocks])
        fitted = x @ np.linalg.lstsq(x, y, rcond=None)[0]
        return float(np.sum((y - fitted) ** 2))

    full = rss(None)
    df_error = 15 - 1 - 3 - 3
    assert result["df_error"] == df_error and result["ss_error"] == pytest.approx(full)
    for term in ANOVA_TERMS:
        ss = rss(term) - full
        assert result[f"ss_{term}"] == pytest.approx(ss)
        assert result[f"F_{term}"] == pytest.approx(ss / (full / df_error))
        assert result[f"p_{term}"] == pytest.approx(stats.f.sf(ss / (full / df_error), 1, df_error))


def test_seeds_that_never_cross_pairs_are_not_a_block():
    # each pair trained on its own seeds: a seed block would be confounded with the pairs
    trials = grid_trials(GRID)
    trials["seed"] = trials["seed"] + 10 * trials.groupby("cell", sort=False).ngroup()
    blocked, plain = anova(trials), anova(trials, block_seed=False)
    assert not blocked["blocked"] and "not a block" in blocked["note"]
    assert blocked["F_interaction"] == pytest.approx(plain["F_interaction"])
    assert plain["F_interaction"] == pytest.approx(SS_INT / (SS_WITHIN / 8))


def test_one_seed_per_pair_has_no_test():
    one_each = {pair: values[:1] for pair, values in GRID.items()}
    result = anova(grid_trials(one_each), block_seed=False)
    assert result["df_error"] == 0 and math.isnan(result["ss_row"])
    assert all(math.isnan(result[f"{s}_{t}"]) for s in ("F", "p") for t in ANOVA_TERMS)
    assert "no error degrees of freedom" in result["note"]


def test_pair_without_results_makes_everything_nan():
    extra = [{"outcome": Outcome.DIVERGED, "cell": "cpp_0.8", "seed": 0, "target": "cpp", "w": 0.8}]
    result = anova(grid_trials(GRID, extra))
    assert all(math.isnan(result[f"{s}_{t}"]) for s in ("F", "p", "ss") for t in ANOVA_TERMS)
    assert result["note"] == "no completed seed for target=full, w=0.8; target=cpp, w=0.8"


def test_no_residual_variance_leaves_f_undefined():
    additive = {("full", 0.0): [1.0, 2.0], ("full", 0.4): [3.0, 4.0]}  # a pure seed shift
    result = anova(grid_trials(additive))
    assert result["ss_col"] == pytest.approx(4.0) and math.isnan(result["F_col"])
    assert "no residual variance" in result["note"]
