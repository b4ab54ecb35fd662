"""Provenance: the command, overrides, recipe, versions and the study file's git state."""

import subprocess
from pathlib import Path

import yaml

from ablate.report._provenance import markdown, provenance
from ablate.spec import load_study

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
