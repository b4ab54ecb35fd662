"""The command line's places and devices are checked before anything is written: each bad one
is a UserError naming the option, the value (no password) and what is allowed."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ablate.errors import UserError
from ablate.options import (
    Reach,
    check_devices,
    check_folder,
    check_places,
    check_sqlite,
    check_tracking_uri,
    devices_here,
)
from ablate.urls import sqlite_path

TWO_GPUS = ["cpu", "cuda", "cuda:0", "cuda:1"]
QUICK = Reach(tries=2, timeout_s=0.5, wait_s=0.0)


def refused(fn: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(UserError) as caught:
        fn(*args, **kwargs)  # type: ignore[operator]
    return str(caught.value)


# --------------------------------------------------------------------------- devices


@pytest.mark.parametrize("devices", [None, "cpu", "cpu,cpu", "cuda", "cuda:0,cuda:1", " cuda:1 "])
def test_devices_the_machine_has_are_accepted(devices: str | None) -> None:
    check_devices(devices, here=TWO_GPUS)


def test_a_cuda_index_past_the_devices_names_what_there_is() -> None:
    msg = refused(check_devices, "cuda:0,cuda:2", here=TWO_GPUS)
    assert (
        msg
        == "--devices cuda:0,cuda:2: no device 'cuda:2' here; this machine has cpu, cuda:0 … cuda:1"
    )


def test_a_word_that_is_no_device_says_which_words_are() -> None:
    msg = refused(check_devices, "gpu", here=["cpu"])
    assert msg == (
        "--devices gpu: 'gpu' is not a device name (a device is cpu, cuda, cuda:N or mps); this "
        "machine has cpu and no CUDA device (torch.cuda.device_count() is 0)"
    )


def test_mps_only_where_it_is_available() -> None:
    check_devices("mps", here=["cpu", "mps"])
    assert "no device 'mps' here" in refused(check_devices, "mps", here=["cpu"])


def test_an_empty_device_list_is_refused() -> None:
    assert "names no device" in refused(check_devices, " , ", here=TWO_GPUS)


def test_the_devices_here_are_what_torch_counts() -> None:
    import torch

    count = torch.cuda.device_count()
    expected = ["cpu", *(["cuda", *(f"cuda:{i}" for i in range(count))] if count else [])]
    assert devices_here()[: len(expected)] == expected
    check_devices(",".join(expected))
    assert f"no device 'cuda:{count}' here" in refused(check_devices, f"cuda:{count}")


@pytest.mark.gpu
def test_every_visible_gpu_is_accepted_and_one_more_is_not() -> None:
    import torch

    count = torch.cuda.device_count()
    check_devices(",".join(f"cuda:{i}" for i in range(count)) + ",cuda")
    msg = refused(check_devices, f"cuda:{count}")
    assert "this machine has cpu, cuda:0" in msg


# --------------------------------------------------------------------------- folders


def test_a_folder_to_be_made_may_not_be_or_lie_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    check_folder("--results", tmp_path / "new" / "deeper")  # made later, as today
    assert not (tmp_path / "new").exists()
    assert refused(check_folder, "--results", tmp_path / "f") == (
        f"--results {tmp_path / 'f'}: {tmp_path / 'f'} is a file, not a folder; give a folder "
        "(it is made if missing)"
    )
    assert f"{tmp_path / 'f'} is a file;" in refused(check_folder, "--x", tmp_path / "f" / "a")


def test_a_broken_link_is_no_folder(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    assert "is a broken symbolic link" in refused(check_folder, "--results", tmp_path / "link")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_folder_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert "permission denied" in refused(check_folder, "--results", locked / "results")


# --------------------------------------------------------------------------- SQLite


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///results/x.db", "results/x.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite+pysqlite:////abs/x.db?timeout=5", "/abs/x.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///file:x.db?mode=ro&uri=true", None),
        ("postgresql://u@h/db", None),
        ("/a/plain/path", None),
    ],
)
def test_the_file_an_sqlite_url_names(url: str, path: str | None) -> None:
    assert sqlite_path(url) == (Path(path) if path else None)


def test_an_explicit_sqlite_file_needs_its_folder_and_a_default_one_does_not(
    tmp_path: Path,
) -> None:
    missing = f"sqlite:///{tmp_path}/no/such/x.db"
    assert refused(check_sqlite, "--storage", missing, made=False) == (
        f"--storage {missing}: the folder {tmp_path}/no/such does not exist; create it first, or "
        "give another path (an explicit database's folder is not made)"
    )
    check_sqlite("--results", missing, made=True)  # the default under --results: made later
    check_sqlite("--storage", f"sqlite:///{tmp_path}/x.db", made=False)
    assert not any(tmp_path.iterdir())
    (tmp_path / "d.db").mkdir()
    assert "is not a file" in refused(
        check_sqlite, "--storage", f"sqlite:///{tmp_path}/d.db", made=True
    )


def test_the_defaults_under_results_are_checked_too(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").mkdir()
    msg = refused(check_places, "tiny", tmp_path, None, None, None)
    assert msg.startswith("--results sqlite:///") and "mlflow.db is not a file" in msg
    (tmp_path / "mlflow.db").rmdir()
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "ckpt").write_text("")
    assert "--results " in refused(check_places, "tiny", tmp_path, None, None, None)
    check_places("tiny", tmp_path, None, None, tmp_path / "elsewhere")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ckpt", "tiny"]


# --------------------------------------------------------------------------- tracking URIs


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:///mlflow.db",
        "postgresql://ablate@db.example/mlflow",
        "postgresql+psycopg2://ablate@db.example/mlflow",
        "mysql+pymysql://u@h/db",
        "mssql+pyodbc://u@h/db",
        "databricks",
        "databricks://profile",
    ],
)
def test_stores_mlflow_has_are_accepted_without_connecting(
    uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative SQLite file's folder is the current one
    check_tracking_uri(uri)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "uri", ["ftp://x/y", "s3://bucket/mlruns", "uc:databricks-uc", "mongodb://h/db"]
)
def test_a_scheme_mlflow_cannot_track_to_is_refused(uri: str) -> None:
    msg = refused(check_tracking_uri, uri)
    assert msg.startswith(f"--tracking-uri {uri}: MLflow has no tracking store for ")
    assert "http(s)://HOST:PORT (an MLflow server)" in msg


def test_a_folder_is_a_tracking_store_only_where_mlflow_allows_the_file_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    for uri in (str(tmp_path / "mlruns"), (tmp_path / "mlruns").as_uri()):
        assert "MLFLOW_ALLOW_FILE_STORE=true" in refused(check_tracking_uri, uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    check_tracking_uri(str(tmp_path / "mlruns"))
    (tmp_path / "f").write_text("")
    assert "is a file, not a folder" in refused(check_tracking_uri, (tmp_path / "f").as_uri())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(codes: dict[str, int]) -> Iterator[tuple[str, list[str]]]:
    """A web server on 127.0.0.1 answering each path with its code (404 otherwise); yields
    its address and the paths asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            code = codes.get(self.path.partition("?")[0], 404)
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"OK" if code == 200 else b"no")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_answering_its_health_check_is_accepted_and_asked_without_credentials() -> None:
    with serving({"/health": 200}) as (url, asked):
        check_tracking_uri(url.replace("http://", "http://ablate:s3cret@") + "/?x=1", QUICK)
    assert asked == ["/health"]


