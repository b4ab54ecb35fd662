"""The report's honesty, end to end: a study really trained by `ablate run` whose models learn
nothing (too high a learning rate: every trial predicts background) must read inconclusive."""

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ablate.cli import app

COLLAPSING = """
name: collapse
description: a learning rate far too high, so every model predicts background only
base:
  data: {name: shapes, num_classes: 4, image_size: [48, 48], train_size: 64, val_size: 32}
  model: {name: pspnet_tiny}
  train: {epochs: 4, batch_size: 16, lr: 0.05, optimizer: sgd}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
  seeds: [0, 1, 2]
metric: {name: val/mIoU, goal: maximize}
baseline: {loss.aux.weight: 0.0}
"""


@pytest.mark.slow
def test_a_trained_study_whose_models_learned_nothing_is_inconclusive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "collapse.yaml").write_text(COLLAPSING)
    result = CliRunner().invoke(app, ["run", "collapse.yaml", "--workers", "2"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "results" / "collapse"
    trials = pd.read_csv(folder / "trials.csv")
    assert list(trials["state"]) == ["COMPLETE"] * 6
    assert trials["val/mIoU"].nunique() == 1  # the same background-only score everywhere
    summary = pd.read_csv(folder / "summary.csv").set_index("cell")
    assert summary["collapsed"].tolist() == [3, 3]
    verdict = summary.loc["aux.weight=0.4", "verdict"]
    assert verdict.startswith("inconclusive: 3 of 3 seeds predict one class")
    text = (folder / "report.md").read_text()
    assert "**The models did not learn: all 6 completed trials predict one class.**" in text
    assert "no detectable difference" not in text
    assert "health: 2 cell(s) failed a check" in result.output
