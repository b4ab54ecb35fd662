"""docs/studies_table.py: the README's "Shipped studies" table, rendered from a results folder
written by hand with known numbers.

The exact rows are checked on study files written here (a study shaped like the shipped Lovász
one, and a one-key grid), not on studies/*.yaml, whose cells and descriptions change as the
studies are tuned; every shipped study is checked to load and render its "not run" row.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

ROOT = Path(__file__).parents[1]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("studies_table", ROOT / "docs/studies_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


st = _load_script()

STUDY = """\
name: toy
description: >
  Lovász-Softmax (Berman et al. CVPR 2018) optimises a surrogate of the Jaccard index. Claim
  tested: Lovász (e.g. at a weight of 0.5) raises mIoU over cross-entropy | alone. It is cheap.
base:
  data: {name: shapes, num_classes: 6, image_size: [32, 32], train_size: 16, val_size: 8}
  model: {name: pspnet_tiny}
  train: {epochs: 1, batch_size: 4}
sweep:
  variants:
    ce:          {loss.lovasz: 0.0}
    ce_lovasz:   {loss.lovasz: 0.5}
    ohem_lovasz: {loss.lovasz: 0.5, loss.ce.ohem_thresh: 0.7}
  seeds: [0, 1, 2]
metric: {name: val/mIoU, goal: maximize}
baseline: ce
"""

# diff, its paired interval and the MDE as summary.csv stores them (fractions of mIoU)
SUMMARY = """\
cell,loss.lovasz,loss.ce.ohem_thresh,n,mean,diff,diff_ci_low,diff_ci_high,n_pairs,p_holm,mde,\
collapsed,late_gain,converged,health,verdict,test_mean,test_diff
ce,0.0,,3,0.3579,,,,3,,,0,0.0150,False,not converged (+1.50 points over the last quarter),\
baseline,0.350,
ce_lovasz,0.5,,3,0.3961,0.0382,0.0077,0.0686,3,0.045,0.0567,0,0.0040,True,,better,0.381,0.031
ohem_lovasz,0.5,0.7,2,0.3539,-0.004,-0.012,0.004,2,0.40,0.019,0,0.0030,True,,\
no detectable difference at n = 2 (could detect ≥ 1.90 points),0.348,-0.002
"""

REPORT = """\
# toy

