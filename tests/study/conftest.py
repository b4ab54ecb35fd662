"""Optuna storages for the study tests: a SQLite file, and a fresh PostgreSQL database per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import new_database


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty Optuna storage URL. PostgreSQL: a database created for this test alone (so
    tests never see each other's studies), dropped afterwards (tests/postgres.py)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'optuna.db'}"
        return
    with new_database() as url:
        yield url
