"""Provenance: the command, overrides, recipe, versions, the study file's git state and the
machines the trials trained on."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from ablate.machine import Machine, read_machine
from ablate.report import write_report
from ablate.report._provenance import markdown, provenance
from ablate.report._text import md_text
from ablate.study import Outcome, TrialRecord, TrialResult
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


# --------------------------------------------------------------------------- machines


def _machine(cpu: str, isa: str = "AVX512", threads: int = 1) -> Machine:
    return Machine(
        cpu=cpu,
        flags=("avx2", "avx512f"),
        isa=isa,
        threads=threads,
        torch="2.13.0+cpu",
        onednn="3.12.0",
        blas="MKL 2024.2",
        numpy="2.4.6",
        python="3.11.7",
        platform="Linux x86_64, glibc 2.36",
    )


def _record(number: int, outcome: Outcome, machine: Machine | None) -> TrialRecord:
    return TrialRecord(
        trial_id=number,
        number=number,
        cell="c",
        seed=number,
        attempt=1,
        overrides={},
        sampled=False,
        params={},
        outcome=outcome,
        running=False,
        value=0.5,
        result=TrialResult(final={"val/mIoU": 0.5}, machine=machine),
        device="cpu",
    )


def test_the_machines_of_complete_trials_are_listed_most_trials_first(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(STUDY)
    zen4, milan = _machine("AMD EPYC (family 25, model 17)"), _machine("AMD EPYC", "AVX2")
    records = [
        _record(0, Outcome.COMPLETE, milan),
        _record(1, Outcome.COMPLETE, zen4),
        _record(2, Outcome.COMPLETE, zen4),
        _record(3, Outcome.FAILED, _machine("Intel Xeon")),  # trained nothing that counts
        _record(4, Outcome.COMPLETE, None),  # stored by an ablate that did not record it
    ]
    p = provenance(load_study(tmp_path / "s.yaml"), records, ["ablate"])
    assert p.machines == (
        f"2 trials: {zen4.describe()}",
        f"1 trial: {milan.describe()}",
        "1 trial: not recorded (trained by an ablate that did not record it)",
    )
    assert "Intel" not in json.dumps(p.as_tags())
    assert p.as_tags()["ablate.provenance.machines"].splitlines() == list(p.machines)
    text = "\n".join(markdown(p))
    assert "- machines (3: a (cell, seed) trained on one need not give the same numbers" in text
    assert "ATen AVX2" in text and "ATen AVX512" in text
    one = provenance(load_study(tmp_path / "s.yaml"), records[1:3], ["ablate"])
    assert f"- machine: 2 trials: {md_text(zen4.describe())}" in "\n".join(markdown(one))
    none = provenance(load_study(tmp_path / "s.yaml"), [], ["ablate"])
    assert none.as_tags()["ablate.provenance.machines"] == "none yet"


@pytest.mark.slow
def test_a_report_names_the_machine_its_worker_trained_on_not_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real trials in a spawned worker that loaded torch with ATEN_CPU_CAPABILITY=default:
    each record and MLflow run, and the report's provenance, carry that worker's kernels and
    this machine's CPU as torch and the OS name them, and no other variable of its
    environment."""
    from mlflow import MlflowClient
    from rich.console import Console

    from ablate.study import Locations, create_or_load, run_study

    here = read_machine()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # the spawned worker inherits it
    monkeypatch.setenv("PGPASSWORD", "PWsecret")
    (tmp_path / "s.yaml").write_text(STUDY.replace("epochs: 3", "epochs: 1"))
    study = load_study(tmp_path / "s.yaml")
    where = Locations.resolve(tmp_path / "results", "prov", None, None)
    assert run_study(study, where, None, 1, Console(quiet=True)).failed == []

    queue = create_or_load(study, where.storage_url)
    records = queue.records()
    machines = {r.result.machine for r in records}
    assert len(records) == 2 and len(machines) == 1
    (worker,) = machines
    assert worker is not None
    assert worker.isa == "DEFAULT" and worker.env == ("ATEN_CPU_CAPABILITY=default",)
    assert (worker.cpu, worker.flags, worker.torch, worker.onednn) == (
        here.cpu,
        here.flags,
        here.torch,
        here.onednn,
    )
    assert worker.threads == study.spec.base.train.threads == 1
    client = MlflowClient(where.tracking_uri)
    for r in records:
        assert client.get_run(r.mlflow_run_id).data.tags["ablate.machine"] == worker.describe()

    report = write_report(study, queue, tmp_path / "results", ["ablate", "report", "prov"])
    assert report.provenance.machines == (f"2 trials: {worker.describe()}",)
    stored = json.loads((report.folder / "provenance.json").read_text())
    assert stored["ablate.provenance.machines"] == f"2 trials: {worker.describe()}"
    assert md_text(worker.cpu) in (report.folder / "report.md").read_text()
    assert "PW" not in json.dumps(stored)
