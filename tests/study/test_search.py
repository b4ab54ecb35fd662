"""Search studies: the sampler picks each configuration when its trial is claimed, exactly
n_trials are tried, the best K are confirmed on the other seeds beside a baseline, once."""

import functools
import math
import multiprocessing as mp
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from ablate.cli import app
from ablate.design import Pair, SearchDesign, confirmed_cells
from ablate.report import write_report
from ablate.study import Locations, Outcome, Queue, TrialRecord, create_or_load, run_study
from ablate.study_file import Study, build_study
from ablate.train import EpochResult, FitResult
from tests.study.fakes import TrainingLog, fail_first

SPACE = {
    "train.lr": {"low": 0.001, "high": 0.1, "log": True},
    "loss.aux.weight": {"low": 0.0, "high": 1.0},
    "train.batch_size": {"low": 2, "high": 8},
}


def search_study(tmp_path: Path, n_trials: int = 6, confirm_top: int = 2, **search: Any) -> Study:
    raw = {
        "name": "searching",
        "base": {
            "data": {"num_classes": 4, "image_size": [32, 32], "train_size": 4, "val_size": 2},
            "model": {"name": "pspnet_tiny", "args": {"width": 4}},
            "train": {"epochs": 1, "batch_size": 2},
        },
        "sweep": {
            "search": {
                "sampler": "tpe",
                "n_trials": n_trials,
                "confirm_top": confirm_top,
                "space": SPACE,
                **search,
            },
            "seeds": [0, 1, 2],
        },
    }
    return build_study(raw, tmp_path / "searching.yaml")


def score(recipe: Any, seed: int) -> float:
    """A smooth function of the searched values (best near lr 0.01, aux weight 0.3), with a
    small seed effect: what the fake training reports as val/mIoU."""
    lr_term = (math.log10(recipe.train.lr) + 2.0) ** 2
    return 0.8 - 0.1 * lr_term - (recipe.loss.aux.weight - 0.3) ** 2 + 0.001 * seed


def fit_scored(
    log: Path, recipe: Any, seed: int, device: Any, on_epoch: Any = None, checkpoint: Any = None
) -> FitResult:
    """Training replaced by `score`; logs every (recipe, seed) trained."""
    TrainingLog(log).add(recipe, seed)
    value = score(recipe, seed)
    epoch = EpochResult(1, {"train/loss": 1.0, "val/mIoU": value}, [(0, 0.4)])
    if on_epoch is not None:
        on_epoch(epoch)
    return FitResult([epoch], False, 0.01, {"val/mIoU": value})


@pytest.fixture()
def fake_training(tmp_path: Path) -> TrainingLog:
    """What `run` trained with `fit_scored`."""
    return TrainingLog(tmp_path / "trained.jsonl")


def run(study: Study, tmp_path: Path, storage_url: str, train: Any = None) -> Any:
    """`ablate run` with training replaced by `fit_scored` (or `train`), in a worker process."""
    where = Locations.resolve(tmp_path / "results", study.spec.name, storage_url, None)
    train = train or functools.partial(fit_scored, tmp_path / "trained.jsonl")
    return run_study(study, where, None, 1, Console(quiet=True), train=train)


def design_of(study: Study) -> SearchDesign:
    assert isinstance(study.design, SearchDesign)
    return study.design


def by_cell(queue: Queue) -> dict[str, dict[int, TrialRecord]]:
    cells: dict[str, dict[int, TrialRecord]] = {}
    for r in queue.records():
        if r.outcome is Outcome.COMPLETE:
            cells.setdefault(r.cell, {})[r.seed] = r
    return cells


def end_search_trial(
    study: Study,
    queue: Queue,
    pair: Pair,
    outcome: Outcome,
    value: float | None = None,
    attempt: int = 1,
) -> None:
    """One search trial as a worker leaves it: enqueued, claimed (the only one waiting), given
    its values by the design, ended with `outcome`."""
    queue.enqueue(pair, attempt)
    trial_id = queue.pop()
    assert trial_id is not None
    record = queue.record(trial_id)
    assert record.key == (pair.cell, pair.seed) and record.attempt == attempt
    overrides = study.design.values(queue, record)
    if overrides != dict(record.overrides):
        queue.set_overrides(trial_id, overrides)
    assert queue.end(trial_id, outcome, value=value)


