"""Locks around what two processes must not do at once: create a study's storage and enqueue
its design, create a tracking database. Two `ablate run` of one study started together (two
terminals, a retried job) otherwise both create the schema (one dies with a migration error)
or both enqueue the design (pairs trained twice)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy

from ablate.errors import StorageError
from ablate.study._optuna import cause_of, safe_url
from ablate.urls import sqlite_path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive `flock` on `path` (made if missing), released on exit or process death."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def study_lock(url: str, name: str) -> Iterator[None]:
    """The study's lock. SQLite: a file lock beside the database; PostgreSQL: a session
    advisory lock keyed by the study's name, so runs on other machines wait too. Other
    databases: no lock."""
    if (file := sqlite_path(url)) is not None:
        with file_lock(file.with_name(file.name + ".lock")):
            yield  # open_storage, called under the lock, checks the file once
        return
    if not url.startswith("postgresql"):
        yield
        return
    key = int.from_bytes(hashlib.sha256(f"ablate:{name}".encode()).digest()[:8], "big", signed=True)
    try:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        conn = engine.connect()
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
        raise StorageError(
            f"{safe_url(url)}: cannot open the Optuna storage: {cause_of(exc)}"
        ) from None
    try:
        yield
    finally:
        with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        conn.close()
        engine.dispose()


@contextlib.contextmanager
def tracking_lock(uri: str) -> Iterator[None]:
    """A file lock beside an SQLite tracking database, shared by every study of a results
    folder: MLflow's schema migration fails when two processes create it at once."""
    if (file := sqlite_path(uri)) is not None:
        with file_lock(file.with_name(file.name + ".lock")):
            yield
    else:
        yield
