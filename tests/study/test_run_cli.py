"""End to end through the CLI: a 2-cell × 2-seed study in a temporary directory."""

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ablate.cli import app
from ablate.study import MAX_LOST

STUDY = """
name: tiny
description: two aux weights, two seeds
base:
  data: {num_classes: 4, image_size: [32, 32], train_size: 16, val_size: 8}
  model: {name: pspnet_tiny, args: {width: 8}}
  train: {epochs: 2, batch_size: 8, lr: 0.02}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
  seeds: [0, 1]
baseline: {loss.aux.weight: 0.0}
"""


@pytest.fixture()
def study_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(STUDY)
    return tmp_path


def _run(*overrides: str, workers: str = "1"):
    """`ablate run tiny.yaml --workers N --set ...` in-process; the click result."""
    sets = [arg for o in overrides for arg in ("--set", o)]
    return CliRunner().invoke(app, ["run", "tiny.yaml", "--workers", workers, *sets])


def _mlflow_runs(root: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], max_results=100), client


@pytest.mark.slow
def test_run_writes_tables_report_and_the_mlflow_tree_then_resumes(study_dir: Path) -> None:
    runner = CliRunner()
    with_test = ["--set", "base.data.test_size=4"]  # a held-out test split
    result = runner.invoke(app, ["run", "tiny.yaml", "--workers", "1", *with_test])
    assert result.exit_code == 0, result.output

    folder = study_dir / "results" / "tiny"
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 4
    assert set(trials["state"]) == {"COMPLETE"}
    assert sorted(zip(trials["cell"], trials["seed"], strict=True)) == [
        ("aux.weight=0", 0),
        ("aux.weight=0", 1),
        ("aux.weight=0.4", 0),
        ("aux.weight=0.4", 1),
    ]
    assert {
        "loss.aux.weight",
        "val/mIoU",
        "val/pixel_acc",
        "best/val/mIoU",
        "test/mIoU",
        "duration_s",
        "mlflow_run_id",
    } <= set(trials.columns)
    assert trials["val/mIoU"].between(0, 1).all()
    assert trials["test/mIoU"].between(0, 1).all()

    summary = pd.read_csv(folder / "summary.csv")
    assert list(summary["cell"]) == ["aux.weight=0", "aux.weight=0.4"]
    assert list(summary["n"]) == [2, 2]
    expected_mean = trials[trials["cell"] == "aux.weight=0.4"]["val/mIoU"].mean()
    assert summary.loc[1, "mean"] == pytest.approx(expected_mean)
    for column in ("std", "ci_low", "ci_high", "diff", "p_value", "p_holm", "verdict", "test_mean"):
        assert column in summary.columns
    report_md = (folder / "report.md").read_text()
    assert report_md.startswith("# tiny")
    assert (
        "## Held-out test split" in report_md
        and "| test/mIoU | Δ vs aux.weight=0 [95% CI] |" in report_md
    )
    assert {p.name for p in (folder / "plots").glob("*.png")} >= {
        "metric_vs_cell.png",
        "training_curves.png",
    }

    runs, client = _mlflow_runs(study_dir)
    by_level: dict[str, list] = {}
    for run in runs:
        by_level.setdefault(run.data.tags["ablate.level"], []).append(run)
    assert {k: len(v) for k, v in by_level.items()} == {"study": 1, "cell": 2, "trial": 4}
    study_id = by_level["study"][0].info.run_id
    cell_ids = {r.info.run_id for r in by_level["cell"]}
    assert all(r.data.tags["mlflow.parentRunId"] == study_id for r in by_level["cell"])
    for run in by_level["trial"]:
        assert run.data.tags["mlflow.parentRunId"] in cell_ids
        assert run.info.status == "FINISHED"
        assert run.data.params["loss.aux.weight"] in ("0.0", "0.4")
        assert run.data.params["train.epochs"] == "2"
        history = client.get_metric_history(run.info.run_id, "val/mIoU")
        assert [m.step for m in history] == [2, 4]  # one axis: iterations (2 per epoch)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "test/mIoU")] == [4]
        assert "train/loss/ce" in run.data.metrics
        assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    aux_runs = [r for r in by_level["trial"] if r.data.params["loss.aux.weight"] == "0.4"]
    for run in aux_runs:  # α_t of every iteration: 2 epochs × 2 steps
        weights = client.get_metric_history(run.info.run_id, "train/aux_weight")
        assert sorted((m.step, m.value) for m in weights) == [
            (i, pytest.approx(0.4)) for i in range(4)
        ]
    assert set(trials["mlflow_run_id"]) == {r.info.run_id for r in by_level["trial"]}
    assert by_level["study"][0].info.status == "FINISHED"
    study_files = {a.path for a in client.list_artifacts(study_id, "report")}
    assert {"report/report.md", "report/summary.csv", "report/trials.csv"} <= study_files
    assert "report/plots/metric_vs_cell.png" in {
        a.path for a in client.list_artifacts(study_id, "report/plots")
    }
    for run in by_level["cell"]:
        cell = client.get_run(run.info.run_id)
        assert cell.info.status == "FINISHED"
        mean = trials[trials["cell"] == run.data.tags["ablate.cell"]]["val/mIoU"].mean()
        assert cell.data.metrics["val/mIoU/mean_pct"] == pytest.approx(100 * mean)
        assert cell.data.metrics["val/mIoU/n"] == 2

    again = runner.invoke(app, ["run", "tiny.yaml", "--workers", "1", *with_test])
    assert again.exit_code == 0, again.output
    assert "All 4 trials of 'tiny' are complete; nothing to train." in again.output
    assert len(pd.read_csv(folder / "trials.csv")) == 4
    runs_after, _ = _mlflow_runs(study_dir)
    assert len(runs_after) == len(runs)

    rebuilt = runner.invoke(app, ["report", "tiny"])  # by name, from storage alone
    assert rebuilt.exit_code == 0, rebuilt.output
    status = runner.invoke(app, ["status", "tiny.yaml"])
    assert status.exit_code == 0 and "COMPLETE 4" in status.output


