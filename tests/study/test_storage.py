"""One study name is one experiment: running it again with another recipe or another sweep is
refused, saying what changed; its claims and seeds may change only until a trial has a result."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ablate.design import Pair
from ablate.errors import SpecError
from ablate.study import Outcome, create_or_load
from ablate.study._storage import _FINGERPRINT, _PLAN, _SPEC
from ablate.study_file import build_study

BASE = {"data": {"num_classes": 4, "image_size": [32, 32]}}


def _study(tmp_path: Path, sweep: dict[str, Any], claims: Sequence[dict[str, Any]] = ()) -> Any:
    raw = {"name": "same", "base": BASE, "sweep": sweep, "claims": list(claims)}
    return build_study(raw, tmp_path / "same.yaml")


CLAIMS = [{"a": "aux.weight=0.4", "b": "baseline", "test": "superior"}]


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
    assert "same.yaml" in message and "a study's recipe and cells are fixed" in message
    assert first.attrs[_SPEC]["sweep"]["grid"] == GRID["grid"]  # nothing rewritten


def _one_result(queue: Any) -> None:
    """Train nothing, but end one of the study's trials COMPLETE, as a worker would."""
    queue.sync([Pair("aux.weight=0", 0, {"loss.aux.weight": 0.0})])
    trial_id = queue.pop()
    assert trial_id is not None
    assert queue.end(trial_id, Outcome.COMPLETE, 0.5)


def test_seeds_and_claims_may_change_until_a_trial_has_a_result(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    create_or_load(_study(tmp_path, GRID), url)
    more = create_or_load(_study(tmp_path, {**GRID, "seeds": [0, 1, 2]}), url)
    assert more.attrs[_SPEC]["sweep"]["seeds"] == [0, 1, 2]
    assert more.attrs[_PLAN]["seeds"] == [0, 1, 2] and more.attrs[_PLAN]["planned_before"]
    claimed = create_or_load(_study(tmp_path, {**GRID, "seeds": [0, 1, 2]}, CLAIMS), url)
    assert claimed.attrs[_PLAN]["claims"][0]["test"] == "superior"


@pytest.mark.parametrize(
    ("sweep", "claims", "said"),
    [
        ({**GRID, "seeds": [0, 1, 2]}, [], "seeds: [0, 1] -> [0, 1, 2]"),
        ({**GRID, "seeds": [0]}, [], "seeds: [0, 1] -> [0]"),
        (GRID, CLAIMS, "claims: [] -> [{"),
    ],
    ids=["more seeds", "fewer seeds", "a claim added"],
)
def test_seeds_or_claims_changed_after_a_result_are_refused_with_the_remedy(
    tmp_path: Path, sweep: dict[str, Any], claims: list[dict[str, Any]], said: str
) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _one_result(create_or_load(_study(tmp_path, GRID), url))
    with pytest.raises(SpecError) as refused:
        create_or_load(_study(tmp_path, sweep, claims), url)
    message = str(refused.value)
    assert said in message and "same.yaml" in message and "1 trial result(s)" in message
    assert "--set name=" in message and "adaptive seeds up front" in message
    again = create_or_load(_study(tmp_path, GRID), url)  # the plan as it was is still fine
    assert again.attrs[_PLAN]["seeds"] == [0, 1] and again.attrs[_SPEC]["sweep"] == {
        **again.attrs[_SPEC]["sweep"],
        "seeds": [0, 1],
    }


def test_a_plan_first_recorded_after_results_says_so(tmp_path: Path) -> None:
    """A study stored by a release that kept no plan: its seeds may have been raised after a
    look, and the stored plan says it was recorded late."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    queue = create_or_load(_study(tmp_path, GRID), url)
    _one_result(queue)
    queue.ostudy.set_user_attr(_PLAN, None)  # as an earlier release left it: no plan
    later = create_or_load(_study(tmp_path, GRID), url)
    assert later.attrs[_PLAN] == {"claims": [], "seeds": [0, 1], "planned_before": False}


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