def test_a_server_under_a_path_prefix_is_asked_there() -> None:
    with serving({"/mlflow/health": 200}) as (url, asked):
        check_tracking_uri(url + "/mlflow", QUICK)
    assert asked == ["/mlflow/health"]


def test_a_proxy_that_routes_only_the_rest_api_is_accepted() -> None:
    with serving({"/api/2.0/mlflow/experiments/search": 401}) as (url, asked):
        check_tracking_uri(url, QUICK)
    assert asked == ["/health", "/api/2.0/mlflow/experiments/search?max_results=1"]


def test_a_web_server_that_is_no_mlflow_is_refused_at_once() -> None:
    with serving({}) as (url, asked):
        msg = refused(check_tracking_uri, url, QUICK)
    assert msg == (
        f"--tracking-uri {url}: a web server answers, but not as an MLflow tracking server "
        "(HTTP 404 for /health and the REST API): check the URL's host, port and path"
    )
    assert len(asked) == 2


def test_a_server_failing_its_health_check_is_tried_again_then_refused() -> None:
    with serving({"/health": 503}) as (url, asked):
        msg = refused(check_tracking_uri, url, QUICK)
    assert "no MLflow tracking server answers there (HTTP 503; 2 tries in" in msg
    assert asked == ["/health", "/health"]


def test_no_server_is_refused_within_seconds_and_the_password_is_never_shown() -> None:
    uri = f"https://ablate:s3cret@127.0.0.1:{_free_port()}/?token=t0ken"
    started = time.monotonic()
    msg = refused(check_tracking_uri, uri, Reach(tries=3, timeout_s=1.0, wait_s=0.1))
    assert time.monotonic() - started < 5
    assert "s3cret" not in msg and "t0ken" not in msg
    assert msg.startswith("--tracking-uri https://ablate:***@127.0.0.1:")
    assert "no MLflow tracking server answers there (Connection refused; 3 tries in" in msg


def test_a_server_that_never_answers_is_given_up_after_its_timeout() -> None:
    with socket.socket() as listening:  # accepts connections (the backlog) and says nothing
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        started = time.monotonic()
        msg = refused(check_tracking_uri, url, Reach(tries=2, timeout_s=0.3, wait_s=0.0))
    assert time.monotonic() - started < 3
    assert "(no answer in 0.3 s; 2 tries in" in msg


def test_the_default_reach_gives_up_within_30_seconds() -> None:
    reach = Reach()
    waits = sum(reach.wait_s * i for i in range(reach.tries))
    assert reach.tries * reach.timeout_s + waits <= 30
