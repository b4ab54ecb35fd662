"""A password given in a storage or tracking URL never reaches a message, a record or a report:
in the user part (`user:pw@`) or in a parameter (`?password=`), wherever the URL sits in a text."""

import subprocess
import sys
from pathlib import Path

import pytest

from ablate.urls import mask_secrets, without_password

CASES = [
    ("postgresql+psycopg2://u:PW1@db:5432/x", "postgresql+psycopg2://u:***@db:5432/x"),
    ("postgresql://u:p@ss:w0rd@db/x", "postgresql://u:***@db/x"),  # '@' and ':' in a password
    (
        "postgresql://u@db/x?sslmode=require&password=PW2",
        "postgresql://u@db/x?sslmode=require&password=***",
    ),
    ("http://h:5000/?token=T0K&x=1", "http://h:5000/?token=***&x=1"),
    ("sqlite:////tmp/a b/optuna.db", "sqlite:////tmp/a b/optuna.db"),
    (
        "ablate run s.yaml --storage postgresql://u:PW3@h/db --tracking-uri http://a:PW4@m:5000",
        "ablate run s.yaml --storage postgresql://u:***@h/db --tracking-uri http://a:***@m:5000",
    ),
]


@pytest.mark.parametrize(("text", "shown"), CASES)
def test_every_password_in_a_text_is_masked(text: str, shown: str) -> None:
    assert mask_secrets(text) == shown


def test_the_stored_url_keeps_neither_the_user_password_nor_a_secret_parameter() -> None:
    url = "postgresql://u:PW1@db/x?sslmode=require&password=PW2&application_name=a"
    assert without_password(url) == "postgresql://u@db/x?sslmode=require&application_name=a"
    assert without_password("postgresql://db/x?password=PW") == "postgresql://db/x"


def test_the_run_tree_recorded_with_the_study_holds_no_password(tmp_path: Path) -> None:
    from ablate.study import create_or_load, record_run_tree
    from ablate.study_file import load_study
    from ablate.track import RunTree
    from tests.study.test_run_cli import STUDY

    (tmp_path / "tiny.yaml").write_text(STUDY)
    queue = create_or_load(load_study(tmp_path / "tiny.yaml"), f"sqlite:///{tmp_path / 'o.db'}")
    tree = RunTree("postgresql://u:PW1@db/mlflow?password=PW2", "1", "s", {})
    record_run_tree(queue, tree)
    stored = str(create_or_load(load_study(tmp_path / "tiny.yaml"), queue.storage_url).attrs)
    assert "PW1" not in stored and "PW2" not in stored
    assert "postgresql://u@db/mlflow" in stored


def test_a_storage_that_cannot_be_reached_is_named_without_its_password(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "ablate", "status", "tiny",
            "--storage", "postgresql+psycopg2://u:S3CRET@127.0.0.1:1/db?password=S3CRET2",
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "S3CRET" not in done.stdout + done.stderr
    assert "u:***@127.0.0.1:1" in done.stderr and "Traceback" not in done.stderr