@pytest.mark.slow
def test_more_seeds_after_a_result_are_refused_and_nothing_is_trained(study_dir: Path) -> None:
    """Seeds raised after a look at the results make a false finding likelier than the test
    says: the plan is fixed once a trial has a result, and the refusal names the remedies."""
    runner = CliRunner()
    save = ["--set", "base.train.save_model=true"]
    first = ["run", "tiny.yaml", "--workers", "1", "--set", "sweep.seeds=[0]", *save]
    assert runner.invoke(app, first).exit_code == 0
    runs, client = _mlflow_runs(study_dir)
    for run in runs:
        if run.data.tags["ablate.level"] == "trial":
            names = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert "model.pt" in names

    second = runner.invoke(app, ["run", "tiny.yaml", "--workers", "1", *save])
    assert second.exit_code == 2, second.output
    said = " ".join(second.output.split())
    assert "under another plan (seeds: [0] -> [0, 1])" in said and "--set name=" in said
    assert "Traceback" not in second.output
    trials = pd.read_csv(study_dir / "results" / "tiny" / "trials.csv")
    assert len(trials) == 2  # nothing trained, nothing rewritten
    assert len(_mlflow_runs(study_dir)[0]) == len(runs)


@pytest.mark.slow
def test_changed_recipe_under_the_same_name_is_refused(study_dir: Path) -> None:
    runner = CliRunner()
    args = ["run", "tiny.yaml", "--workers", "1", "--set", "sweep.seeds=[0]"]
    assert runner.invoke(app, args).exit_code == 0
    changed = runner.invoke(app, [*args, "--set", "base.train.epochs=1"])
    assert changed.exit_code == 2
    assert "train.epochs: 2 -> 1" in changed.output


