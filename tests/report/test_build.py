"""write_report from storage alone: trials made by hand in an in-memory Optuna study."""

from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import create_trial

from ablate.report import write_report
from ablate.report._build import aux_weight_series, trials_table
from ablate.spec import load_study
from ablate.study import Outcome, Queue, TrialResult, _record

STUDY = """
name: two_keys
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4], loss.aux.schedule: [constant, linear]}
  seeds: [0, 1, 2]
baseline: {loss.aux.weight: 0.0, loss.aux.schedule: constant}
"""


def _study(tmp_path: Path, text: str = STUDY):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_study(path)


def _storage(study, values: dict[tuple[str, int], float], failed=()) -> Queue:
    """Ended trials as a worker stores them (through the record's own writers)."""
    ostudy = optuna.create_study(direction="maximize")
    for cell in study.cells:
        for seed in study.spec.sweep.seeds:
            attrs = _record.enqueued(cell.name, seed, cell.overrides, 1, sampled=False)
            if (cell.name, seed) in failed:
                state, ended = _record.ended(Outcome.FAILED, error="RuntimeError: boom")
                ostudy.add_trial(create_trial(state=state, user_attrs=attrs | ended))
                continue
            v = values[(cell.name, seed)]
            history = [
                {"train/loss/ce": 1.0, "val/mIoU": v / 2},
                {"train/loss/ce": 0.5, "val/mIoU": v},
            ]
            result = TrialResult(history, {"val/mIoU": v, "val/iou/a": v}, duration_s=1.5)
            state, ended = _record.ended(Outcome.COMPLETE, result)
            ostudy.add_trial(create_trial(state=state, value=v, user_attrs=attrs | ended))
    return Queue(ostudy, "memory")


def test_report_from_storage_has_tables_plots_latex_and_two_way_anova(tmp_path: Path) -> None:
    study = _study(tmp_path)
    base = {0: 0.50, 1: 0.52, 2: 0.51}
    values = {
        (c.name, s): base[s]
        + 0.05 * c.overrides["loss.aux.weight"] * (s + 1) / 2
        + (0.01 if c.overrides["loss.aux.schedule"] == "linear" else 0.0)
        for c in study.cells
        for s in (0, 1, 2)
    }
    report = write_report(study, _storage(study, values), tmp_path / "results")
    folder = tmp_path / "results" / "two_keys"
    assert {p.name for p in report.files} >= {
        "trials.csv",
        "summary.csv",
        "report.md",
        "table.tex",
        "diff_heatmap.png",
        "metric_vs_cell.png",
        "aux_weight.png",
        "per_class_diff.png",
        "training_curves.png",
    }
    summary = pd.read_csv(folder / "summary.csv")
    row = summary.set_index("cell").loc["aux.weight=0.4,aux.schedule=linear"]
    assert row["diff"] == pytest.approx(0.01 + 0.05 * 0.4 * (0.5 + 1 + 1.5) / 3)
    text = (folder / "report.md").read_text()
    assert "## Two-way table" in text and "interaction: F = " in text
    assert "\\toprule" in (folder / "table.tex").read_text()


def test_missing_cells_are_shown_as_missing(tmp_path: Path) -> None:
    study = _study(tmp_path)
    gone = {(c.name, s) for c in study.cells[1:2] for s in (0, 1, 2)}
    values = {(c.name, s): 0.5 for c in study.cells for s in (0, 1, 2)}
    report = write_report(study, _storage(study, values, failed=gone), tmp_path / "r")
    row = report.summary.set_index("cell").loc[study.cells[1].name]
    assert row["n"] == 0 and row["verdict"] == "missing"
    assert set(trials_table(_storage(study, values, failed=gone).records(), study)["state"]) == {
        "COMPLETE",
        "FAIL",
    }


def test_aux_weight_series_follows_each_cells_schedule(tmp_path: Path) -> None:
    study = _study(tmp_path)
    series = aux_weight_series(study, [c.name for c in study.cells], points=5)
    linear = series[series["cell"] == "aux.weight=0.4,aux.schedule=linear"]
    assert list(linear["weight"]) == pytest.approx([0.4, 0.3, 0.2, 0.1, 0.0])
    constant_only = STUDY.replace("[constant, linear]", "[constant]").replace(
        "loss.aux.schedule: constant}", "loss.aux.schedule: constant}"
    )
    only = _study(tmp_path, constant_only)
    assert aux_weight_series(only, [c.name for c in only.cells]).empty


def test_html_from_the_study_file_is_shown_as_text_in_report_html(tmp_path: Path) -> None:
    text = STUDY.replace(
        "name: two_keys\n",
        "name: two_keys\ndescription: '<script>alert(1)</script> & <b>bold</b>'\n",
    )
    study = _study(tmp_path, text)
    values = {(c.name, s): 0.5 + 0.01 * s for c in study.cells for s in study.spec.sweep.seeds}
    report = write_report(study, _storage(study, values), tmp_path / "results")
    page = (report.folder / "report.html").read_text()
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "<table>" in page and "<img" in page  # the report's own markdown still renders
