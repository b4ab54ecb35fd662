import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ablate.cli import app

ROOT = Path(__file__).parents[1]
TINY = """
name: tiny
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 8, val_size: 4}
  model: {name: pspnet_tiny, args: {width: 4}}
  train: {epochs: 1, batch_size: 8}
sweep: {grid: {loss.aux.weight: [0.0, 0.4]}, seeds: [0, 1]}
"""


def test_validate_lists_cells(tmp_path: Path) -> None:
    study = tmp_path / "tiny.yaml"
    study.write_text(TINY, encoding="utf-8")
    grid = "sweep.grid={loss.aux.weight: [0.0, 0.4, 1.0], loss.lovasz: [0.0, 0.5]}"
    seeds = "sweep.seeds=[0, 1, 2]"
    result = CliRunner().invoke(app, ["validate", str(study), "--set", grid, "--set", seeds])
    assert result.exit_code == 0, result.output
    assert "6 cells × 3 seeds = 18 trials" in result.output
    assert "aux.weight=0.4,loss.lovasz=0.5" in result.output


def test_validate_misspelt_key_exits_2_with_a_suggestion() -> None:
    result = CliRunner().invoke(
        app, ["validate", str(ROOT / "studies" / "aux_weight.yaml"), "--set", "base.trian.epochs=1"]
    )
    assert result.exit_code == 2
    assert "base.trian: unknown key (did you mean 'train'?)" in result.output.replace("\n", "")


def test_status_of_an_unknown_study_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["status", "nothing_here", "--results", str(tmp_path)])
    assert result.exit_code == 2
    assert "no study 'nothing_here'" in result.output


def test_ui_without_a_store_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ui", "--results", str(tmp_path)])
    assert result.exit_code == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serving(port: int) -> list[str]:
    """Command lines of the processes that name `port`."""
    found = []
    for pid in _serving_pids(port):
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            found.append(b" ".join(args).decode(errors="replace"))
    return found


def _serving_pids(port: int) -> list[int]:
    """Process ids of the processes that name `port` (the MLflow server's)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().split(b"\0")
            if any(str(port).encode() in a for a in args) and b"pytest" not in args[0]:
                found.append(int(cmdline.parent.name))
    return found


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


@pytest.mark.slow
def test_ui_serves_the_study_tree_over_rest_on_localhost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    assert CliRunner().invoke(app, ["run", "tiny.yaml", "--workers", "1"]).exit_code == 0
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ablate", "ui", "--results", "results", "--port", str(port)],
        stdout=(tmp_path / "ui.log").open("w"),
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                got = urllib.request.urlopen(
                    f"{api}/experiments/get-by-name?experiment_name=tiny", timeout=2
                )
                experiment = json.loads(got.read())["experiment"]
                break
            except OSError:
                assert time.monotonic() < deadline, "the UI did not answer within 90 s"
                time.sleep(0.5)

        def children(parent: str) -> list[dict]:
            found = _post(
                f"{api}/runs/search",
                {
                    "experiment_ids": [experiment["experiment_id"]],
                    "filter": f"tags.mlflow.parentRunId = '{parent}'",
                },
            )
            return found.get("runs", [])

        everything = _post(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]]})
        study_runs = [
            r
            for r in everything["runs"]
            if {"key": "ablate.level", "value": "study"} in r["data"]["tags"]
        ]
        assert len(study_runs) == 1
        tags = {t["key"]: t["value"] for t in study_runs[0]["data"]["tags"]}
        assert tags["ablate.provenance.command"].endswith("run tiny.yaml --workers 1")
        assert tags["ablate.version.torch"].startswith("2.")
        url = f"/#/experiments/{experiment['experiment_id']}/runs?workflowType=machine_learning"
        assert f"tiny: http://127.0.0.1:{port}{url}" in (tmp_path / "ui.log").read_text()
        cells = children(study_runs[0]["info"]["run_id"])
        assert len(cells) == 2
        for cell in cells:
            seeds = children(cell["info"]["run_id"])
            assert len(seeds) == 2
            for run in seeds:
                params = {p["key"]: p["value"] for p in run["data"]["params"]}
                metrics = {m["key"] for m in run["data"]["metrics"]}
                assert params["loss.aux.weight"] in ("0.0", "0.4") and "seed" in params
                assert {"val/mIoU", "train/loss/ce", "val/boundary_iou"} <= metrics
            assert "val/mIoU/mean_pct" in {m["key"] for m in cell["data"]["metrics"]}
        # SIGTERM to `ablate ui` alone (systemd, docker stop) stops the server and its workers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
        assert _serving(port) == []  # no server process is left (each names the port)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{api}/experiments/search", timeout=2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # a failed assertion above must not leave the server behind: it runs in its own session
        for pid in _serving_pids(port):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)


def _validate_refuses(tmp_path: Path, text: str) -> str:
    """`ablate validate` on a study file: exit 2, no traceback; its stderr."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "ablate", "validate", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    return done.stderr


