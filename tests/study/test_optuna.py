"""The Optuna adapter opens only storages it was written for, and says why otherwise."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ablate.errors import StorageError
from ablate.study._optuna import OPTUNA_TESTED, Store, check_optuna_version, open_storage


@pytest.mark.parametrize("version", ["4.5.0", "6.0.0", "3.6.1"])
def test_an_untested_optuna_release_is_refused_naming_both_versions(version: str) -> None:
    low, _ = OPTUNA_TESTED
    with pytest.raises(StorageError, match=rf"optuna {version} is installed.*>={low[0]}\.{low[1]}"):
        check_optuna_version(version)


@pytest.mark.parametrize("version", ["5.0.0", "5.3.1", "5.0.0rc1", "5.1.0+local"])
def test_a_tested_optuna_release_is_accepted(version: str) -> None:
    check_optuna_version(version)


def test_the_installed_optuna_is_in_the_tested_range() -> None:
    check_optuna_version(optuna.__version__)


def _storage_missing_a_column(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="t", storage=url)
    with sqlite3.connect(tmp_path / "optuna.db") as db:
        db.execute("ALTER TABLE trial_heartbeats RENAME COLUMN heartbeat TO beat")
    return url


def test_tables_without_a_column_the_engine_writes_are_refused(tmp_path: Path) -> None:
    url = _storage_missing_a_column(tmp_path)
    with pytest.raises(StorageError, match=r"lack trial_heartbeats\.heartbeat"):
        open_storage(url)


def test_the_cli_refuses_such_a_storage_with_exit_2_and_one_message(tmp_path: Path) -> None:
    url = _storage_missing_a_column(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "ablate", "status", "t", "--storage", url],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "trial_heartbeats.heartbeat" in done.stderr and "optuna >=5.0,<6.0" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_readme_s_plain_postgresql_url_opens_a_storage() -> None:
    """`--storage postgresql://USER:PW@HOST/DB`, as the README writes it: SQLAlchemy 2.1 reads
    it with psycopg 3, which the `postgres` extra installs."""
    import os
    import uuid

    base = os.environ.get("ABLATE_TEST_POSTGRES")
    if not base:
        pytest.skip("needs ABLATE_TEST_POSTGRES (.ci/run sets it)")
    plain = "postgresql://" + base.split("://", 1)[1]
    name = f"plain-{uuid.uuid4().hex[:8]}"
    storage = open_storage(plain)
    assert storage.engine.dialect.driver == "psycopg"
    optuna.create_study(study_name=name, storage=storage)
    optuna.delete_study(study_name=name, storage=storage)


BAD_URLS = [
    ("not a URL", "notaurl", "notaurl"),
    ("unknown driver", "mysql+nosuchdriver://me:s3cret@127.0.0.1/x", "nosuchdriver"),
    ("refused port", "postgresql+psycopg2://me:s3cret@127.0.0.1:1/x", "127.0.0.1:1"),
    ("unknown host", "postgresql+psycopg2://me:s3cret@no-such-host.invalid/x", "no-such-host"),
]


def _postgres_with(**parts: str) -> str:
    """ABLATE_TEST_POSTGRES with some parts replaced (a wrong password, a missing database)."""
    import os

    from sqlalchemy.engine import make_url

    base = os.environ.get("ABLATE_TEST_POSTGRES")
    if not base:
        pytest.skip("needs ABLATE_TEST_POSTGRES (.ci/run sets it)")
    return make_url(base).set(**parts).render_as_string(hide_password=False)


@pytest.mark.parametrize(("case", "url", "named"), BAD_URLS, ids=[b[0] for b in BAD_URLS])
def test_a_storage_url_that_cannot_be_opened_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, case: str, url: str, named: str
) -> None:
    study = Path(__file__).parents[2] / "studies" / "aux_weight.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "ablate", "run", str(study), "--storage", url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr
    assert "cannot open the Optuna storage" in done.stderr and named in done.stderr
    assert list(tmp_path.iterdir()) == []  # no results folder, no database


@pytest.mark.parametrize(
    ("case", "parts", "named"),
    [
        ("wrong password", {"password": "s3cret"}, "password authentication failed"),
        ("no such database", {"database": "no_such_db", "password": "ablate"}, "no_such_db"),
    ],
)
def test_a_postgresql_that_refuses_the_login_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, case: str, parts: dict[str, str], named: str
) -> None:
    url = _postgres_with(**parts)
    done = subprocess.run(
        [sys.executable, "-m", "ablate", "status", "aux_weight", "--storage", url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr
    assert named in done.stderr and len(done.stderr.strip().splitlines()) <= 3
    assert list(tmp_path.iterdir()) == []


def _damaged(tmp_path: Path, how: str) -> Path:
    """An Optuna database as a crash, a full disk or a stray copy leaves it."""
    db = tmp_path / "results" / "tiny" / "optuna.db"
    db.parent.mkdir(parents=True)
    if how == "empty":
        db.write_bytes(b"")
    elif how == "random bytes":
        db.write_bytes(bytes(range(256)) * 64)
    else:  # a real study cut in half
        optuna.create_study(study_name="tiny", storage=open_storage(f"sqlite:///{db}"))
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 2])
    return db


@pytest.mark.parametrize("how", ["empty", "random bytes", "truncated"])
def test_a_damaged_sqlite_database_is_refused_with_what_to_do_and_left_as_it_is(
    tmp_path: Path, how: str
) -> None:
    db = _damaged(tmp_path, how)
    before = db.read_bytes()
    study = Path(__file__).parents[2] / "studies" / "aux_weight.yaml"
    for command in (["run", str(study), "--set", "name=tiny"], ["status", "tiny"]):
        done = subprocess.run(
            [sys.executable, "-m", "ablate", *command],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert str(db) in done.stderr.replace("\n", "") and "to start the study over" in done.stderr
    assert db.read_bytes() == before  # not re-created, not repaired behind the user's back
    assert {p.name for p in db.parent.iterdir()} <= {"optuna.db", "optuna.db.lock"}


def _study_with_every_kind_of_trial(url: str) -> optuna.Study:
    """Trials with values, none, a sampled float and int, user attributes and each state."""
    study = optuna.create_study(study_name="read", storage=open_storage(url))
    for i, state in enumerate([TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED] * 3):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_int("blocks", 1, 4)
        trial.set_user_attr("cell", f"c{i % 4}")
        trial.set_user_attr("history", [{"val/mIoU": 0.1 * i}, {"val/mIoU": None}])
        study.tell(trial, 0.5 + i if state == TrialState.COMPLETE else None, state=state)
    study.enqueue_trial({"lr": 0.01}, user_attrs={"cell": "waiting", "seed": 3})
    study.ask()  # RUNNING: the enqueued one
    study.enqueue_trial({}, user_attrs={"cell": "last"})
    return study


def _kept(trial: object) -> tuple:
    names = ("number", "state", "value", "params", "user_attrs")
    names += ("datetime_start", "datetime_complete")
    return tuple(getattr(trial, n) for n in names)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
@pytest.mark.parametrize("states", [None, (TrialState.WAITING, TrialState.RUNNING)])
def test_the_set_based_read_gives_what_optuna_s_own_read_gives(
    tmp_path: Path, states: tuple[TrialState, ...] | None
) -> None:
    """Store.trials reads Optuna's tables in four queries instead of Optuna's ORM (ten times
    faster at thousands of trials); every field ablate keeps must read back the same."""
    study = _study_with_every_kind_of_trial(f"sqlite:///{tmp_path / 'o.db'}")
    theirs = study.get_trials(deepcopy=False, states=states)
    ours = Store(study).trials(states)
    assert [t.trial_id for t in ours] == [t._trial_id for t in theirs]
    assert [_kept(t) for t in ours] == [_kept(t) for t in theirs]
    assert len(ours) == (2 if states else 11)
    counted = Store(study).count(states or tuple(TrialState))
    assert counted == {s: sum(t.state == s for t in theirs) for s in {t.state for t in theirs}}
    one = theirs[-1]
    assert _kept(Store(study).trial(one._trial_id)) == _kept(one)


def test_a_process_keeps_one_connection_open_to_postgresql_after_busy_moments() -> None:
    """Every worker is a process and the server's connection limit is shared by all of them:
    after several threads needed a connection at once (a trial's end beside its heartbeat),
    a storage keeps one open, not the driver's default of five (which stopped 32 workers on
    PostgreSQL's default limit of 100)."""
    import threading

    from tests.postgres import new_database

    with new_database() as url:
        storage = open_storage(url)
        barrier = threading.Barrier(4)

        def hold() -> None:
            with storage.engine.connect() as conn:
                barrier.wait(timeout=30)  # all four hold one at the same moment
                conn.exec_driver_sql("select 1")

        threads = [threading.Thread(target=hold) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert storage.engine.pool.checkedin() == 1  # the other three were closed
        storage.engine.dispose()


def test_a_worker_process_never_holds_more_than_two_connections_to_a_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """32 workers of up to 5 connections each were refused by PostgreSQL's default 100: a
    worker's pool is bounded, and a thread beyond it waits for a connection instead."""
    import threading
    import time

    from ablate.urls import as_worker_process
    from tests.postgres import new_database

    monkeypatch.setattr(os, "environ", dict(os.environ))  # as_worker_process writes to it
    as_worker_process()
    with new_database() as url:
        storage = open_storage(url)
        most, lock = [0], threading.Lock()

        def hold() -> None:
            with storage.engine.connect() as conn:
                with lock:
                    most[0] = max(most[0], storage.engine.pool.checkedout())
                conn.exec_driver_sql("select pg_sleep(0.3)")
                time.sleep(0.1)

        threads = [threading.Thread(target=hold) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert most[0] == 2  # five threads, never more than two connections at once
        storage.engine.dispose()


def test_mlflow_keeps_one_connection_open_to_a_sql_tracking_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ablate import track
    from ablate.urls import as_worker_process
    from tests.postgres import new_database

    with new_database() as url:
        client = track._client(url)
        client.search_experiments()
        engine = client._tracking_client.store.engine
        # this process reports (two publishing threads); a worker opens at most two
        assert engine.pool.size() == 1 and engine.pool._max_overflow == 3
        track._client.cache_clear()  # its engine holds a connection to the database dropped next
    monkeypatch.setattr(os, "environ", dict(os.environ))
    as_worker_process()
    with new_database() as url:
        client = track._client(url)
        client.search_experiments()
        engine = client._tracking_client.store.engine
        assert engine.pool.size() == 1 and engine.pool._max_overflow == 1
        track._client.cache_clear()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_read_without_results_leaves_out_only_the_named_attributes(tmp_path: Path) -> None:
    study = _study_with_every_kind_of_trial(f"sqlite:///{tmp_path / 'o.db'}")
    light = Store(study).trials(skip_attrs=("history",))
    full = Store(study).trials()
    assert [t.user_attrs for t in light] == [
        {k: v for k, v in t.user_attrs.items() if k != "history"} for t in full
    ]
    assert any("history" in t.user_attrs for t in full)
