"""Provenance: the command, overrides, recipe, versions and the study file's git state."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from ablate.report import write_report
from ablate.report._provenance import markdown, provenance
from ablate.study_file import load_study
from tests.postgres import POSTGRES_ENV

STUDY = """
name: prov
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
  train: {epochs: 3}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
  seeds: [0]
"""


def git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


def test_command_overrides_and_the_resolved_recipe(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(STUDY)
    argv = [
        "/usr/bin/ablate",
        "run",
        "s.yaml",
        "--set",
        "base.train.lr=0.1",
        "--set=base.train.epochs=2",
    ]
    study = load_study(tmp_path / "s.yaml", ["base.train.lr=0.1", "base.train.epochs=2"])
    p = provenance(study, [], argv)
    assert p.command == "ablate run s.yaml --set base.train.lr=0.1 --set=base.train.epochs=2"
    assert p.overrides == ("base.train.lr=0.1", "base.train.epochs=2")
    recipe = yaml.safe_load(p.recipe)
    assert recipe["train"]["lr"] == 0.1 and recipe["train"]["epochs"] == 2
    assert recipe["loss"]["aux"]["weight"] == 0.4  # defaults of omitted keys are written out
    assert p.versions["ablate"] != "not installed" and p.versions["torch"].startswith("2.")
    assert p.git == "not in a repository" and p.devices == "none yet" and p.threads == 1
    text = "\n".join(markdown(p))
    assert "`--set` overrides: `base.train.lr=0.1`, `base.train.epochs=2`" in text
    tags = p.as_tags()
    assert tags["ablate.provenance.overrides"] == "base.train.lr=0.1 base.train.epochs=2"
    assert tags["ablate.version.optuna"] == p.versions["optuna"]


def test_git_state_names_the_commit_and_uncommitted_changes(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(STUDY)
    git(tmp_path, "init", "-q")
    (tmp_path / "other.txt").write_text("x")
    git(tmp_path, "add", "other.txt")
    git(tmp_path, "commit", "-qm", "first")
    untracked = provenance(load_study(path), [], ["ablate"]).git
    assert untracked.startswith("commit ") and "the study file itself is untracked" in untracked
    git(tmp_path, "add", "s.yaml")
    git(tmp_path, "commit", "-qm", "study")
    clean = provenance(load_study(path), [], ["ablate"]).git
    assert clean.endswith("(clean)") and len(clean.split()[1]) == 12
    path.write_text(STUDY.replace("epochs: 3", "epochs: 4"))
    dirty = provenance(load_study(path), [], ["ablate"]).git
    assert "with uncommitted changes" in dirty and "the study file itself is modified" in dirty


SECRET_ARGV = [
    "ablate",
    "report",
    "two_keys",
    "--storage",
    "postgresql://u:PWone@127.0.0.1/db",
    "--tracking-uri=http://u:PWtwo@h:5000",
    "--set",
    "base.data.root=/data?password=PWthree",
]


def test_passwords_on_the_command_line_are_masked_before_anything_renders_them(
    tmp_path: Path,
) -> None:
    from tests.report.test_build import _storage, _study

    study = _study(tmp_path)
    values = {(c.name, s): 0.5 + 0.01 * s for c in study.cells for s in (0, 1, 2)}
    report = write_report(study, _storage(study, values), tmp_path / "results", SECRET_ARGV)
    p = report.provenance
    assert p.command == (
        "ablate report two_keys --storage 'postgresql://u:***@127.0.0.1/db' "
        "'--tracking-uri=http://u:***@h:5000' --set 'base.data.root=/data?password=***'"
    )
    assert p.overrides == ("base.data.root=/data?password=***",)
    tags = p.as_tags()
    assert "PW" not in json.dumps(tags)
    for name in ("report.md", "report.html", "provenance.json"):
        text = (report.folder / name).read_text()
        assert "PW" not in text, name
        assert "u:***@127.0.0.1" in text, name


TINY = """
name: tiny
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
  seeds: [0]
"""


def test_a_postgresql_password_reaches_no_report_file_artifact_or_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ablate report NAME --storage postgresql://user:PASSWORD@…` on a real server: the
    password is in none of the files written, the MLflow store, or the study run's tags."""
    from mlflow import MlflowClient
    from rich.console import Console
    from sqlalchemy.engine import make_url
    from typer.testing import CliRunner

    from ablate.cli import app
    from ablate.study import Locations, start_study
    from tests.postgres import new_database  # skips without a server

    with new_database() as url:
        password = make_url(url).password
        assert password, f"{POSTGRES_ENV} names no password: nothing to test"
        secret = f":{password}@"
        monkeypatch.chdir(tmp_path)
        (tmp_path / "tiny.yaml").write_text(TINY)
        where = Locations.resolve(Path("results"), "tiny", url, None)
        start_study(load_study(tmp_path / "tiny.yaml"), where, Console(quiet=True))
        result = CliRunner().invoke(app, ["report", "tiny", "--storage", url])
        assert result.exit_code == 0, result.output
    results = tmp_path / "results"
    written = [p for p in results.rglob("*") if p.is_file()]
    assert {"report.md", "report.html", "provenance.json"} <= {p.name for p in written}
    assert any("mlartifacts" in p.parts and p.name == "provenance.json" for p in written)
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`ablate.level` = 'study'"
    )
    command = run.data.tags["ablate.provenance.command"]
    assert secret not in json.dumps(run.data.tags) and ":***@" in command, command
