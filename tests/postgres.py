"""A fresh PostgreSQL database per test, on the server ABLATE_TEST_POSTGRES points at: tests never
see each other's studies or runs. Without the variable the test is skipped and says why."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_ENV = (
    "ABLATE_TEST_POSTGRES"  # e.g. postgresql+psycopg2://ablate:ablate@127.0.0.1:5432/ablate_test
)


@contextmanager
def new_database() -> Iterator[str]:
    """The URL of a database created for this test alone (the role must be allowed to CREATE
    DATABASE), dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(
            f"PostgreSQL variant: set {POSTGRES_ENV}=postgresql+psycopg2://USER:PASSWORD@"
            "127.0.0.1:5432/DB (a role that may create databases; .ci/run sets one up)"
        )
    psycopg2 = pytest.importorskip("psycopg2", reason="pip install -e '.[postgres]'")
    from sqlalchemy.engine import make_url

    url = make_url(base)
    name = f"ablate_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database or "postgres",
    )
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:  # a failing test too: it reaches here as an exception
            with admin.cursor() as cur:  # FORCE: a killed worker's connection may linger
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()