def test_an_uppercase_study_name_is_refused_with_the_allowed_characters_shown_literally(
    tmp_path: Path,
) -> None:
    err = _validate_refuses(tmp_path, "name: Aux Weight\nsweep: {grid: {loss.aux.weight: [0.0]}}\n")
    assert "name = 'Aux Weight'" in err
    assert "'_' and '-' only" in err and "try 'aux_weight'" in err


def test_an_error_message_holding_brackets_is_printed_as_it_is(tmp_path: Path) -> None:
    text = "name: x\nsweep: {grid: {'loss.aux.weight[/bold]': [0.0]}}\n"
    assert "loss.aux.weight[/bold]" in _validate_refuses(tmp_path, text)


def test_status_of_many_cells_lists_those_not_finished_and_all_with_all(tmp_path: Path) -> None:
    from optuna.trial import create_trial

    from ablate.study import Outcome, TrialResult, _record, create_or_load
    from ablate.study_file import load_study

    study_file = tmp_path / "tiny.yaml"
    weights = [round(0.025 * i, 3) for i in range(40)]
    study_file.write_text(
        TINY.replace("[0.0, 0.4]}, seeds: [0, 1]", f"{weights}}}, seeds: [0]"), encoding="utf-8"
    )
    study = load_study(study_file)
    queue = create_or_load(study, f"sqlite:///{tmp_path / 'results' / 'tiny' / 'optuna.db'}")
    for cell in study.cells[:38]:  # finished; the last two are only queued
        attrs = _record.enqueued(cell.name, 0, cell.overrides, 1, sampled=False)
        state, ended = _record.ended(Outcome.COMPLETE, TrialResult([], {"val/mIoU": 0.5}))
        queue.store.ostudy.add_trial(create_trial(state=state, value=0.5, user_attrs=attrs | ended))
    queue.sync(study.design.pairs(queue))
    last_two = [c.name for c in study.cells[38:]]

    args = ["status", str(study_file), "--results", str(tmp_path / "results")]
    folded = CliRunner().invoke(app, args, terminal_width=200)
    assert folded.exit_code == 0, folded.output
    assert "COMPLETE 38, WAITING 2" in folded.output

    def rows(output: str) -> set[str]:
        return {line.split("│")[1].strip() for line in output.splitlines() if "│" in line}

    assert rows(folded.output) == set(last_two)
    assert "38 more cell(s) finished (--all lists them)" in folded.output

    every = CliRunner().invoke(app, [*args, "--all"], terminal_width=200)
    assert rows(every.output) == {c.name for c in study.cells}
    assert "more cell" not in every.output


