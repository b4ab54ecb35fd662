"""Readings that claim no more than the data: what a test that found nothing rules out, how
uncertain its MDE is, convergence judged on the difference a verdict reads (and never "passed"
where it could not run), and the held-out test split's paired interval. Expected numbers come
from scipy and statsmodels, not from ablate."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower

from ablate.report import write_report
from ablate.report._health import cell_health
from ablate.report.stats import summarize
from ablate.study import Outcome
from tests.report.test_build import FLAT, TWO_CLASSES, _storage, _study

KEY = "loss.aux.weight"
BASE = [0.60, 0.62, 0.61, 0.63]  # the baseline's metric on seeds 0..3
NOISE = [0.01, -0.012, 0.004, 0.002]  # the cell's paired differences: no detectable effect


def trials_of(cells: dict[str, list[float]], metric: str, **extra: dict[str, list[float]]):
    """COMPLETE trials, one per (cell, seed); `extra` adds columns by name, per cell."""
    rows: list[dict[str, Any]] = []
    for cell, values in cells.items():
        for seed, v in enumerate(values):
            row = {
                "outcome": Outcome.COMPLETE,
                "cell": cell,
                "seed": seed,
                KEY: len(rows),
                metric: v,
            }
            row.update({name.replace("_", "/"): by[cell][seed] for name, by in extra.items()})
            rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(0, "number", range(len(table)))
    return table


def summary_of(trials: pd.DataFrame, metric: str, goal: str, history=None) -> pd.DataFrame:
    return summarize(
        trials, metric=metric, goal=goal, baseline="a", keys=[KEY], history=history
    ).set_index("cell")


def t_interval(d: np.ndarray) -> tuple[float, float]:
    return stats.t.interval(0.95, len(d) - 1, loc=np.mean(d), scale=stats.sem(d))


def sd_interval(sd: float, n: int) -> tuple[float, float]:
    """The chi-square 95 % interval of σ from a sample sd of n values."""
    return tuple(sd * math.sqrt((n - 1) / stats.chi2.ppf(q, n - 1)) for q in (0.975, 0.025))


# -- 1 and 2: "no detectable difference" says what the interval rules out, and the MDE's interval


def test_no_difference_when_maximizing_rules_out_gains_above_and_losses_below():
    d = np.array(NOISE)
    cell = list(np.array(BASE) + d)
    row = summary_of(trials_of({"a": BASE, "b": cell}, "val/mIoU"), "val/mIoU", "maximize").loc["b"]
    low, high = t_interval(d)
    sd = float(np.std(d, ddof=1))
    effect = TTestPower().solve_power(nobs=4, alpha=0.05, power=0.8)  # d_z the test detects
    mde_low, mde_high = (effect * s for s in sd_interval(sd, 4))
    assert row["mde"] == pytest.approx(effect * sd, rel=1e-5)
    assert row["verdict"] == (
        f"no detectable difference at n = 4: rules out gains above {high * 100:+.2f} and losses "
        f"below {low * 100:+.2f} points (95 % paired t-interval); could detect ≥ "
        f"{effect * sd * 100:.2f} points with 80 % power (95 % interval of that "
        f"{mde_low * 100:.2f}–{mde_high * 100:.2f}, from 4 seeds' spread)"
    )


def test_no_difference_when_minimizing_rules_out_gains_below_and_losses_above():
    # a loss: lower is better, so a gain is a negative difference
    base = [0.50, 0.52, 0.51, 0.53]
    d = np.array([0.02, -0.03, 0.01, -0.004])
    cell = list(np.array(base) + d)
    row = summary_of(trials_of({"a": base, "b": cell}, "val/loss"), "val/loss", "minimize").loc["b"]
    low, high = t_interval(d)
    assert low < 0 < high
    assert row["verdict"].startswith(
        f"no detectable difference at n = 4: rules out gains below {low:+.2f} and losses above "
        f"{high:+.2f} nats (95 % paired t-interval); could detect ≥ {row['mde']:.2f} nats "
        "with 80 % power (95 % interval of that "
    )


SHIFTED = [0.02, 0.01, 0.03, 0.012]  # differences whose 95 % interval excludes zero


def test_an_interval_clear_of_zero_that_holm_left_untested_rules_out_differences():
    # three cells compared: b's own p is below 0.05 but Holm's correction lifts it above
    trials = trials_of(
        {
            "a": BASE,
            "b": list(np.add(BASE, SHIFTED)),
            "c": list(np.array(BASE) + NOISE),
            "e": list(np.array(BASE) + NOISE[::-1]),
        },
        "val/mIoU",
    )
    row = summary_of(trials, "val/mIoU", "maximize").loc["b"]
    assert row["p_value"] < 0.05 <= row["p_holm"]
    low, high = t_interval(np.array(SHIFTED))
    assert low > 0
    assert row["verdict"].startswith(
        f"no detectable difference at n = 4: rules out differences below {low * 100:+.2f} and "
        f"above {high * 100:+.2f} points (95 % paired t-interval); could detect ≥ "
    )


def test_the_mde_interval_is_the_mde_at_the_bounds_of_the_spread_s_chi_square_interval():
    d = np.array(NOISE)
    summary = summarize(
        trials_of({"a": BASE, "b": list(np.array(BASE) + d)}, "val/mIoU"),
        metric="val/mIoU",
        goal="maximize",
        baseline="a",
        keys=[KEY],
    )
    columns = list(summary.columns)
    assert columns[columns.index("mde") :][:4] == ["mde", "mde_low", "mde_high", "seeds_needed"]
    row = summary.set_index("cell").loc["b"]
    sd_low, sd_high = sd_interval(float(np.std(d, ddof=1)), 4)
    # statsmodels: at each bound of σ, the MDE there has 80 % power
    for mde, sd in ((row["mde_low"], sd_low), (row["mde_high"], sd_high)):
        assert TTestPower().power(mde / sd, 4, 0.05) == pytest.approx(0.8, abs=1e-6)
    assert row["mde_low"] < row["mde"] < row["mde_high"]
    baseline = summary.set_index("cell").loc["a"]
    assert math.isnan(baseline["mde_low"]) and math.isnan(baseline["mde_high"])


# -- 3a: convergence is judged on the difference the verdict reads

RISING = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # +15 points over the last quarter


def history_of(curves: dict[tuple[str, int], list[float]], metric: str = "val/mIoU"):
    rows = [
        {"cell": cell, "seed": seed, "epoch": e, metric: v}
        for (cell, seed), curve in curves.items()
        for e, v in enumerate(curve, start=1)
    ]
    return pd.DataFrame(rows)


def late_gain_by_hand(curve: np.ndarray) -> float:
    """The slope of the last three of six evaluations against training progress, times 1/4."""
    return float(np.polyfit(np.arange(4, 7) / 6, curve[-3:], 1)[0]) / 4


def rising_together(shift: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both cells' curves rise 15 points over the last quarter; on each seed the cell's curve
    is the baseline's moved by `shift[seed]` at every evaluation (a flat difference)."""
    offset = [0.0, 0.01, -0.01]
    curves = {("a", s): [v + offset[s] for v in RISING] for s in range(3)}
    curves |= {("b", s): [v + offset[s] + shift[s] for v in RISING] for s in range(3)}
    finals = {c: [curves[c, s][-1] for s in range(3)] for c in "ab"}
    return trials_of(finals, "val/mIoU"), history_of(curves)