def test_a_search_samples_each_configuration_once_then_confirms_the_best_on_every_seed(
    tmp_path: Path, storage_url: str, fake_training: TrainingLog
) -> None:
    study = search_study(tmp_path)
    outcome = run(study, tmp_path, storage_url)
    assert outcome.failed == [] and outcome.total == 6 + 3 + 2 * 2

    queue = create_or_load(study, storage_url)
    cells = by_cell(queue)
    searched = {c: t[0] for c, t in cells.items() if c.startswith("search-")}
    assert sorted(searched) == [f"search-{i:02d}" for i in range(6)]
    for trial in searched.values():  # values inside the space, applied as the trial's recipe
        params = trial.params
        assert set(params) == set(SPACE)
        assert 0.001 <= params["train.lr"] <= 0.1 and 0.0 <= params["loss.aux.weight"] <= 1.0
        assert isinstance(params["train.batch_size"], int) and 2 <= params["train.batch_size"] <= 8
        assert trial.overrides == params
        assert set(cells[trial.cell]) <= {0, 1, 2}
    assert len({tuple(sorted(t.params.items())) for t in searched.values()}) == 6

    best = sorted(searched.values(), key=lambda t: (-(t.value or 0.0), t.number))[:2]
    assert list(confirmed_cells(queue.attrs)) == [t.cell for t in best]
    for trial in best:  # confirmed on every other seed with the very same values
        confirmations = cells[trial.cell]
        assert sorted(confirmations) == [0, 1, 2]
        assert all(c.params == trial.params for c in confirmations.values())
    unconfirmed = set(searched) - {t.cell for t in best}
    assert all(sorted(cells[c]) == [0] for c in unconfirmed)
    assert sorted(cells["baseline"]) == [0, 1, 2]
    assert all(t.params == {} for t in cells["baseline"].values())

    # the recipes trained were the sampled ones: lr and batch size reached `fit`
    lrs = sorted(r.train.lr for r, s in fake_training.trained() if s == 0)
    assert lrs == sorted([0.01] + [t.params["train.lr"] for t in searched.values()])
    assert run(study, tmp_path, storage_url).trained == 0  # resumable: nothing left


def test_the_report_ranks_the_search_and_compares_only_the_confirmed(tmp_path: Path) -> None:
    study = search_study(tmp_path)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    run(study, tmp_path, url)
    queue = create_or_load(study, url)
    report = write_report(study, queue, tmp_path / "results")
    folder = report.folder

    search = pd.read_csv(folder / "search.csv")
    assert list(search["rank"]) == [1, 2, 3, 4, 5, 6]
    assert search["val/mIoU"].is_monotonic_decreasing
    confirmed = list(confirmed_cells(queue.attrs))
    assert list(search.loc[search["confirmed"], "cell"]) == confirmed

    summary = report.summary
    assert list(summary["cell"][:3]) == ["baseline", *confirmed]
    assert list(summary["n"][:3]) == [3, 3, 3] and set(summary["n"][3:]) == {1}
    assert summary["p_holm"][3:].isna().all()  # one seed each: never tested
    assert report.planned["baseline"] == 3 and report.planned[confirmed[0]] == 3
    assert report.planned[str(summary["cell"].iloc[-1])] == 1

    text = (folder / "report.md").read_text()
    assert "## Search" in text and "winner's curse" in text
    verdicts = text.split("## Verdicts")[1].split("## Ablation table")[0]
    assert all(c in verdicts for c in confirmed)
    assert str(summary["cell"].iloc[-1]) not in verdicts
    assert (folder / "plots" / "search.png").stat().st_size > 10_000
    tex = (folder / "table.tex").read_text()
    assert all(c in tex for c in confirmed) and str(summary["cell"].iloc[-1]) not in tex


def test_a_search_without_confirmation_names_its_best_but_tests_nothing(
    tmp_path: Path, fake_training: TrainingLog
) -> None:
    study = search_study(tmp_path, n_trials=3, confirm_top=0, sampler="random", seed=5)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    outcome = run(study, tmp_path, url)
    assert outcome.total == 3 and {s for _, s in fake_training.trained()} == {5}
    queue = create_or_load(study, url)
    assert confirmed_cells(queue.attrs) == {}
    report = write_report(study, queue, tmp_path / "results")
    assert report.summary["verdict"].iloc[0] == "best of the search (one seed)"
    assert set(report.summary["verdict"].iloc[1:]) == {"n/a (one seed)"}
    text = (report.folder / "report.md").read_text()
    assert "## Verdicts" not in text and "Nothing was confirmed" in text
    assert not (report.folder / "table.tex").exists()


def test_a_crashed_search_trial_is_retried_with_the_values_it_was_given(
    tmp_path: Path,
) -> None:
    trained = functools.partial(fit_scored, tmp_path / "trained.jsonl")
    flaky = functools.partial(fail_first, tmp_path / "calls", trained)
    study = search_study(tmp_path, n_trials=2, confirm_top=0)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert run(study, tmp_path, url, flaky).failed == []
    records = create_or_load(study, url).records()
    failed = [r for r in records if r.outcome is not None and not r.done]
    assert [(r.outcome, r.error) for r in failed] == [(Outcome.FAILED, "RuntimeError: transient")]
    retry = next(r for r in records if r.outcome is Outcome.COMPLETE and r.key == failed[0].key)
    assert retry.params == failed[0].params and retry.attempt == 2


