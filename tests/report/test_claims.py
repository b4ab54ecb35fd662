"""Declared claims, tested as stated: every number of claims.csv recomputed from trials.csv by
scipy and statsmodels (independent implementations), the verdicts' health rules, and the
claims section opening report.md."""

import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import create_trial
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired
from typer.testing import CliRunner

from ablate.cli import app
from ablate.report import write_report
from ablate.report._claims import claim_p
from ablate.study import Outcome, Queue, TrialResult, _record
from ablate.study_file import load_study

STUDY = """
name: claimed
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4, 1.0]}
  seeds: [0, 1, 2, 3, 4]
baseline: {loss.aux.weight: 0.0}
claims:
  - {a: aux.weight=0.4, b: baseline, test: superior}
  - {a: aux.weight=1, b: aux.weight=0.4, test: noninferior, margin: 1.0}
  - {a: aux.weight=1, b: aux.weight=0.4, test: equivalent, margin: 1.5}
  - {a: aux.weight=1, b: baseline, test: different}
"""
# IoU in [0, 1]: 0.4 beats the baseline by ~3 points; 1.0 is ~0.3 points below 0.4
VALUES = {
    "aux.weight=0": [0.50, 0.52, 0.49, 0.51, 0.50],
    "aux.weight=0.4": [0.53, 0.55, 0.52, 0.545, 0.53],
    "aux.weight=1": [0.527, 0.545, 0.518, 0.54, 0.527],
}


def _study(tmp_path: Path, text: str = STUDY):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_study(path)


def _storage(study, values=VALUES, curve=None, collapsed=()) -> Queue:
    """COMPLETE trials as a worker stores them; `collapsed` cells predict one class."""
    ostudy = optuna.create_study(direction="maximize")
    for cell in study.cells:
        for seed, v in enumerate(values[cell.name]):  # seeds 0, 1, …
            attrs = _record.enqueued(cell.name, seed, cell.overrides, 1, sampled=False)
            points = curve(v, cell.name) if curve else [v * 0.98, v * 0.995, v]
            history = [{"val/mIoU": m} for m in points]
            ious = {"val/iou/a": v, "val/iou/b": 0.0 if cell.name in collapsed else v / 2}
            result = TrialResult(history, {"val/mIoU": v, **ious}, duration_s=1.0)
            state, ended = _record.ended(Outcome.COMPLETE, result)
            ostudy.add_trial(create_trial(state=state, value=v, user_attrs=attrs | ended))
    return Queue(ostudy, "memory")


