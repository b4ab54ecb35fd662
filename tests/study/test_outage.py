"""The Optuna storage goes away mid-study (a PostgreSQL restart, a failover, a full connection
table): a short outage is waited for and the study finishes as if nothing happened; a long one
stops it with one line that names the storage without its password, nothing lost."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ablate.errors import StorageDown
from ablate.study import create_or_load, load_existing, storage_fault
from ablate.study_file import load_study
from tests.outage import Proxy
from tests.postgres import new_database
from tests.study.test_distributed import (
    _ablate,
    _assert_every_pair_done_once,
    _finish,
    _running_with_run,
    _start_without_training,
    _trial_runs,
    _wait_for,
)
from tests.study.test_run_cli import STUDY


@pytest.fixture()
def proxied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Proxy, str]]:
    """A fresh PostgreSQL database reached through a proxy the test can take down."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(STUDY)
    with new_database() as url:
        proxy = Proxy(url)
        try:
            yield proxy, proxy.proxied(url)
        finally:
            proxy.close()


def test_a_call_during_a_short_outage_waits_and_then_goes_through(
    proxied: tuple[Proxy, str], tmp_path: Path
) -> None:
    proxy, url = proxied
    study = load_study(tmp_path / "tiny.yaml", ["sweep.seeds=[0]"])
    queue = create_or_load(study, url)
    queue.sync(study.design.pairs(queue))
    assert queue.waiting() == 2
    proxy.down()  # the server is gone: open connections reset, new ones refused
    started = time.monotonic()
    threading.Timer(3.0, proxy.up).start()
    trial_id = queue.pop()  # waits for the server instead of raising
    assert trial_id is not None and time.monotonic() - started >= 2.5
    assert queue.record(trial_id).running and queue.waiting() == 1


def test_an_outage_past_the_window_stops_with_one_line_and_no_password(
    proxied: tuple[Proxy, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, url = proxied
    study = load_study(tmp_path / "tiny.yaml", ["sweep.seeds=[0]"])
    queue = create_or_load(study, url)
    queue.sync(study.design.pairs(queue))
    monkeypatch.setenv("ABLATE_OUTAGE_S", "2")
    proxy.down()
    with pytest.raises(StorageDown) as stopped:
        queue.waiting()
    message = str(stopped.value)
    assert "unreachable for 2 s" in message and "\n" not in message
    assert ":***@" in message and ":ablate@" not in message  # the test role's password
    proxy.up()
    assert queue.waiting() == 2  # nothing was lost meanwhile


def test_a_refused_login_is_not_waited_for(proxied: tuple[Proxy, str]) -> None:
    """A wrong password is an answer, not an outage: no 120 s of retries."""
    import sqlalchemy

    _, url = proxied
    wrong = sqlalchemy.engine.make_url(url).set(password="wrong")
    engine = sqlalchemy.create_engine(wrong)
    with pytest.raises(sqlalchemy.exc.OperationalError) as refused:
        engine.connect()
    assert storage_fault(refused.value) is None


def test_the_storage_down_for_seconds_mid_study_loses_nothing_and_trains_nothing_twice(
    proxied: tuple[Proxy, str], tmp_path: Path
) -> None:
    proxy, url = proxied
    short = "base.train.epochs=3"  # a trial lasts a few seconds: the outage meets its end
    pairs = _start_without_training(tmp_path, url, short)
    run = _ablate(
        tmp_path, "run.log", "run", "tiny.yaml", "--workers", "2", "--set", short, "--storage", url
    )
    queue = load_existing("tiny", url)
    _wait_for(lambda: _running_with_run(queue), run, tmp_path, "run.log")
    proxy.down()  # mid-trial, heartbeats and claims fail for 8 s
    time.sleep(8)
    proxy.up()
    assert _finish(run, tmp_path, "run.log") == 0, (tmp_path / "run.log").read_text()
    _assert_every_pair_done_once(pairs, load_existing("tiny", url).records(), _trial_runs(tmp_path))
    assert "Traceback" not in (tmp_path / "run.log").read_text()


def test_the_storage_gone_for_good_stops_the_run_with_one_line_exit_2(
    proxied: tuple[Proxy, str], tmp_path: Path
) -> None:
    proxy, url = proxied
    slow = "base.train.epochs=30"
    _start_without_training(tmp_path, url, slow)
    run = _ablate(
        tmp_path,
        "run.log",
        "run",
        "tiny.yaml",
        "--workers",
        "1",
        "--set",
        slow,
        "--storage",
        url,
        env={"ABLATE_OUTAGE_S": "4", "ABLATE_HEARTBEAT_S": "1"},
    )
    queue = load_existing("tiny", url)
    _wait_for(lambda: _running_with_run(queue), run, tmp_path, "run.log")
    proxy.down()
    code = _finish(run, tmp_path, "run.log", timeout=120)
    log = (tmp_path / "run.log").read_text()
    assert code == 2, log
    assert "Traceback" not in log
    assert "the Optuna storage was unreachable" in log and ":ablate@" not in log
    proxy.up()
    # the trial the run held is pending (RUNNING until its heartbeat is stale), none lost
    again = load_existing("tiny", url).records()
    assert not [r for r in again if r.outcome is not None and not r.done]


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        ("database is locked", "transient"),  # another writer: wait for it
        ("no such table: experiments", None),  # a deleted store: waiting does not bring it back
        ("database or disk is full", "disk"),
        ("attempt to write a readonly database", "disk"),
    ],
)
def test_an_sqlite_error_is_waited_for_only_when_another_writer_holds_the_file(
    error: str, fault: str | None
) -> None:
    import sqlite3

    import sqlalchemy

    exc = sqlalchemy.exc.OperationalError("statement", {}, sqlite3.OperationalError(error))
    assert storage_fault(exc) == fault
    wrapped = RuntimeError("MLflow's wrapping")
    wrapped.__cause__ = exc
    assert storage_fault(wrapped) == fault  # found beneath MLflow's and Optuna's own errors
