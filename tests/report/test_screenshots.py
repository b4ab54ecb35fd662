"""What a person sees: headless Chromium screenshots of report.html, and the MLflow runs page
clicked through as a researcher does (expand the study run, add columns) over the DevTools
protocol, its table read from the DOM.

Skipped, with the reason printed, where Debian's `chromium` is not installed (.ci/run installs it).
"""

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from ablate.cli import app
from ablate.track import runs_url

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
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _shot(url: str, out: Path, profile: Path) -> np.ndarray:
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            *_FLAGS,
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


class _Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
    commands in on fd 3, replies out on fd 4, each a JSON message ended by NUL), so a test can
    click through a page the way a person does, with nothing beyond the standard library."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        commands, self._commands = os.pipe()
        self._replies, replies = os.pipe()
        # chromium's ends, moved clear of 3 and 4 so that placing them there clobbers neither
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (commands, replies)]
        os.close(commands)
        os.close(replies)
        chromium = [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *_DEVTOOLS]
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _ON_3_AND_4, *map(str, ends), *chromium],
            pass_fds=ends,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in ends:
            os.close(fd)
        self._buffer, self._id = b"", 0
        targets = self._call("Target.getTargets")["targetInfos"]
        page = next(t["targetId"] for t in targets if t["type"] == "page")
        attached = self._call("Target.attachToTarget", targetId=page, flatten=True)
        self._session = attached["sessionId"]

    def _call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:  # events arrive between the replies: skipped
            while b"\0" not in self._buffer:
                chunk = os.read(self._replies, 1 << 16)
                assert chunk, "chromium closed its DevTools pipe"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply["error"]
                return dict(reply["result"])

    def open(self, url: str) -> None:
        self._call("Page.navigate", self._session, url=url)

    def js(self, expression: str) -> Any:
        reply = self._call(
            "Runtime.evaluate", self._session, expression=expression, returnByValue=True
        )
        return reply["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout_s: float = 60) -> Any:
        deadline = time.monotonic() + timeout_s
        while not (value := self.js(expression)):
            assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
            time.sleep(0.25)
        return value

    def screenshot(self, out: Path) -> np.ndarray:
        png = self._call("Page.captureScreenshot", self._session, format="png")["data"]
        out.write_bytes(base64.b64decode(png))
        return imread(out)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._call("Browser.close")
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._commands)
        os.close(self._replies)


# exec argv[3:] with argv[1] as its fd 3 and argv[2] as its fd 4 (a shell's `3<&12` is not
# portable: dash takes one-digit fds only)
_ON_3_AND_4 = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)
_DEVTOOLS = ["--window-size=2400,1200", "--remote-debugging-pipe", "about:blank"]
_GRID = "document.querySelector('.ag-root') ? document.querySelector('.ag-root').innerText : ''"
# each row of the runs table: its run name -> the text of its cells, by column id
_ROWS = """(() => {
  const rows = {};
  for (const left of document.querySelectorAll('.ag-pinned-left-cols-container .ag-row')) {
    const index = left.getAttribute('row-index');
    const name = left.querySelector('[col-id="attributes.`Run Name`"]').innerText.trim();
    const cells = {};
    const center = `.ag-center-cols-container .ag-row[row-index="${index}"] [col-id]`;
    for (const cell of document.querySelectorAll(center)) {
      cells[cell.getAttribute('col-id')] = cell.innerText.trim();
    }
    rows[name.split('\\n').pop()] = cells;
  }
  return rows;
})()"""


def _expand(browser: _Browser, run: str) -> None:
    """Click the expander beside a run's name, once its row is drawn, as a person opens its
    child runs."""
    click = f"""(() => {{
        const cell = Array.from(document.querySelectorAll('[col-id="attributes.`Run Name`"]'))
          .find(c => c.innerText.trim().split('\\n').pop() === {json.dumps(run)});
        const button = cell && cell.querySelector('button');
        if (button) button.click();
        return Boolean(button);
    }})()"""
    browser.wait_for(click, f"the expander beside {run!r}")


def _show_column(browser: _Browser, name: str) -> None:
    """Tick a column in the table's column selector, then close it."""
    browser.js("document.querySelector('[data-testid=column-selection-dropdown]').click()")
    found = f"""(() => {{
        const node = Array.from(document.querySelectorAll('[role=dialog] [class*=tree-treenode]'))
          .find(n => n.innerText.trim() === {json.dumps(name)});
        if (node) (node.querySelector('[class*=tree-checkbox]') || node).click();
        return Boolean(node);
    }})()"""
    browser.wait_for(found, f"{name} in the column selector")
    time.sleep(0.5)  # the table takes the new column before the selector closes
    browser.js("document.querySelector('[data-testid=column-selection-dropdown]').click()")


@pytest.fixture()
def ui(finished: Path) -> Iterator[str]:
    """`ablate ui` on the finished study's results, serving at the URL it yields."""
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
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_mlflow_runs_page_compares_cells_by_their_swept_values(finished: Path, ui: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{finished / 'results' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    browser = _Browser(finished / "profile")
    try:
        browser.open(runs_url(ui, experiment.experiment_id))
        browser.wait_for("/[1-9][0-9]* matching run/.test(document.body.innerText)", "the runs")
        page = browser.js("document.body.innerText")
        assert "Model registry" in page and "Observability" not in page  # the training view
        _expand(browser, "tiny")  # the study run holds the cell runs
        browser.wait_for(f"{_GRID}.includes('aux.weight=0.4')", "the cell runs")
        _show_column(browser, "loss.aux.weight")
        _show_column(browser, "val/mIoU/mean_pct")
        param, mean = "params.`loss.aux.weight`", "metrics.`val/mIoU/mean_pct`"
        rows = browser.wait_for(
            f"(rows => Object.values(rows).some(r => r['{mean}']) && rows)({_ROWS})",
            "the cells' aggregates",
        )
        assert rows["aux.weight=0.4"][param] == "0.4" and rows["aux.weight=0"][param] == "0.0"
        trials = pd.read_csv(finished / "results" / "tiny" / "trials.csv")
        for cell in ("aux.weight=0", "aux.weight=0.4"):
            shown = float(rows[cell][mean])  # % points, as the report shows them
            assert shown == pytest.approx(100 * trials[trials.cell == cell]["val/mIoU"].mean())
        _expand(browser, "aux.weight=0.4")  # its seed runs, named so
        browser.wait_for(f"{_GRID}.includes('seed 1 · aux.weight=0.4')", "the seed runs")
        assert _has_content(browser.screenshot(finished / "mlflow.png"))
    finally:
        browser.close()
