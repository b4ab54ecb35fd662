"""Health checks: collapsed models, classes never learned, curves still rising, and the verdicts
they turn inconclusive."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ablate.report._health import (
    cell_health,
    collapsed,
    late_gain,
    never_learned,
)
from ablate.report.stats import summarize
from ablate.study import Outcome

METRIC = "val/mIoU"
KEY = "loss.aux.weight"


def trials_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    table.insert(0, "number", range(len(table)))
    return table


def trial(
    cell: str, seed: int, miou: float, ious: list[float], outcome: Outcome = Outcome.COMPLETE
) -> dict:
    row = {"outcome": outcome, "cell": cell, "seed": seed, KEY: 0.0 if cell == "a" else 0.4}
    row[METRIC] = miou
    row.update({f"val/iou/c{i}": v for i, v in enumerate(ious)})
    return row


def history_of(curves: dict[tuple[str, int], list[float]]) -> pd.DataFrame:
    rows = [
        {"cell": cell, "seed": seed, "epoch": e, METRIC: v}
        for (cell, seed), curve in curves.items()
        for e, v in enumerate(curve, start=1)
    ]
    return pd.DataFrame(rows)


def test_a_trial_predicting_one_class_is_collapsed():
    trials = trials_of(
        [
            trial("a", 0, 0.12, [0.73, 0.0, 0.0]),  # background only
            trial("a", 1, 0.30, [0.80, 0.1, 0.0]),  # learned two classes
            trial("a", 2, 0.0, [0.0, 0.0, np.nan]),  # nothing at all
            trial("a", 3, 0.5, [np.nan, np.nan, np.nan], outcome=Outcome.FAILED),
        ]
    )
    assert collapsed(trials).tolist() == [True, False, True, False]


def test_never_learned_needs_zero_in_every_complete_trial():
    trials = trials_of(
        [
            trial("a", 0, 0.3, [0.8, 0.0, 0.0, np.nan]),
            trial("b", 0, 0.3, [0.8, 0.0, 0.2, np.nan]),
            trial(
                "b", 1, 0.3, [0.8, 0.9, 0.9, np.nan], outcome=Outcome.FAILED
            ),  # a failure counts not
        ]
    )
    # c3 was never measured (absent from validation): not "never learned"
    assert never_learned(trials) == ["c1"]


def test_late_gain_is_the_slope_over_the_last_quarter():
    # 8 evaluations: the last quarter holds evaluations 7 and 8, so the last 3 are used
    curve = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.64, 0.68]
    x = np.arange(6, 9) / 8
    slope = np.polyfit(x, curve[-3:], 1)[0]
    assert late_gain(curve, "maximize") == pytest.approx(slope / 4)
    assert late_gain(curve, "minimize") == pytest.approx(-slope / 4)
    assert late_gain([0.5] * 10, "maximize") == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(late_gain([0.1, 0.2], "maximize"))


def test_cell_health_flags_collapse_and_a_rising_mean_curve():
    trials = trials_of(
        [trial("a", s, 0.6, [0.8, 0.5]) for s in range(2)]
        + [trial("b", 0, 0.12, [0.73, 0.0]), trial("b", 1, 0.6, [0.8, 0.5])]
    )
    flat = [0.5, 0.58, 0.6, 0.6, 0.6, 0.6]
    rising = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # +10 points per evaluation
    history = history_of({("a", 0): flat, ("a", 1): flat, ("b", 0): rising, ("b", 1): rising})
    health = cell_health(trials, history, metric=METRIC, goal="maximize", cells=["a", "b"])
    a = health["a"]
    assert (a.collapsed, a.converged, a.health) == (0, True, "")
    assert a.late_gain == pytest.approx(0)
    b = health["b"]
    assert b.collapsed == 1 and b.converged is False
    assert b.late_gain == pytest.approx(0.1 * 6 / 4)  # 0.1 per 1/6 of training, a quarter
    assert (
        b.health == "1 of 2 seeds predict one class; not converged (+15.00 points over "
        "the last quarter)"
    )


def summary_of(trials: pd.DataFrame, history: pd.DataFrame | None = None, **kw: Any):
    return summarize(
        trials, metric=METRIC, goal="maximize", baseline="a", keys=[KEY], history=history, **kw
    ).set_index("cell")


def test_a_study_that_learned_nothing_is_inconclusive_not_no_difference():
    # every trial predicts background only: 12.20 mIoU everywhere
    rows = [trial(c, s, 0.122, [0.732, 0.0, 0.0, 0.0, 0.0, 0.0]) for c in "abc" for s in range(3)]
    summary = summary_of(trials_of(rows))
    for cell in "bc":
        verdict = summary.loc[cell, "verdict"]
        assert verdict.startswith("inconclusive: 3 of 3 seeds predict one class")
        assert "baseline: 3 of 3 seeds predict one class" in verdict
        assert "no detectable difference" not in verdict


def test_an_unconverged_cell_without_a_difference_is_inconclusive():
    rows = [trial(c, s, 0.6 + 0.001 * s, [0.8, 0.5]) for c in "ab" for s in range(3)]
    rising = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    steeper = [0.0, 0.05, 0.2, 0.35, 0.5, 0.6]  # rising faster: the difference still moves
    history = history_of({(c, s): rising if c == "a" else steeper for c in "ab" for s in range(3)})
    summary = summary_of(trials_of(rows), history)
    assert summary.loc["b", "verdict"] == (
        "inconclusive: not converged, baseline not converged; longer training may show a difference"
    )
    assert summary.loc["b", "health"].startswith("not converged (+18.75 points")


def test_a_found_difference_on_rising_curves_says_it_holds_at_this_length():
    base = [0.60, 0.62, 0.61]
    rows = [trial("a", s, v, [0.8, 0.5]) for s, v in enumerate(base)]
    rows += [trial("b", s, v + 0.05 + 0.001 * s, [0.8, 0.5]) for s, v in enumerate(base)]
    rising = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    history = history_of({("b", s): rising for s in range(3)})
    row = summary_of(trials_of(rows), history).loc["b"]
    assert row["verdict"] == "better at this training length (not converged)"


def test_diverged_seeds_make_a_comparison_inconclusive_and_all_diverged_says_so():
    base = [0.60, 0.62, 0.61]
    rows = [trial("a", s, v, [0.8, 0.5]) for s, v in enumerate(base)]
    rows += [trial("b", s, v + 0.01, [0.8, 0.5]) for s, v in enumerate(base[:2])]
    rows += [trial("b", 2, np.nan, [np.nan, np.nan], outcome=Outcome.DIVERGED)]
    rows += [trial("c", s, np.nan, [np.nan, np.nan], outcome=Outcome.DIVERGED) for s in range(3)]
    summary = summary_of(trials_of(rows))
    assert summary.loc["b", "verdict"] == "inconclusive: 1 of 3 seeds diverged"
    assert summary.loc["c", "verdict"] == "diverged (3 of 3 seeds)"


def test_seeds_needed_for_the_effect_that_matters():
    base = [0.60, 0.62, 0.61]
    rows = [trial("a", s, v, [0.8, 0.5]) for s, v in enumerate(base)]
    rows += [
        trial("b", s, v + d, [0.8, 0.5])
        for s, (v, d) in enumerate(zip(base, [0.0, 0.02, 0.01], strict=True))
    ]
    row = summary_of(trials_of(rows), effect=1.0).loc["b"]  # 1 point, spread of d = 0.01
    assert row["seeds_needed"] == 10  # power(1 point, sd 1 point) first reaches 0.8 at n = 10
    assert math.isnan(summary_of(trials_of(rows)).loc["b", "seeds_needed"])


def test_a_cell_that_learned_where_the_baseline_collapsed_keeps_its_verdict():
    # deep supervision rescuing a plain net: the baseline predicts background, the cell learned
    rows = [trial("a", s, 0.122, [0.732, 0.0, 0.0]) for s in range(3)]
    rows += [trial("b", s, 0.30 + 0.01 * s, [0.8, 0.2, 0.1]) for s in range(3)]
    row = summary_of(trials_of(rows)).loc["b"]
    assert row["verdict"] == "better (baseline: 3 of 3 seeds predict one class)"


def test_a_curve_counts_as_still_rising_above_one_point_or_one_percent():
    from ablate.report._health import threshold

    assert threshold("val/mIoU", 0.5) == pytest.approx(0.01)  # 1 point of a fraction metric
    assert threshold("val/loss", 2.0) == pytest.approx(0.02)  # 1 % of a raw metric's value
    trials = trials_of([trial("a", 0, 0.6, [0.8, 0.5]), trial("b", 0, 0.6, [0.8, 0.5])])
    # gains over the last quarter of 0.9 and 1.1 points: flat enough, and still rising
    history = history_of({("a", 0): [0.5, 0.5, 0.5, 0.518], ("b", 0): [0.5, 0.5, 0.5, 0.522]})
    health = cell_health(trials, history, metric=METRIC, goal="maximize", cells=["a", "b"])
    assert health["a"].late_gain * 100 == pytest.approx(0.9, abs=0.01)
    assert health["b"].late_gain * 100 == pytest.approx(1.1, abs=0.01)
    assert (health["a"].converged, health["b"].converged) == (True, False)
