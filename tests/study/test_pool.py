import multiprocessing as mp
import os
from pathlib import Path

import pytest
from rich.console import Console

from ablate.spec import load_study
from ablate.study import plan_devices
from ablate.study._pool import run_workers
from ablate.study._worker import WorkerConfig
from ablate.track import RunTree

STUDY = """
name: pool
description: a study no worker gets to train
base:
  data: {num_classes: 4, image_size: [32, 32], train_size: 8, val_size: 8}
  model: {name: pspnet_tiny, args: {width: 4}}
  train: {epochs: 1, batch_size: 8}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
  seeds: [0]
baseline: {loss.aux.weight: 0.0}
"""


def test_explicit_devices_get_one_worker_each() -> None:
    assert [d for d, _ in plan_devices("cuda:0,cuda:1", None)] == ["cuda:0", "cuda:1"]


def test_cpu_workers_split_the_cores() -> None:
    cores = os.cpu_count() or 1
    plan = plan_devices(None, 2)
    assert [d for d, _ in plan] == ["cpu", "cpu"]
    assert all(t == max(1, cores // 2) for _, t in plan)


def test_one_cpu_device_gets_all_cores() -> None:
    assert plan_devices("cpu", None) == [("cpu", os.cpu_count() or 1)]


def test_workers_started_before_the_run_tree_exit_when_building_it_fails(tmp_path: Path) -> None:
    (tmp_path / "pool.yaml").write_text(STUDY)
    study = load_study(tmp_path / "pool.yaml", ())
    config = WorkerConfig(
        study, f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'm.db'}", "cpu", 1, 0
    )

    workers: list[mp.process.BaseProcess] = []

    def unreachable() -> RunTree:
        workers.extend(mp.active_children())  # up and importing while the tree is built
        raise ConnectionError("tracking server unreachable")

    with pytest.raises(ConnectionError, match="unreachable"):
        run_workers(config, [("cpu", 1)] * 2, 2, Console(quiet=True), unreachable)
    assert len(workers) == 2
    assert mp.active_children() == []
    assert [w.exitcode for w in workers] == [0, 0]  # told no tree is coming: not terminated
    assert not (tmp_path / "optuna.db").exists()  # none of them touched the study