- design: 3 cells × 3 seeds; baseline: `ce`
- time: 7.3 min from the first trial's start to the last one's end; 13.9 min of training summed
"""

CLAIM = "Lovász (e.g. at a weight of 0.5) raises mIoU over cross-entropy \\| alone."
DESIGN = "3 cells × 3 seeds, named variants, baseline `ce`, judged on `val/mIoU`"


@pytest.fixture
def study(tmp_path: Path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(STUDY, encoding="utf-8")
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    (folder / "toy").mkdir(parents=True)
    (folder / "toy" / "summary.csv").write_text(SUMMARY, encoding="utf-8")
    (folder / "toy" / "report.md").write_text(REPORT, encoding="utf-8")
    (folder / "toy" / "trials.csv").write_text("number,state,cell,seed\n0,COMPLETE,a,0\n")
    return folder


def _summary(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_the_claim_is_the_sentence_after_its_label() -> None:
    text = (
        "Lovász (Berman et al. CVPR 2018) does X. Claim tested: a small λ (cf. Wen et al. 2016)"
        " helps. Rest."
    )
    assert st.claim_of(text) == "A small λ (cf. Wen et al. 2016) helps."


def test_without_a_label_the_claim_is_the_first_sentence() -> None:
    text = "Search rather than ablate: TPE over lr (e.g. 0.02), 12 configurations.\n  The best 2."
    assert (
        st.claim_of(text)
        == "Search rather than ablate: TPE over lr (e.g. 0.02), 12 configurations."
    )


def test_a_run_study_gives_each_cell_its_interval_mde_and_test_difference(
    study: Path, results: Path
) -> None:
    row = st.study_row(study, results)
    assert row == (
        f"| `toy` | {CLAIM} | {DESIGN} | 2 of 3 | 7.3 min | "
        "ce_lovasz +3.8 [+0.8, +6.9], MDE 5.7, test +3.1<br>"
        "ohem_lovasz −0.4 [−1.2, +0.4], MDE 1.9, test −0.2 | "
        "effect found (1 of 2 cells better); no detectable difference in 1 of 2 cells, "
        "could detect ≥ 1.9 points; not converged (1 of 3 cells) |"
    )


def test_a_study_without_results_says_not_run(study: Path, tmp_path: Path) -> None:
    row = st.study_row(study, tmp_path / "nothing")
    assert row == f"| `toy` | {CLAIM} | {DESIGN} | 3 | – | not run | – |"


@pytest.mark.parametrize("path", st.shipped_studies(), ids=lambda p: p.stem)
def test_every_shipped_study_renders_a_row(path: Path, tmp_path: Path) -> None:
    row = st.study_row(path, tmp_path)
    assert row.startswith(f"| `{path.stem}` | ")
    assert row.endswith(" | – | not run | – |")
    assert row.count(" | ") == 6  # seven columns: no unescaped | inside a cell


def test_results_with_cells_the_study_no_longer_has_say_so(study: Path, results: Path) -> None:
    summary = pd.read_csv(results / "toy" / "summary.csv")
    summary.loc[2, "cell"] = "ohem_only"
    summary.to_csv(results / "toy" / "summary.csv", index=False)
    row = st.study_row(study, results)
    assert row.endswith("; results from an earlier version of the study file (rerun it) |")


def test_all_quiet_cells_read_as_no_detectable_difference_with_the_largest_mde() -> None:
    summary = _summary(
        [
            {"cell": "b", "health": "", "verdict": "baseline", "mde": math.nan},
            {
                "cell": "x",
                "health": "",
                "verdict": "no detectable difference at n = 3",
                "mde": 0.012,
            },
            {
                "cell": "y",
                "health": "",
                "verdict": "no detectable difference at n = 3",
                "mde": 0.019,
            },
        ]
    )
    assert (
        st.reading(summary, "b", "val/mIoU")
        == "no detectable difference, could detect ≥ 1.9 points"
    )


def test_inconclusive_cells_give_each_reason_once() -> None:
    why = (
        "inconclusive: not converged, baseline not converged; longer training may show a difference"
    )
    summary = _summary(
        [
            {"cell": "b", "converged": False, "collapsed": 0, "verdict": "baseline"},
            {"cell": "x", "converged": False, "collapsed": 0, "verdict": why},
            {"cell": "y", "converged": True, "collapsed": 3, "verdict": "worse"},
        ]
    )
    assert st.reading(summary, "b", "val/mIoU") == (
        "effect found (1 of 2 cells worse); inconclusive in 1 of 2 cells: not converged, "
        "baseline not converged; longer training may show a difference; collapsed (1 of 3 cells)"
    )


def test_a_loss_metric_is_shown_in_its_own_unit() -> None:
    assert st.shown(-0.01234, "val/loss") == "−0.0123"
    assert st.shown(0.01234, "val/mIoU", signed=False) == "1.2"


def test_write_replaces_only_the_block_between_the_markers(
    study: Path, results: Path, tmp_path: Path
) -> None:
    readme = tmp_path / "README.md"
    original = (ROOT / "README.md").read_text(encoding="utf-8")
    readme.write_text(original, encoding="utf-8")
    args = ["--write", "--readme", str(readme), "--results", str(results), str(study)]
    assert st.main(args) == 0
    written = readme.read_text(encoding="utf-8")
    head, rest = written.split(st.START + "\n", 1)
    block, tail = rest.split("\n" + st.END, 1)
    assert head == original.split(st.START + "\n", 1)[0]
    assert tail == original.split("\n" + st.END, 1)[1]
    assert block == st.table([study], results)
    assert block.splitlines()[2].startswith("| `toy` |")


def test_write_without_markers_fails_and_leaves_the_file(
    study: Path, results: Path, tmp_path: Path
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# a README\n\n| study |\n", encoding="utf-8")
    args = ["--write", "--readme", str(readme), "--results", str(results), str(study)]
    assert st.main(args) == 1
    assert readme.read_text(encoding="utf-8") == "# a README\n\n| study |\n"


def test_record_keeps_a_finished_run_and_leaves_studies_without_one(
    study: Path, results: Path, tmp_path: Path
) -> None:
    records = tmp_path / "records"
    (records / "other").mkdir(parents=True)
    (records / "other" / "summary.csv").write_text("kept", encoding="utf-8")
    assert st.main(["--record", str(results), "--results", str(records), str(study)]) == 0
    for name in (*st.RECORD_FILES, *st.RECOMPUTE_FILES):
        copied = (records / "toy" / name).read_text(encoding="utf-8")
        assert copied == (results / "toy" / name).read_text(encoding="utf-8")
    assert (records / "other" / "summary.csv").read_text(encoding="utf-8") == "kept"
    assert st.study_row(study, records) == st.study_row(study, results)
    assert not (records / "toy" / "claims.csv").exists()  # the run declared none


def test_record_keeps_the_claims_a_run_wrote_and_drops_those_it_did_not(
    study: Path, results: Path, tmp_path: Path
) -> None:
    records = tmp_path / "records"
    (results / "toy" / "claims.csv").write_text("claim,verdict\n0,supported\n")
    st.record([study], results, records)
    assert (records / "toy" / "claims.csv").read_text() == "claim,verdict\n0,supported\n"
    (results / "toy" / "claims.csv").unlink()  # a later run of the study without its claims
    st.record([study], results, records)
    assert not (records / "toy" / "claims.csv").exists()


def test_a_run_without_its_trials_is_not_recorded(
    study: Path, results: Path, tmp_path: Path
) -> None:
    (results / "toy" / "trials.csv").unlink()
    assert st.record([study], results, tmp_path / "records") == []


def test_a_study_without_a_finished_run_is_not_recorded(study: Path, tmp_path: Path) -> None:
    (tmp_path / "runs" / "toy").mkdir(parents=True)
    (tmp_path / "runs" / "toy" / "summary.csv").write_text(SUMMARY, encoding="utf-8")  # no report
    assert st.record([study], tmp_path / "runs", tmp_path / "records") == []
    assert not (tmp_path / "records").exists()


def test_the_readme_table_is_the_one_the_committed_records_give() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(st.START + "\n", 1)[1].split("\n" + st.END, 1)[0]
    assert block == st.table(st.shipped_studies(), st.RECORDS)