def test_two_curves_rising_together_leave_their_difference_settled():
    trials, history = rising_together([0.004, -0.006, 0.001])
    row = summary_of(trials, "val/mIoU", "maximize", history).loc["b"]
    assert (row["converged"], row["diff_converged"]) == (False, True)  # its own curve rose
    assert row["diff_late_gain"] == pytest.approx(0.0, abs=1e-12)
    assert row["verdict"].startswith("no detectable difference at n = 3: rules out ")
    assert row["health"] == (
        "not converged (+15.00 points over the last quarter), though its difference from the "
        "baseline had settled"
    )


def test_a_difference_found_on_curves_rising_together_needs_no_training_length_caveat():
    trials, history = rising_together([0.05, 0.052, 0.049])
    row = summary_of(trials, "val/mIoU", "maximize", history).loc["b"]
    assert row["verdict"] == "better"  # not "better at this training length (...)"


def test_a_difference_still_moving_unsettles_a_comparison_of_flat_curves():
    # the baseline slips 0.4 points per evaluation at the end, the cell gains 0.4: each own
    # curve moved 0.6 points over the last quarter (settled), their difference 1.2 (not)
    down = [0.60, 0.60, 0.60, 0.60, 0.596, 0.592]
    up = [0.60, 0.60, 0.60, 0.60, 0.604, 0.608]
    offset = [-0.03, 0.0, 0.018]  # per seed, over the whole curve: no detectable difference
    curves = {("a", s): down for s in range(3)}
    curves |= {("b", s): [v + offset[s] for v in up] for s in range(3)}
    finals = {c: [curves[c, s][-1] for s in range(3)] for c in "ab"}
    history = history_of(curves)
    row = summary_of(trials_of(finals, "val/mIoU"), "val/mIoU", "maximize", history).loc["b"]
    mean_difference = np.mean([np.subtract(curves["b", s], curves["a", s]) for s in range(3)], 0)
    assert row["diff_late_gain"] == pytest.approx(late_gain_by_hand(mean_difference))
    assert row["diff_late_gain"] * 100 == pytest.approx(1.2)
    assert (row["converged"], row["diff_converged"]) == (True, False)
    assert row["verdict"] == (
        "inconclusive: difference from the baseline still moving; longer training may show a "
        "difference"
    )
    assert (
        row["health"]
        == "difference from the baseline still moving (+1.20 points over the last quarter)"
    )