def _recomputed(trials: pd.DataFrame, claims: list[dict], alpha: float = 0.05) -> pd.DataFrame:
    """claims.csv's numbers from trials.csv alone, by scipy and statsmodels."""
    done = trials[trials["state"] == "COMPLETE"]
    wide = done.pivot(index="seed", columns="cell", values="val/mIoU") * 100  # points
    rows = []
    for i, c in enumerate(claims):
        a = {"baseline": "aux.weight=0"}.get(c["a"], c["a"])
        b = {"baseline": "aux.weight=0"}.get(c["b"], c["b"])
        both = wide[[a, b]].dropna()
        x, y = both[a].to_numpy(), both[b].to_numpy()
        d = x - y
        m = c.get("margin") or 0.0
        if c["test"] == "superior":
            p = stats.ttest_rel(x, y + m, alternative="greater").pvalue
        elif c["test"] == "noninferior":
            p = stats.ttest_rel(x, y - m, alternative="greater").pvalue
        elif c["test"] == "equivalent":
            p = ttost_paired(x, y, -m, m)[0]
        else:
            p = stats.ttest_rel(x, y).pvalue
        level = 1 - alpha if c["test"] == "different" else 1 - 2 * alpha
        low, high = stats.t.interval(level, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        rows.append(
            {"claim": i, "n": len(d), "diff": d.mean(), "ci_low": low, "ci_high": high, "p": p}
        )
    out = pd.DataFrame(rows)
    out["p_adj"] = multipletests(out["p"], method="holm")[1]
    return out


def test_every_number_of_claims_csv_is_recomputed_from_trials_csv(tmp_path: Path) -> None:
    study = _study(tmp_path)
    write_report(study, _storage(study), tmp_path)
    folder = tmp_path / "claimed"
    got = pd.read_csv(folder / "claims.csv")
    assert list(got.columns) == [
        "claim",
        "a",
        "b",
        "test",
        "margin",
        "n",
        "diff",
        "ci_low",
        "ci_high",
        "p",
        "p_adj",
        "verdict",
    ]
    want = _recomputed(pd.read_csv(folder / "trials.csv"), study.spec.model_dump()["claims"])
    for column in ("claim", "n"):
        assert got[column].tolist() == want[column].tolist()
    for column in ("diff", "ci_low", "ci_high", "p", "p_adj"):
        np.testing.assert_allclose(got[column], want[column], rtol=1e-9, atol=1e-12)
    assert got["a"].tolist() == ["aux.weight=0.4", "aux.weight=1", "aux.weight=1", "aux.weight=1"]
    assert got["b"].tolist() == ["aux.weight=0", "aux.weight=0.4", "aux.weight=0.4", "aux.weight=0"]
    assert got["margin"].tolist()[:3] == [0.0, 1.0, 1.5] and math.isnan(got["margin"][3])
    supported = (want["p_adj"] < 0.05).map({True: "supported", False: "not supported"})
    assert got["verdict"].tolist() == supported.tolist()
    assert got["verdict"].tolist()[:2] == ["supported", "supported"]  # the data were built so


def test_the_claims_open_report_md_before_the_per_cell_sections(tmp_path: Path) -> None:
    study = _study(tmp_path)
    write_report(study, _storage(study), tmp_path)
    text = (tmp_path / "claimed" / "report.md").read_text()
    claims, health = text.index("## Claims"), text.index("## Health")
    assert claims < health < text.index("## Verdicts")
    section = text[claims:health]
    assert "Holm-corrected over the 4 claim(s) at α = 0.05" in section
    assert (
        "| 1 | aux.weight=1 is at most 1 point worse than aux.weight=0.4 | noninferior | 5 |"
        in (section)
    )
    assert "are exploratory" in section
    assert "- seeds: 5 per cell; no plan was recorded with the study" in section  # in memory


def test_a_study_without_claims_says_its_comparisons_are_exploratory(tmp_path: Path) -> None:
    text = STUDY.split("claims:")[0]
    study = _study(tmp_path, text)
    write_report(study, _storage(study), tmp_path)
    folder = tmp_path / "claimed"
    assert not (folder / "claims.csv").exists()
    report = (folder / "report.md").read_text()
    assert "No claims were declared in the study file" in report
    assert "every comparison below is exploratory" in report


def test_a_collapsed_cell_makes_an_equivalence_claim_inconclusive_not_supported(
    tmp_path: Path,
) -> None:
    """'as good as a model that learned nothing' says nothing; 'beats a model that learned
    nothing' is a finding (a trick that rescued training), said with the collapse beside it."""
    study = _study(tmp_path)
    write_report(study, _storage(study, collapsed=("aux.weight=0",)), tmp_path)
    got = pd.read_csv(tmp_path / "claimed" / "claims.csv")["verdict"].tolist()
    assert got[0] == "supported (aux.weight=0: 5 of 5 seeds predict one class)"
    assert got[3] == "supported (aux.weight=0: 5 of 5 seeds predict one class)"  # different

    write_report(study, _storage(study, collapsed=("aux.weight=0.4",)), tmp_path)
    got = pd.read_csv(tmp_path / "claimed" / "claims.csv")["verdict"].tolist()
    assert got[0] == "inconclusive: aux.weight=0.4: 5 of 5 seeds predict one class"
    assert got[1].startswith("inconclusive: aux.weight=0.4: 5 of 5 seeds predict one class")
    assert got[2].startswith("inconclusive: aux.weight=0.4: 5 of 5 seeds predict one class")


def test_a_claim_whose_difference_still_moves_is_inconclusive_unless_supported(
    tmp_path: Path,
) -> None:
    study = _study(tmp_path, STUDY.replace("margin: 1.5", "margin: 0.2"))  # too tight to show
    write_report(study, _storage(study), tmp_path)
    flat = pd.read_csv(tmp_path / "claimed" / "claims.csv")
    assert flat.loc[2, "p_adj"] > 0.05 and flat.loc[2, "verdict"] == "not supported"

    # every cell still rising by 10 points a quarter, together: their differences had settled
    together = lambda v, cell: [v - 0.30, v - 0.20, v - 0.10, v]  # noqa: E731
    write_report(study, _storage(study, curve=together), tmp_path)
    got = pd.read_csv(tmp_path / "claimed" / "claims.csv")
    assert got["verdict"].tolist() == flat["verdict"].tolist()

    # aux.weight=1 rising faster than the others at the end: its differences still move
    def apart(v: float, cell: str) -> list[float]:
        step = 0.15 if cell == "aux.weight=1" else 0.10
        return [v - 3 * step, v - 2 * step, v - step, v]

    write_report(study, _storage(study, curve=apart), tmp_path)
    got = pd.read_csv(tmp_path / "claimed" / "claims.csv")
    assert got.loc[0, "verdict"] == "supported"  # 0.4 vs the baseline: rising together
    assert got.loc[2, "verdict"] == (
        "inconclusive: difference aux.weight=1 − aux.weight=0.4 still moving; longer training "
        "may change it"
    )
    assert got.loc[3, "verdict"] == (
        "supported (at this training length: difference aux.weight=1 − aux.weight=0 still moving)"
    )


@pytest.mark.parametrize(
    ("test", "margin", "shift", "p"),
    [
        ("superior", 0.0, 0.01, 0.0),
        ("superior", 0.01, 0.01, 1.0),  # exactly at the margin: not beyond it
        ("noninferior", 0.01, -0.005, 0.0),
        ("noninferior", 0.01, -0.02, 1.0),
        ("equivalent", 0.01, 0.005, 0.0),
        ("equivalent", 0.01, 0.01, 1.0),
        ("different", 0.0, -0.01, 0.0),
        ("different", 0.0, 0.0, 1.0),
    ],
)
def test_identical_differences_are_the_limit_of_a_vanishing_spread(
    test: str, margin: float, shift: float, p: float
) -> None:
    assert claim_p(np.full(4, shift), test, margin) == p


def test_a_claim_naming_no_cell_is_refused_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        STUDY.replace("a: aux.weight=0.4, b: baseline", "a: aux.weight=0.5, b: baseline")
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    said = result.output.replace("\n", "")
    assert "claims.0.a = 'aux.weight=0.5': no such cell (did you mean 'aux.weight=0.4'?)" in said
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("claim", "said"),
    [
        ("{a: aux.weight=1, b: baseline, test: noninferior}", "needs a margin above 0"),
        ("{a: aux.weight=1, b: baseline, test: different, margin: 1}", "takes no margin"),
        ("{a: aux.weight=1, b: baseline, test: better}", "claims.0.test"),
        ("{a: aux.weight=0, b: baseline, test: superior}", "are the same cell"),
    ],
)
def test_malformed_claims_are_refused_naming_the_claim(
    tmp_path: Path, claim: str, said: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(STUDY.split("claims:")[0] + f"claims:\n  - {claim}\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert said in result.output.replace("\n", " ").replace("  ", " ")
    assert "Traceback" not in result.output


def test_validate_lists_the_claims(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(STUDY)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "claim 0: aux.weight=0.4 beats aux.weight=0 (superior: one-sided paired t-test)" in (
        result.output
    )
    assert "claim 3: aux.weight=1 and aux.weight=0 differ" in result.output


TINY = """
name: tiny_claims
base:
  data: {name: shapes, num_classes: 3, image_size: [32, 32], train_size: 96, val_size: 16}
  model: {name: pspnet_tiny}
  train: {epochs: 3, batch_size: 16, lr: 0.005, optimizer: adamw}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
  seeds: [0, 1, 2]
baseline: {loss.aux.weight: 0.0}
claims:
  - {a: aux.weight=0.4, b: baseline, test: noninferior, margin: 2.0}
  - {a: aux.weight=0.4, b: baseline, test: different}
"""


@pytest.mark.slow
def test_a_tiny_trained_study_writes_claims_that_trials_csv_reproduces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    result = CliRunner().invoke(app, ["run", "tiny.yaml", "--workers", "2"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "results" / "tiny_claims"
    got = pd.read_csv(folder / "claims.csv")
    claims = load_study(tmp_path / "tiny.yaml").spec.model_dump()["claims"]
    want = _recomputed(pd.read_csv(folder / "trials.csv"), claims)
    assert got["n"].tolist() == [3, 3]
    assert (got["ci_low"] < got["ci_high"]).all()  # the models learned: seeds differ
    for column in ("diff", "ci_low", "ci_high", "p", "p_adj"):
        np.testing.assert_allclose(got[column], want[column], rtol=1e-9, atol=1e-12)
    report = (folder / "report.md").read_text()
    assert report.index("## Claims") < report.index("## Health")
    assert "- seeds: 3 per cell, fixed before any trial had a result" in report

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny_claims")
    tagged = [
        run.data.tags
        for run in client.search_runs([experiment.experiment_id])
        if "ablate.claim.0" in run.data.tags
    ]
    assert len(tagged) == 1  # the study run
    assert [tagged[0]["ablate.claim.0"], tagged[0]["ablate.claim.1"]] == got["verdict"].tolist()


ADAPTIVE = """
name: claimed
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
  seeds: {start: 3, max: 5, step: 2}
baseline: {loss.aux.weight: 0.0}
claims:
  - {a: aux.weight=0.4, b: baseline, test: superior}
"""


def test_an_adaptive_study_s_claim_is_decided_by_its_sequential_test(tmp_path: Path) -> None:
    """No fixed-n p after optional stopping: the verdict, n and interval are the sequential
    test's, at the look where it stopped."""
    path = tmp_path / "s.yaml"
    path.write_text(ADAPTIVE)
    study = load_study(path)
    values = {
        "aux.weight=0": [0.50, 0.52, 0.49, 0.51, 0.50],
        "aux.weight=0.4": [0.55, 0.575, 0.54, 0.56, 0.552],
    }
    queue = _storage(study, values)
    decision = study.design.comparison(queue.records(), queue.attrs).claims[0]
    assert decision.status == "supported"

    write_report(study, queue, tmp_path)
    row = pd.read_csv(tmp_path / "claimed" / "claims.csv").iloc[0]
    assert row["verdict"] == "supported" and row["n"] == decision.n
    assert math.isnan(row["p"]) and math.isnan(row["p_adj"])
    assert row["ci_low"] == pytest.approx(decision.ci_low * 100)
    assert row["ci_high"] == pytest.approx(decision.ci_high * 100)
    assert row["diff"] == pytest.approx(decision.diff * 100)
    text = (tmp_path / "claimed" / "report.md").read_text()
    assert "decided by the sequential test of adaptive seeds" in text
    assert "the interval is the repeated confidence interval" in text
    assert "paired t-interval, whose bound" not in text  # no fixed-n interval is claimed
    assert f"claim 0: {decision.reason}" in text


def test_better_follows_the_goal_for_a_metric_to_minimize(tmp_path: Path) -> None:
    """With goal minimize the higher cell is the worse one: 'aux.weight=0.4 beats the baseline'
    is not supported, and its p is the upper tail's; the interval stays a − b as measured."""
    study = _study(tmp_path, STUDY.replace("baseline: {", "metric: {goal: minimize}\nbaseline: {"))
    write_report(study, _storage(study), tmp_path)
    got = pd.read_csv(tmp_path / "claimed" / "claims.csv")
    x = np.array(VALUES["aux.weight=0.4"]) * 100
    y = np.array(VALUES["aux.weight=0"]) * 100
    assert got.loc[0, "p"] == pytest.approx(stats.ttest_rel(x, y, alternative="less").pvalue)
    assert got.loc[0, "p"] > 0.99 and got.loc[0, "verdict"] == "not supported"
    assert got.loc[0, "diff"] == pytest.approx((x - y).mean())  # not flipped
    # "1.0 is at most 1 point worse than 0.4": worse is higher now; 1.0 is ~0.3 lower: supported
    assert got.loc[1, "verdict"] == "supported"


def test_an_adaptive_claim_still_waiting_for_seeds_is_inconclusive(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(ADAPTIVE)
    study = load_study(path)
    values = {"aux.weight=0": [0.50, 0.52, 0.49], "aux.weight=0.4": [0.52, 0.53, 0.49]}
    queue = _storage(study, values)
    assert study.design.comparison(queue.records(), queue.attrs).claims[0].status == "undecided"
    write_report(study, queue, tmp_path)
    row = pd.read_csv(tmp_path / "claimed" / "claims.csv").iloc[0]
    assert row["verdict"] == "inconclusive: undecided: more seeds are queued"
