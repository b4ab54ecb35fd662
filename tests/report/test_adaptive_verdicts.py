"""Adaptive seeds: the sequential test decides a comparison, and the caveats of the comparison
stay in its verdict (summary.csv, report.md) as they do with a fixed number of seeds."""

from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import create_trial

from ablate.report import write_report
from ablate.study import Outcome, Queue, TrialResult, _record
from ablate.study_file import load_study

STUDY = """
name: adaptive
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
sweep:
  variants:
    none: {loss.aux.weight: 0.0}
    trick: {loss.aux.weight: 0.4}
  seeds: {start: 2, max: 4, step: 2}
baseline: none
"""
NOISE = [0.0, 0.004, -0.003, 0.001]  # by seed, shared by both cells
FLAT = [-0.1, -0.01, 0.0, 0.0, 0.0, 0.0]  # learned, then settled (offsets from the final value)
RISING = [-0.25, -0.2, -0.15, -0.1, -0.05, 0.0]  # +7.5 points over the last quarter
TWO = {"val/iou/bg": 0.9, "val/iou/a": 0.4}
ONE = {"val/iou/bg": 0.73, "val/iou/a": 0.0}  # background everywhere: collapsed


def _report(tmp_path: Path, curve: Callable[[str], list[float]], ious: Callable[[str], dict]):
    """Both cells trained on all 4 seeds, the trick 3 points above the baseline on each: the
    sequential test says "better" at its first look."""
    path = tmp_path / "adaptive.yaml"
    path.write_text(STUDY)
    study = load_study(path)
    storage = optuna.create_study(direction="maximize")
    for cell in study.cells:
        for seed, noise in enumerate(NOISE):
            v = 0.6 + noise + (0.03 if cell.name == "trick" else 0.0)
            history = [{"val/mIoU": v + d} for d in curve(cell.name)]
            result = TrialResult(history, {"val/mIoU": v, **ious(cell.name)}, duration_s=1.0)
            attrs = _record.enqueued(cell.name, seed, cell.overrides, 1, sampled=False)
            state, ended = _record.ended(Outcome.COMPLETE, result)
            storage.add_trial(create_trial(state=state, value=v, user_attrs=attrs | ended))
    report = write_report(study, Queue(storage, "memory"), tmp_path / "results")
    assert report.comparison.sequential["trick"].status == "better"
    summary = pd.read_csv(report.folder / "summary.csv").set_index("cell")
    return summary.loc["trick"], (report.folder / "report.md").read_text()


@pytest.mark.parametrize(
    ("curve", "ious", "verdict"),
    [
        (
            lambda cell: RISING if cell == "trick" else FLAT,
            lambda cell: TWO,
            "better at this training length (not converged)",
        ),
        (
            lambda cell: FLAT,
            lambda cell: ONE if cell == "none" else TWO,
            "better (baseline: 4 of 4 seeds predict one class)",
        ),
    ],
    ids=["not-converged", "baseline-collapsed"],
)
def test_a_sequential_verdict_keeps_the_comparison_s_caveat(
    tmp_path: Path, curve: Callable, ious: Callable, verdict: str
) -> None:
    row, text = _report(tmp_path, curve, ious)
    assert row["verdict"] == verdict
    assert "paired t-test rejected at n = 2" in row["stopped"]
    assert f"— {verdict}." in text.split("## Verdicts")[1]
