"""A trial's MLflow run: what TrialRun stores, read back through a fresh MlflowClient."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from ablate import track
from ablate.track import RunTree, TrialRun, _client, ensure_run_tree


def _tree(tmp_path: Path) -> RunTree:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return ensure_run_tree(uri, "track", ["a"], tmp_path / "mlartifacts", {"epochs": 1})


def test_a_trial_run_holds_its_params_metrics_tags_config_and_status(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    run = TrialRun(tree, "track", "a", 3, 7)
    run.log_params({"loss.aux.weight": 0.4, "seed": 3, "trial_number": 7})
    run.log_text("cell: a\nseed: 3\n", "config.yaml")
    run.log_metrics({"val/mIoU": 0.5}, step=1, series={"train/aux_weight": [(0, 0.4), (1, 0.3)]})
    run.set_tag("ablate.outcome", "complete")
    run.end("FINISHED")

    client = MlflowClient(tree.tracking_uri)
    stored = client.get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"loss.aux.weight": "0.4", "seed": "3", "trial_number": "7"}
    assert stored.data.metrics == {"val/mIoU": 0.5, "train/aux_weight": 0.3}
    assert stored.data.tags["ablate.seed"] == "3"
    assert stored.data.tags["ablate.trial_number"] == "7"
    assert stored.data.tags["mlflow.parentRunId"] == tree.cell_run_ids["a"]
    assert stored.data.tags["ablate.outcome"] == "complete"
    steps = [m.step for m in client.get_metric_history(run.run_id, "train/aux_weight")]
    assert sorted(steps) == [0, 1]
    local = client.download_artifacts(run.run_id, "config.yaml", str(tmp_path))
    assert Path(local).read_text(encoding="utf-8") == "cell: a\nseed: 3\n"


def test_artifacts_land_in_the_runs_own_folder_under_their_relative_path(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    run = TrialRun(tree, "track", "a", 0, 0)
    run.log_text("ü\n", "notes/deep/readme.txt")
    run.log_torch({"w": torch.ones(2)}, "model.pt")
    run.end("FINISHED")

    client = MlflowClient(tree.tracking_uri)
    assert [a.path for a in client.list_artifacts(run.run_id, "notes/deep")] == [
        "notes/deep/readme.txt"
    ]
    folder = Path(client.download_artifacts(run.run_id, "", str(tmp_path / "down")))
    assert (folder / "notes" / "deep" / "readme.txt").read_text(encoding="utf-8") == "ü\n"
    assert torch.equal(torch.load(folder / "model.pt")["w"], torch.ones(2))
    artifact_root = tmp_path / "mlartifacts" / "track"
    assert (artifact_root / run.run_id / "artifacts" / "model.pt").is_file()


def test_one_client_serves_every_run_of_a_tracking_uri_in_a_process(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _client(uri) is _client(uri)
    assert _client(uri) is not _client(f"sqlite:///{tmp_path / 'other.db'}")


def test_creating_the_tracking_database_prints_nothing(tmp_path: Path) -> None:
    # a fresh interpreter: `import mlflow` sets MLflow's loggers, and it happens only once
    code = "import sys; from ablate.track import _client; _client(sys.argv[1]).search_experiments()"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(
        [sys.executable, "-c", code, uri], capture_output=True, text=True, check=True
    )
    assert (tmp_path / "mlflow.db").is_file()
    assert "database tables" not in done.stderr + done.stdout


def test_metrics_are_held_back_for_flush_s_then_sent_and_the_rest_when_the_run_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr(track, "_clock", lambda: now[0])
    tree = _tree(tmp_path)
    run = TrialRun(tree, "track", "a", 0, 0)
    client = MlflowClient(tree.tracking_uri)

    def steps() -> list[int]:
        return [m.step for m in client.get_metric_history(run.run_id, "val/mIoU")]

    run.log_metrics({"val/mIoU": 0.1}, step=1)
    now[0] += track.FLUSH_S - 0.5
    run.log_metrics({"val/mIoU": 0.2}, step=2)
    assert steps() == []  # held back
    now[0] += 0.5
    run.log_metrics({"val/mIoU": 0.3}, step=3, series={"train/aux_weight": [(7, 0.4)]})
    assert steps() == [1, 2, 3]  # FLUSH_S after the run began: all three in one batch
    run.log_metrics({"val/mIoU": 0.4}, step=4)
    assert steps() == [1, 2, 3]
    run.end("KILLED")
    assert steps() == [1, 2, 3, 4]
    assert client.get_run(run.run_id).data.metrics == {"val/mIoU": 0.4, "train/aux_weight": 0.4}
