"""One study name is one experiment: running it again with another recipe or another sweep is
refused, saying what changed; more seeds are allowed."""

from pathlib import Path
from typing import Any

import pytest

from ablate.errors import SpecError
from ablate.study import create_or_load
from ablate.study._storage import _FINGERPRINT, _SPEC
from ablate.study_file import build_study

BASE = {"data": {"num_classes": 4, "image_size": [32, 32]}}


def _study(tmp_path: Path, sweep: dict[str, Any]) -> Any:
    return build_study({"name": "same", "base": BASE, "sweep": sweep}, tmp_path / "same.yaml")


GRID = {"grid": {"loss.aux.weight": [0.0, 0.4]}, "seeds": [0, 1]}
CHANGED = {
    "another grid": (
        {"grid": {"loss.aux.weight": [0.0, 0.2]}, "seeds": [0, 1]},
        "sweep.grid.loss.aux.weight: [0.0, 0.4] -> [0.0, 0.2]",
    ),
    "another key": (
        {"grid": {"loss.lovasz": [0.0, 0.5]}, "seeds": [0, 1]},
        "sweep.grid.loss.lovasz: unset -> [0.0, 0.5]",
    ),
    "variants instead": (
        {"variants": {"none": {"loss.aux.weight": 0.0}}, "seeds": [0, 1]},
        "sweep.variants.none.loss.aux.weight: unset -> 0.0",
    ),
    "tricks instead": (
        {"tricks": {"lovasz": {"loss.lovasz": 0.5}}, "seeds": [0, 1]},
        "sweep.tricks.lovasz.loss.lovasz: unset -> 0.5",
    ),
    "a search instead": (
        {"search": {"n_trials": 4, "space": {"train.lr": {"low": 0.001, "high": 0.1}}}},
        "sweep.grid.loss.aux.weight: [0.0, 0.4] -> unset",
    ),
}


@pytest.mark.parametrize("change", list(CHANGED))
def test_another_sweep_under_the_same_name_is_refused_saying_what_changed(
    tmp_path: Path, change: str
) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = create_or_load(_study(tmp_path, GRID), url)
    sweep, said = CHANGED[change]
    with pytest.raises(SpecError) as refused:
        create_or_load(_study(tmp_path, sweep), url)
    message = str(refused.value)
    assert said in message
    assert "same.yaml" in message and "only seeds may be added" in message
    assert first.attrs[_SPEC]["sweep"]["grid"] == GRID["grid"]  # nothing rewritten


def test_more_seeds_are_allowed_and_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    create_or_load(_study(tmp_path, GRID), url)
    more = create_or_load(_study(tmp_path, {**GRID, "seeds": [0, 1, 2]}), url)
    assert more.attrs[_SPEC]["sweep"]["seeds"] == [0, 1, 2]


def test_a_study_stored_before_sweeps_were_compared_is_accepted_then_guarded(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    queue = create_or_load(_study(tmp_path, GRID), url)
    old = {k: v for k, v in queue.attrs[_FINGERPRINT].items() if k != "sweep"}
    queue.ostudy.set_user_attr(_FINGERPRINT, old)  # as an earlier release stored it

    again = create_or_load(_study(tmp_path, GRID), url)
    assert "sweep" in again.attrs[_FINGERPRINT]
    with pytest.raises(SpecError, match=r"sweep\.grid\.loss\.aux\.weight"):
        create_or_load(_study(tmp_path, CHANGED["another grid"][0]), url)


def test_a_tracking_uri_s_password_is_not_stored_with_the_study(tmp_path: Path) -> None:
    from ablate.study import record_run_tree, run_tree_of
    from ablate.track import RunTree

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    queue = create_or_load(_study(tmp_path, GRID), url)
    secret = "postgresql://ablate:s3cret@db.example:5432/mlflow"
    record_run_tree(queue, RunTree(secret, "1", "study-run", {"aux.weight=0": "cell-run"}))

    stored = create_or_load(_study(tmp_path, GRID), url)  # as another process reads it
    assert "s3cret" not in repr(stored.attrs)
    tree = run_tree_of(stored)
    assert tree is not None and tree.tracking_uri == "postgresql://ablate@db.example:5432/mlflow"
    given = run_tree_of(stored, secret)  # --tracking-uri or ABLATE_TRACKING_URI on a worker
    assert given is not None and given.tracking_uri == secret


def test_the_storage_url_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ablate.cli import app

    url = f"sqlite:///{tmp_path / 'elsewhere' / 'optuna.db'}"
    create_or_load(_study(tmp_path, GRID), url)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["status", "same"], env={"ABLATE_STORAGE": url})
    assert result.exit_code == 0, result.output
    assert "aux.weight=0.4" in result.output
    unset = CliRunner().invoke(app, ["status", "same"], env={"ABLATE_STORAGE": ""})
    assert unset.exit_code == 2  # the default place has no such study


def test_a_recipe_key_added_by_a_later_release_at_its_default_is_the_same_recipe(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    queue = create_or_load(_study(tmp_path, GRID), url)
    old = dict(queue.attrs[_FINGERPRINT])
    old["base"] = {k: v for k, v in old["base"].items() if k != "train.threads"}
    queue.ostudy.set_user_attr(_FINGERPRINT, old)  # stored before train.threads existed

    create_or_load(_study(tmp_path, GRID), url)  # at its default: accepted
    queue.ostudy.set_user_attr(_FINGERPRINT, old)
    changed = build_study(
        {"name": "same", "base": {**BASE, "train": {"threads": 2}}, "sweep": GRID},
        tmp_path / "same.yaml",
    )
    with pytest.raises(SpecError, match=r"base\.train\.threads: unset -> 2"):
        create_or_load(changed, url)


def test_a_grid_study_stored_before_tricks_existed_has_the_same_fingerprint(
    tmp_path: Path,
) -> None:
    """Fingerprints written before `sweep.tricks` and `sweep.design` existed lack them: a
    study that uses neither must compare equal, not as changed."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    queue = create_or_load(_study(tmp_path, GRID), url)
    assert not {"tricks", "design"} & set(queue.attrs[_FINGERPRINT]["sweep"])


def test_another_design_of_the_same_tricks_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    tricks = {"tricks": {"lovasz": {"loss.lovasz": 0.5}}, "seeds": [0, 1]}
    create_or_load(_study(tmp_path, tricks), url)
    with pytest.raises(SpecError, match=r"sweep\.design: 'one_at_a_time' -> 'factorial'"):
        create_or_load(_study(tmp_path, {**tricks, "design": "factorial"}), url)
