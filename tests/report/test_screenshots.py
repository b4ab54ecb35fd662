"""What a person sees: headless Chromium screenshots of report.html and of the MLflow runs page.

Skipped, with the reason printed, where Debian's `chromium` is not installed (.ci/run installs it).
"""

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from ablate.cli import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: no screenshots"),
]
TINY = """
name: tiny
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 8, val_size: 4}
  model: {name: pspnet_tiny, args: {width: 4}}
  train: {epochs: 2, batch_size: 8}
sweep: {grid: {loss.aux.weight: [0.0, 0.4]}, seeds: [0, 1]}
"""


def _shot(url: str, out: Path, profile: Path) -> np.ndarray:
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1280,1600",
            "--virtual-time-budget=8000",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return imread(out)


def _has_content(image: np.ndarray) -> bool:
    """Not a blank page: many distinct grey levels and some dark pixels (text)."""
    grey = image[..., :3].mean(axis=-1)
    return len(np.unique(np.round(grey, 2))) > 20 and (grey < 0.3).mean() > 0.001


@pytest.fixture()
def finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY)
    assert CliRunner().invoke(app, ["run", "tiny.yaml", "--workers", "1"]).exit_code == 0
    return tmp_path


def test_report_page_renders_with_its_plots(finished: Path) -> None:
    page = finished / "results" / "tiny" / "report.html"
    image = _shot(page.as_uri(), finished / "report.png", finished / "profile")
    assert _has_content(image)
    # the plots are loaded: a page without them is mostly white, with them far less so
    assert (image[..., :3].mean(axis=-1) < 0.95).mean() > 0.05


def test_mlflow_runs_page_renders(finished: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ablate", "ui", "--results", "results", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the UI did not answer within 90 s"
                time.sleep(0.5)
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{finished / 'results' / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("tiny")
        assert experiment is not None
        url = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs"
        image = _shot(url, finished / "mlflow.png", finished / "profile")
        assert _has_content(image)
    finally:
        import os
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
