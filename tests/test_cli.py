import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablate.cli import app

ROOT = Path(__file__).parents[1]


def test_validate_lists_cells() -> None:
    result = CliRunner().invoke(app, ["validate", str(ROOT / "studies" / "aux_weight.yaml")])
    assert result.exit_code == 0, result.output
    assert "6 cells × 3 seeds = 18 trials" in result.output


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


@pytest.mark.slow
def test_ui_serves_the_store_on_localhost(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").create_experiment("probe")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ablate", "ui", "--results", str(tmp_path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        body = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=probe"
                body = urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        assert b'"name": "probe"' in body or b'"name":"probe"' in body
    finally:
        import os
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