def _choose(study: Study, url: str, barrier: Any, results: Any) -> None:
    queue = create_or_load(study, url)
    barrier.wait()
    results.put(queue.advance(study.design))


def test_the_confirmation_is_chosen_and_enqueued_once_when_workers_race(
    tmp_path: Path, storage_url: str
) -> None:
    study = search_study(tmp_path, n_trials=4, confirm_top=2)
    queue = create_or_load(study, storage_url)
    lrs = [0.01 * (i + 1) for i in range(4)]
    for i, lr in enumerate(lrs):  # every search trial done, as a worker would leave them
        pair = Pair(f"search-{i:02d}", 0, {}, sampled=True, params={"train.lr": lr})
        end_search_trial(study, queue, pair, Outcome.COMPLETE, value=0.1 * i)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_choose, args=(study, storage_url, barrier, results)) for _ in "abcd"
    ]
    for p in procs:
        p.start()
    looked = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert True in looked  # the process that recorded the choice enqueued it
    confirmed = confirmed_cells(queue.attrs)
    assert list(confirmed) == ["search-03", "search-02"]
    assert [v["train.lr"] for v in confirmed.values()] == [lrs[3], lrs[2]]
    waiting = [r for r in queue.records() if r.state == "WAITING"]
    assert sorted(r.key for r in waiting) == [
        ("search-02", 1),
        ("search-02", 2),
        ("search-03", 1),
        ("search-03", 2),
    ]
    # a confirmation trial, once claimed, trains with the values chosen for its cell
    while (trial_id := queue.pop()) is not None:
        record = queue.record(trial_id)
        assert study.design.values(queue, record) == confirmed[record.cell]
    assert {r.params["train.lr"] for r in queue.records() if r.running} == {lrs[2], lrs[3]}


def test_no_confirmation_while_a_failed_search_trial_awaits_its_retry(tmp_path: Path) -> None:
    study = search_study(tmp_path, n_trials=2, confirm_top=1)
    queue = create_or_load(study, f"sqlite:///{tmp_path / 'optuna.db'}")
    done = Pair("search-00", 0, {}, sampled=True)
    end_search_trial(study, queue, done, Outcome.COMPLETE, value=0.5)
    failed = Pair("search-01", 0, {}, sampled=True)
    end_search_trial(study, queue, failed, Outcome.FAILED)
    # its retry is not enqueued yet: nothing to add, nothing recorded
    assert study.design.next_round(queue.records(), queue.attrs) is None
    assert not queue.advance(study.design)
    assert confirmed_cells(queue.attrs) == {}
    end_search_trial(study, queue, failed, Outcome.FAILED, attempt=3)
    assert queue.advance(study.design)  # retries used up: the search has ended
    assert list(confirmed_cells(queue.attrs)) == ["search-00"]
    assert not queue.advance(study.design)  # chosen and enqueued: nothing more


@pytest.mark.slow
def test_ablate_run_trains_a_search_with_two_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(
        "name: s\n"
        "base:\n"
        "  data: {num_classes: 4, image_size: [32, 32], train_size: 8, val_size: 4}\n"
        "  model: {name: pspnet_tiny, args: {width: 4}}\n"
        "  train: {epochs: 1, batch_size: 4}\n"
        "sweep:\n"
        "  search:\n"
        "    n_trials: 3\n"
        "    confirm_top: 1\n"
        "    space: {train.lr: {low: 0.001, high: 0.1, log: true}}\n"
        "  seeds: [0, 1]\n"
    )
    result = CliRunner().invoke(app, ["run", "s.yaml", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "search of 3 configurations on seed 0" in result.output
    trials = pd.read_csv(tmp_path / "results" / "s" / "trials.csv")
    assert len(trials) == 3 + 2 + 1 and set(trials["state"]) == {"COMPLETE"}
    search = pd.read_csv(tmp_path / "results" / "s" / "search.csv")
    best = search.loc[search["rank"] == 1, "cell"].item()
    assert sorted(trials.loc[trials["cell"] == best, "seed"]) == [0, 1]
    assert trials.loc[trials["cell"] == best, "train.lr"].nunique() == 1
    status = CliRunner().invoke(app, ["status", "s"])
    assert status.exit_code == 0, status.output
    assert f"│ {best} " in status.output and "2/2" in status.output and "1/1" in status.output