def test_the_difference_curve_of_a_minimized_metric_gains_when_the_cell_pulls_ahead():
    # a loss the cell lowers faster than the baseline: the cell gains on it
    curves = {("a", 0): [1.0, 0.9, 0.8, 0.8, 0.8, 0.8], ("b", 0): [1.0, 0.9, 0.8, 0.79, 0.78, 0.77]}
    curves |= {("a", 1): curves["a", 0], ("b", 1): curves["b", 0]}
    trials = trials_of({"a": [0.8, 0.8], "b": [0.77, 0.77]}, "val/loss")
    health = cell_health(
        trials,
        history_of(curves, "val/loss"),
        metric="val/loss",
        goal="minimize",
        cells=["a", "b"],
        against={"b": "a"},
        baseline="a",
    )
    by_hand = -late_gain_by_hand(np.subtract(curves["b", 0], curves["a", 0]))
    assert health["b"].diff_late_gain == pytest.approx(by_hand) and by_hand > 0
    assert math.isnan(health["a"].diff_late_gain) and health["a"].diff_converged is None


def test_cells_evaluated_at_different_points_are_judged_by_their_own_curves():
    curves = {("a", 0): RISING, ("b", 0): [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6, 0.6]}
    trials = trials_of({"a": [0.6], "b": [0.6]}, "val/mIoU")
    health = cell_health(
        trials,
        history_of(curves),
        metric="val/mIoU",
        goal="maximize",
        cells=["a", "b"],
        against={"b": "a"},
        baseline="a",
    )
    assert health["b"].diff_converged is None and math.isnan(health["b"].diff_late_gain)


# -- 3b: convergence that could not be judged reads "not checked", never "passed"

TWO_EPOCHS = """
name: two_epochs
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
  train: {epochs: 2}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
  seeds: [0, 1, 2]
baseline: {loss.aux.weight: 0.0}
"""


def _health(report_md: str) -> str:
    return report_md.split("## Health\n", 1)[1].split("\n## ", 1)[0]


def test_a_two_epoch_study_reads_convergence_not_checked(tmp_path: Path) -> None:
    study = _study(tmp_path, TWO_EPOCHS)
    values = {
        (c.name, s): 0.5 + 0.01 * s + 0.02 * i for i, c in enumerate(study.cells) for s in range(3)
    }
    # two evaluations per trial (v/2, then v): too few for a slope
    report = write_report(study, _storage(study, values, ious=TWO_CLASSES), tmp_path / "r")
    summary = pd.read_csv(report.folder / "summary.csv")
    assert summary["converged"].isna().all()
    health = _health((report.folder / "report.md").read_text())
    assert "Every check passed" not in health
    assert (
        "Convergence: not checked (judging whether a curve had settled needs at least 3 " in health
    )
    passed = re.search(r"[^.]*passed[^.]*\.", health)
    assert passed is not None and "curve" not in passed.group(0)  # passed: only what ran


def test_with_enough_evaluations_every_check_still_reads_passed(tmp_path: Path) -> None:
    study = _study(tmp_path, TWO_EPOCHS.replace("epochs: 2", "epochs: 6"))
    values = {(c.name, s): 0.5 + 0.01 * s for c in study.cells for s in range(3)}
    report = write_report(
        study, _storage(study, values, curve=FLAT, ious=TWO_CLASSES), tmp_path / "r"
    )
    health = _health((report.folder / "report.md").read_text())
    assert health.startswith("\nEvery check passed: ") and "not checked" not in health


# -- 4: the held-out test split's paired interval


def test_the_test_split_difference_has_its_paired_t_interval(tmp_path: Path) -> None:
    study = _study(tmp_path, TWO_EPOCHS)
    noise = [0.0, 0.01, -0.004]
    values = {
        (c.name, s): 0.5 + 0.03 * i + noise[s] * (1 + i)
        for i, c in enumerate(study.cells)
        for s in range(3)
    }

    def finals(v: float) -> dict[str, float]:
        return {**TWO_CLASSES(v), "test/mIoU": v * v}  # a test score that is not the val one

    report = write_report(study, _storage(study, values, ious=finals), tmp_path / "r")
    summary = pd.read_csv(report.folder / "summary.csv")
    assert list(summary.columns)[-4:] == [
        "test_mean",
        "test_diff",
        "test_diff_ci_low",
        "test_diff_ci_high",
    ]
    base, cell = (c.name for c in study.cells)
    d = np.array([values[cell, s] ** 2 - values[base, s] ** 2 for s in range(3)])
    row = summary.set_index("cell").loc[cell]
    low, high = t_interval(d)
    assert (row["test_diff"], row["test_diff_ci_low"], row["test_diff_ci_high"]) == pytest.approx(
        (d.mean(), low, high)
    )
    assert (
        summary.set_index("cell").loc[base, ["test_diff_ci_low", "test_diff_ci_high"]].isna().all()
    )
    section = (report.folder / "report.md").read_text().split("## Held-out test split\n", 1)[1]
    assert "| cell | n | test/mIoU | Δ vs aux.weight=0 [95% CI] |" in section
    shown = f"{d.mean() * 100:+.2f} [{low * 100:+.2f}, {high * 100:+.2f}]"
    assert (
        f"| {cell} | 3 | {np.mean([values[cell, s] ** 2 for s in range(3)]) * 100:.2f} | {shown} |"
        in section
    )