@pytest.mark.slow
def test_a_crashing_trial_is_retried_then_failed_and_the_study_goes_on(study_dir: Path) -> None:
    result = _run(
        "sweep.seeds=[0]",
        "sweep.grid={model.args.crash: [false, true]}",
        "base.model={name: 'tests.study.crashing_model:build'}",
        "baseline={model.args.crash: false}",
    )
    assert result.exit_code == 1, result.output
    trials = pd.read_csv(study_dir / "results" / "tiny" / "trials.csv")
    crashed = trials[trials["cell"] == "args.crash=true"]
    assert list(crashed["state"]) == ["FAIL"] * 3  # one try and two retries
    assert list(trials[trials["cell"] == "args.crash=false"]["state"]) == ["COMPLETE"]
    runs, _ = _mlflow_runs(study_dir)
    failed = [
        r
        for r in runs
        if r.data.tags.get("ablate.cell") == "args.crash=true"
        and r.data.tags["ablate.level"] == "trial"
    ]
    assert len(failed) == 3 and {r.info.status for r in failed} == {"FAILED"}
    assert "boom on purpose" in failed[0].data.tags["ablate.error"]
    # the study run and the failed cell's run end FAILED, not RUNNING for good; the cell
    # that completed ends FINISHED
    status = {
        (r.data.tags["ablate.level"], r.data.tags.get("ablate.cell", "")): r.info.status
        for r in runs
        if r.data.tags["ablate.level"] != "trial"
    }
    assert status[("study", "")] == "FAILED"
    assert status[("cell", "args.crash=true")] == "FAILED"
    assert status[("cell", "args.crash=false")] == "FINISHED"


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_trial_that_kills_its_own_worker_is_requeued_and_a_replacement_finishes_it(
    study_dir: Path, workers: str
) -> None:
    """One worker: the trial used to run in `ablate run` itself and took it down; two: the run
    ended "failed after retries" while the dead worker's try was still RUNNING."""
    marker = study_dir / "killed-once"
    result = _run(
        "sweep.seeds=[0, 1]",
        "sweep.grid={train.lr: [0.02]}",
        f"base.model={{name: 'tests.study.crashing_model:build_killer', args: {{marker: "
        f"'{marker}'}}}}",
        "baseline={train.lr: 0.02}",
        workers=workers,
    )
    assert marker.exists()  # the first try to train did kill its process
    assert result.exit_code == 0, result.output
    assert re.search(
        r"worker \d died \(killed by SIGKILL\); trial #\d was re-queued", result.output
    )
    assert "starting a replacement" in result.output
    trials = pd.read_csv(study_dir / "results" / "tiny" / "trials.csv")
    assert sorted(trials["state"]) == [
        "COMPLETE",
        "COMPLETE",
        "KILLED",
    ]  # lost once, each done once
    assert sorted(trials[trials["state"] == "COMPLETE"]["seed"]) == [0, 1]
    runs, _ = _mlflow_runs(study_dir)
    trial_runs = sorted(r.info.status for r in runs if r.data.tags["ablate.level"] == "trial")
    assert trial_runs == ["FINISHED", "FINISHED", "KILLED"]


@pytest.mark.slow
def test_a_diverging_trial_is_recorded_as_diverged_not_retried(study_dir: Path) -> None:
    result = _run(
        "sweep.seeds=[0]",
        "base.model={name: 'tests.study.crashing_model:build_nan', args: {at: 1000000}}",
        "sweep.grid={model.args.at: [1000000, 3]}",  # the second cell's loss turns NaN
        "baseline={model.args.at: 1000000}",
    )
    assert result.exit_code == 0, result.output
    trials = pd.read_csv(study_dir / "results" / "tiny" / "trials.csv")
    assert sorted(trials["state"]) == ["COMPLETE", "DIVERGED"]


def test_bad_file_exits_2_with_one_message_and_writes_nothing(study_dir: Path) -> None:
    (study_dir / "bad.yaml").write_text(STUDY.replace("epochs: 2", "epochs: 0"))
    result = CliRunner().invoke(app, ["run", "bad.yaml"])
    assert result.exit_code == 2
    assert "bad.yaml: base.train.epochs = 0: Input should be greater than or equal to 1" in (
        result.output.replace("\n", "")
    )
    assert "Traceback" not in result.output
    assert not (study_dir / "results").exists()


