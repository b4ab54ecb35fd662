"""A trial's MLflow run: what TrialRun stores, read back through a fresh MlflowClient."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow import MlflowClient

from ablate import track
from ablate.report import Level, Paired, SummaryRow, cell_aggregates
from ablate.track import CellInfo, RunTree, TrialRun, _client, ensure_run_tree


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
    tmp_path: Path,
) -> None:
    now = [100.0]
    tree = _tree(tmp_path)
    run = TrialRun(tree, "track", "a", 0, 0, clock=lambda: now[0])
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


def test_cell_runs_hold_their_swept_values_and_seeds_and_the_experiment_its_kind(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cells = {
        "aux.weight=0.4": CellInfo({"loss.aux.weight": 0.4, "loss.ce.ohem_thresh": None}, 3),
        "search-00": CellInfo({}, 1),  # sampled later: nothing known yet
    }
    tree = ensure_run_tree(uri, "track", list(cells), None, {"epochs": 1}, cells)

    client = MlflowClient(uri)
    experiment = client.get_experiment(tree.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    first = client.get_run(tree.cell_run_ids["aux.weight=0.4"]).data
    assert first.params == {"loss.aux.weight": "0.4", "loss.ce.ohem_thresh": "None"}
    assert first.tags["ablate.seeds"] == "3"
    assert client.get_run(tree.cell_run_ids["search-00"]).data.params == {}

    more = {**cells, "aux.weight=0.4": CellInfo(cells["aux.weight=0.4"].params, 5)}
    again = ensure_run_tree(uri, "track", list(cells), None, {"epochs": 1}, more)
    assert again == tree  # the same runs: params unchanged (MLflow refuses a changed one) ...
    stored = client.get_run(tree.cell_run_ids["aux.weight=0.4"]).data
    assert stored.params == first.params and stored.tags["ablate.seeds"] == "5"  # ... seeds not


def test_a_run_tree_made_before_cell_params_gets_them_and_the_experiment_its_kind(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    old = ensure_run_tree(uri, "track", ["a"], None, {"epochs": 1})  # as an older ablate did
    client = MlflowClient(uri)
    client.delete_experiment_tag(old.experiment_id, "mlflow.experimentKind")

    tree = ensure_run_tree(uri, "track", ["a"], None, {}, {"a": CellInfo({"loss.lovasz": 0.5}, 2)})

    assert tree == old
    assert client.get_run(tree.cell_run_ids["a"]).data.params == {"loss.lovasz": "0.5"}
    experiment = client.get_experiment(tree.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_trial_run_is_named_by_its_cell_and_seed(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    run = TrialRun(tree, "track", "a", 3, 7)
    run.end("FINISHED")
    assert MlflowClient(tree.tracking_uri).get_run(run.run_id).info.run_name == "seed 3 · a"


def test_cell_aggregates_are_in_the_metric_s_display_unit_and_say_so(tmp_path: Path) -> None:
    row = SummaryRow(
        "a",
        level=Level(n=3, mean=0.432, std=0.01, ci_low=0.41, ci_high=0.45),
        paired=Paired(
            diff=0.02,
            diff_ci_low=-0.005,
            diff_ci_high=0.045,
            n_pairs=3,
            p_value=0.04,
            p_holm=0.08,
            mde=0.03,
            d_av=1.2,  # a column the cell runs do not carry
        ),
    )
    values = cell_aggregates(row, "val/mIoU")
    assert values == pytest.approx(
        {
            "val/mIoU/n": 3,
            "val/mIoU/mean_pct": 43.2,
            "val/mIoU/std_pct": 1.0,
            "val/mIoU/ci_low_pct": 41.0,
            "val/mIoU/ci_high_pct": 45.0,
            "val/mIoU/diff_pct": 2.0,
            "val/mIoU/diff_ci_low_pct": -0.5,
            "val/mIoU/diff_ci_high_pct": 4.5,
            "val/mIoU/mde_pct": 3.0,
            "val/mIoU/p_value": 0.04,
            "val/mIoU/p_holm": 0.08,
        }
    )
    loss = cell_aggregates(SummaryRow("a", level=Level(n=2, mean=0.53)), "val/loss")
    assert loss == {"val/loss/n": 2, "val/loss/mean_nats": 0.53}  # NaN values left out

    tree = _tree(tmp_path)
    track.log_cell_aggregates(tree, {"a": values}, finished=["a"])
    stored = MlflowClient(tree.tracking_uri).get_run(tree.cell_run_ids["a"])
    assert stored.data.metrics["val/mIoU/mean_pct"] == pytest.approx(43.2)
    assert stored.info.status == "FINISHED"


def test_a_closed_run_s_evaluations_land_on_the_step_axis_of_its_iterations(
    tmp_path: Path,
) -> None:
    tree = _tree(tmp_path)
    run = TrialRun(tree, "track", "a", 0, 0)
    run.log_metrics(
        {"val/mIoU": 0.3, "train/iteration": 16}, step=16, series={"train/aux_weight": [(0, 0.4)]}
    )
    run.flush()  # the first evaluation reached MLflow; the second was held back
    history = [
        {"val/mIoU": 0.3, "train/iteration": 16.0, "train/aux_weight": 0.4},
        {"val/mIoU": 0.4, "train/iteration": 32.0, "train/aux_weight": 0.4},
    ]
    track.close_run(tree.tracking_uri, run.run_id, "FINISHED", history)

    client = MlflowClient(tree.tracking_uri)
    points = client.get_metric_history(run.run_id, "val/mIoU")
    assert sorted((m.step, m.value) for m in points) == [(16, 0.3), (32, 0.4)]
    assert [m.step for m in client.get_metric_history(run.run_id, "train/aux_weight")] == [0]


def test_runs_url_opens_the_runs_table_in_the_machine_learning_view() -> None:
    assert track.runs_url("http://127.0.0.1:5000/", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    )


def test_publishing_unchanged_aggregates_again_sends_nothing_and_a_change_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _tree(tmp_path)
    values = {"val/mIoU/mean_pct": 43.2, "val/mIoU/n": 3.0, "val/mIoU/p_value": 0.1 + 0.2}
    track.log_cell_aggregates(tree, {"a": values}, finished=["a"])
    sent: list[tuple[str, list[str]]] = []
    ended: list[str] = []
    log_batch, set_terminated = MlflowClient.log_batch, MlflowClient.set_terminated

    def spy_batch(self: MlflowClient, run_id: str, metrics: Any = (), **kw: Any) -> Any:
        sent.append((run_id, sorted(m.key for m in metrics)))
        return log_batch(self, run_id, metrics=metrics, **kw)

    def spy_end(self: MlflowClient, run_id: str, *args: Any, **kw: Any) -> Any:
        ended.append(run_id)
        return set_terminated(self, run_id, *args, **kw)

    monkeypatch.setattr(MlflowClient, "log_batch", spy_batch)
    monkeypatch.setattr(MlflowClient, "set_terminated", spy_end)
    track.log_cell_aggregates(tree, {"a": values}, finished=["a"])
    assert sent == [] and ended == []  # a float reads back exactly as it was sent

    track.log_cell_aggregates(tree, {"a": {**values, "val/mIoU/n": 4.0}}, finished=["a"])
    assert sent == [(tree.cell_run_ids["a"], ["val/mIoU/n"])] and ended == []
    stored = MlflowClient(tree.tracking_uri).get_run(tree.cell_run_ids["a"])
    assert stored.data.metrics["val/mIoU/n"] == 4.0 and stored.info.status == "FINISHED"


def test_a_sql_tracking_store_takes_many_cells_aggregates_at_once(tmp_path: Path) -> None:
    """Past a few cells the runs are updated by threads sharing the process's small pool of
    connections: every cell gets its values and ends FINISHED, and none waits on another."""
    import time

    from tests.postgres import new_database

    cells = [f"c{i}" for i in range(3 * track._CONCURRENT_FROM)]
    with new_database() as uri:
        tree = ensure_run_tree(uri, "track", cells, tmp_path / "mlartifacts", {"epochs": 1})
        values = {c: {"val/mIoU/mean_pct": 40.0 + i} for i, c in enumerate(cells)}
        t0 = time.monotonic()
        track.log_cell_aggregates(tree, values, finished=cells[:-1])
        assert time.monotonic() - t0 < 25  # a pool exhausted by nested sessions waits 30 s
        client = MlflowClient(uri)
        for i, cell in enumerate(cells):
            run = client.get_run(tree.cell_run_ids[cell])
            assert run.data.metrics["val/mIoU/mean_pct"] == 40.0 + i
            assert run.info.status == ("FINISHED" if cell != cells[-1] else "RUNNING")
        track._client.cache_clear()  # its engine holds a connection to the database dropped next