def test_validate_prints_cell_names_and_paths_holding_rich_markup_as_they_are(
    tmp_path: Path,
) -> None:
    """A variant named "[/bold]" in a folder named "[/]" crashed validate (rich MarkupError)."""
    folder = tmp_path / "[" / "]"  # the path holds "[/]"
    folder.mkdir(parents=True)
    study = folder / "tiny.yaml"
    variants = 'variants: {"[/bold]": {loss.lovasz: 0.5}, "[red]x[/]": {loss.lovasz: 1.0}}'
    study.write_text(TINY.replace("grid: {loss.aux.weight: [0.0, 0.4]}", variants))
    result = CliRunner().invoke(app, ["validate", str(study)])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())  # the console wraps at 120 columns
    assert flat.startswith(f"{study}: ok — 2 cells × 2 seeds = 4 trials; baseline '[/bold]'")
    assert result.output.splitlines()[-3:-1] == ["  [/bold] (baseline)", "  [red]x[/]"]
    assert "no claims declared" in result.output.splitlines()[-1]


def _refused(result: Any, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit(2), not an escaped error
    flat = " ".join(result.output.split())
    assert flat.count("error:") == 1 and expected in flat, result.output


def test_plan_refuses_a_device_the_machine_lacks(tmp_path: Path) -> None:
    study = tmp_path / "tiny.yaml"
    study.write_text(TINY)
    result = CliRunner().invoke(app, ["plan", str(study), "--devices", "cuda:0,cuda:9"])
    _refused(result, "--devices cuda:0,cuda:9: no device 'cuda:")
    result = CliRunner().invoke(app, ["plan", str(study), "--devices", "gpu"])
    _refused(result, "--devices gpu: 'gpu' is not a device name (a device is cpu, cuda, cuda:N")


def test_worker_refuses_a_device_before_it_opens_the_storage(tmp_path: Path) -> None:
    study = tmp_path / "tiny.yaml"
    study.write_text(TINY)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"  # not there: opening it would say so
    result = CliRunner().invoke(
        app, ["worker", str(study), "--storage", storage, "--devices", "gpu"]
    )
    _refused(result, "--devices gpu: 'gpu' is not a device name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_worker_refuses_a_study_whose_tracking_server_does_not_answer(tmp_path: Path) -> None:
    """It spent 268 s in MLflow's retries, then a traceback."""
    from ablate.study import create_or_load, record_run_tree
    from ablate.study_file import load_study
    from ablate.track import RunTree

    study_file = tmp_path / "tiny.yaml"
    study_file.write_text(TINY)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    queue = create_or_load(load_study(study_file), storage)
    server = f"http://127.0.0.1:{_free_port()}"
    record_run_tree(queue, RunTree(f"{server.replace('//', '//ablate:s3cret@')}", "1", "r", {}))
    started = time.monotonic()
    result = CliRunner().invoke(app, ["worker", str(study_file), "--storage", storage])
    assert time.monotonic() - started < 30
    _refused(
        result,
        "the study's tracking URI (--tracking-uri) "  # stored without its password
        f"{server.replace('//', '//ablate@')}: no MLflow tracking server answers there",
    )
    given = CliRunner().invoke(
        app,
        [
            "worker",
            str(study_file),
            "--storage",
            storage,
            "--tracking-uri",
            "ftp://ablate:s3cret@x",
        ],
    )
    _refused(given, "--tracking-uri ftp://ablate:***@x: MLflow has no tracking store for 'ftp'")
    assert "s3cret" not in given.output
    assert not (tmp_path / "results").exists()


def test_submit_refuses_a_results_file_and_a_silent_server_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "afile").write_text("")
    server = f"http://127.0.0.1:{_free_port()}"
    args = ["submit", "tiny.yaml", "--storage", "postgresql://ablate@db.example/ablate"]
    args += ["--tracking-uri", server, "--time", "10", "--executor", "local"]
    _refused(
        CliRunner().invoke(app, [*args, "--results", "afile"]), "--results afile: afile is a file"
    )
    _refused(CliRunner().invoke(app, args), f"--tracking-uri {server}: no MLflow tracking server")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "tiny.yaml"]