def test_a_model_breaking_the_contract_is_reported_before_training(study_dir: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "run",
            "tiny.yaml",
            "--set",
            "base.model={name: 'tests.models.user_model:build_without_embed'}",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "output lacks 'embed'" in result.output
    assert not (study_dir / "results").exists()


@pytest.mark.slow
def test_two_worker_processes_train_every_pair_exactly_once(study_dir: Path) -> None:
    grads = ["--set", "base.train.diagnostics.grad_every=1"]
    result = CliRunner().invoke(app, ["run", "tiny.yaml", "--workers", "2", *grads])
    assert result.exit_code == 0, result.output
    assert (study_dir / "results" / "tiny" / "plots" / "gradient_flow.png").exists()
    trials = pd.read_csv(study_dir / "results" / "tiny" / "trials.csv")
    assert len(trials) == 4 and set(trials["state"]) == {"COMPLETE"}
    assert not trials.duplicated(["cell", "seed"]).any()
    runs, _ = _mlflow_runs(study_dir)
    assert sum(r.data.tags["ablate.level"] == "trial" for r in runs) == 4


@pytest.mark.slow
def test_a_deleted_optuna_db_is_refused_not_retrained_unless_told_to_start_over(
    study_dir: Path,
) -> None:
    quick = ("sweep.seeds=[0]", "base.train.epochs=1")
    assert _run(*quick).exit_code == 0
    db = study_dir / "results" / "tiny" / "optuna.db"
    db.unlink()
    refused = _run(*quick)
    assert refused.exit_code == 2, refused.output
    text = " ".join(refused.output.split())
    assert "holds 2 trial run(s) of study 'tiny'" in text and "--start-over" in text
    assert "Traceback" not in refused.output
    assert not db.exists()  # nothing was re-created, nothing trained
    runs, _ = _mlflow_runs(study_dir)
    assert sum(r.data.tags["ablate.level"] == "trial" for r in runs) == 2

    again = CliRunner().invoke(
        app, ["run", "tiny.yaml", "--workers", "1", "--start-over", *_sets(quick)]
    )
    assert again.exit_code == 0, again.output
    assert "deleted the 5 MLflow run(s)" in again.output  # study + 2 cells + 2 trials
    runs, _ = _mlflow_runs(study_dir)  # active runs only: the new tree
    levels = sorted(r.data.tags["ablate.level"] for r in runs)
    assert levels == ["cell", "cell", "study", "trial", "trial"]


def _sets(overrides: tuple[str, ...]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


@pytest.mark.slow
def test_a_trial_that_always_kills_its_worker_gives_up_after_its_lost_tries(
    study_dir: Path,
) -> None:
    marker = study_dir / "kills"
    result = _run(
        "sweep.seeds=[0]",
        "sweep.grid={train.lr: [0.02]}",
        f"base.model={{name: 'tests.study.crashing_model:build_killer', args: {{marker: "
        f"'{marker}', times: 100}}}}",
        "baseline={train.lr: 0.02}",
    )
    assert result.exit_code == 1, result.output
    assert marker.read_text() == "x" * (MAX_LOST + 1)  # the first try and its 5 lost retries
    assert "1 trial(s) failed after retries" in result.output
    trials = pd.read_csv(study_dir / "results" / "tiny" / "trials.csv")
    assert list(trials["state"]) == ["KILLED"] * (MAX_LOST + 1)


def test_report_with_an_unreachable_tracking_server_is_one_line_within_seconds(
    study_dir: Path,
) -> None:
    import time

    from tests.study.test_distributed import _start_without_training

    _start_without_training(study_dir, f"sqlite:///{study_dir / 'results/tiny/optuna.db'}")
    started = time.monotonic()
    result = CliRunner().invoke(
        app, ["report", "tiny", "--tracking-uri", "http://u:PW@127.0.0.1:1"]
    )
    assert result.exit_code == 2, result.output
    assert time.monotonic() - started < 30  # MLflow's own retries took 268 s
    assert "127.0.0.1:1" in result.output and "PW" not in result.output
    assert "Traceback" not in result.output
