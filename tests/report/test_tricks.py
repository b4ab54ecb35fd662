"""A tricks design's report: the paper-style table per design, cumulative step gains with
their running total, and factorial effects checked against their definitions by hand."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ablate.report import write_report
from tests.report.test_build import FLAT, TWO_CLASSES, _storage, _study

TRICKS = """
name: tricks
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
  loss: {aux: {weight: 0.0}}
sweep:
  tricks:
    aux: {loss.aux.weight: 0.4}
    lovasz: {loss.lovasz: 0.5}
  design: DESIGN
  seeds: [0, 1, 2, 3]
"""
NOISE = {0: 0.0, 1: 0.01, 2: -0.008, 3: 0.003}  # shared by every cell of a seed
WOBBLE = {0: 0.001, 1: -0.002, 2: 0.0015, 3: -0.0005}  # per cell, so differences vary


def _values(study, effect) -> dict[tuple[str, int], float]:
    return {
        (c.name, s): 0.5 + effect(c.name) + NOISE[s] + WOBBLE[s] * (i + 1)
        for i, c in enumerate(study.cells)
        for s in range(4)
    }


def test_factorial_effects_are_the_definitions_computed_by_hand(tmp_path: Path) -> None:
    study = _study(tmp_path, TRICKS.replace("DESIGN", "factorial"))
    truth = {"baseline": 0.0, "+aux": 0.02, "+lovasz": 0.01, "+aux+lovasz": 0.05}
    values = _values(study, truth.__getitem__)
    report = write_report(
        study, _storage(study, values, curve=FLAT, ious=TWO_CLASSES), tmp_path / "r"
    )
    effects = pd.read_csv(report.folder / "effects.csv").set_index("effect")

    def y(cell: str) -> np.ndarray:
        return np.array([values[(cell, s)] for s in range(4)])

    # Box, Hunter & Hunter: main effect = mean(with) − mean(without); interaction = half the
    # change of one effect when the other is added
    aux = (y("+aux") + y("+aux+lovasz")) / 2 - (y("baseline") + y("+lovasz")) / 2
    both = ((y("+aux+lovasz") - y("+lovasz")) - (y("+aux") - y("baseline"))) / 2
    assert effects.loc["aux", "estimate"] == pytest.approx(aux.mean())
    assert effects.loc["aux × lovasz", "estimate"] == pytest.approx(both.mean())
    assert both.mean() == pytest.approx(0.01, abs=0.004)  # 0.05 − 0.02 − 0.01 = 0.02, halved
    half = 3.182446305284263 * aux.std(ddof=1) / 2  # t(0.975, 3) · sd / √4
    assert effects.loc["aux", "ci_low"] == pytest.approx(aux.mean() - half)
    assert effects.loc["aux", "kind"] == "main effect" and effects.loc["aux", "n"] == 4
    text = (report.folder / "report.md").read_text()
    assert "## Factorial effects" in text and "| aux × lovasz | +" in text
    assert "| aux | lovasz | mIoU (mean ± std, n) | Δ vs baseline [95% CI], points |" in text
    assert "| ✓ | ✓ | " in text  # the row with both tricks


def test_cumulative_rows_are_step_gains_with_the_running_total(tmp_path: Path) -> None:
    study = _study(tmp_path, TRICKS.replace("DESIGN", "cumulative"))
    truth = {"baseline": 0.0, "+aux": 0.03, "+aux+lovasz": 0.04}
    values = _values(study, truth.__getitem__)
    report = write_report(
        study, _storage(study, values, curve=FLAT, ious=TWO_CLASSES), tmp_path / "r"
    )
    summary = pd.read_csv(report.folder / "summary.csv").set_index("cell")
    step = np.mean([values[("+aux+lovasz", s)] - values[("+aux", s)] for s in range(4)])
    assert summary.loc["+aux+lovasz", "diff"] == pytest.approx(step)
    assert summary.loc["+aux+lovasz", "reference"] == "+aux"
    assert summary.loc["+aux", "reference"] == "baseline"
    text = (report.folder / "report.md").read_text()
    assert "## Difference from the row above" in text
    assert "running total vs baseline [95% CI], points" in text
    total = np.mean([values[("+aux+lovasz", s)] - values[("baseline", s)] for s in range(4)])
    row = next(line for line in text.splitlines() if line.startswith("| ✓ | ✓ |"))
    assert f"| {total * 100:+.2f} [" in row and f"| {step * 100:+.2f} [" in row
    assert "+aux+lovasz: mIoU " in text and " vs +aux (paired 95% t-interval" in text


def test_leave_one_out_compares_with_all(tmp_path: Path) -> None:
    study = _study(tmp_path, TRICKS.replace("DESIGN", "leave_one_out"))
    truth = {"all": 0.05, "all-aux": 0.01, "all-lovasz": 0.049}
    report = write_report(
        study,
        _storage(study, _values(study, truth.__getitem__), curve=FLAT, ious=TWO_CLASSES),
        tmp_path / "r",
    )
    summary = pd.read_csv(report.folder / "summary.csv").set_index("cell")
    assert summary.loc["all", "verdict"] == "baseline"
    assert summary.loc["all-aux", "diff"] == pytest.approx(-0.04, abs=0.01)
    assert summary.loc["all-aux", "verdict"] == "worse"
    text = (report.folder / "report.md").read_text()
    assert "Each row is compared with all tricks" in text
