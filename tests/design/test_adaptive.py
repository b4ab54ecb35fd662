"""Adaptive seeds end to end with a made-up fit: rounds are queued only while a comparison is
undecided, each comparison stops where its sequential test decides, and the report says how
many seeds it took and why it stopped."""

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

from ablate.design import AdaptiveDesign
from ablate.errors import SpecError
from ablate.report import write_report
from ablate.study import Locations, Outcome, TrialRecord, TrialResult, create_or_load, run_study
from ablate.study_file import build_study
from ablate.train import EpochResult, FitResult

NOISE = [0.0, 0.02, -0.01, 0.015, 0.005, -0.02, 0.01, 0.0]  # by seed, shared by the cells
GAIN = {  # by the cell's lovasz weight: per-seed gains over the baseline
    0.5: [0.010, 0.011, 0.009, 0.0105, 0.010, 0.011, 0.009, 0.01],  # clear: decided at 4
    0.1: [0.004, -0.003, 0.002, -0.001, 0.003, -0.004, 0.001, 0.0],  # tiny and noisy
}


def _study(tmp_path: Path, seeds: Any, effect: float | None = 2.0) -> Any:
    raw = {
        "name": "adaptive",
        "base": {"data": {"num_classes": 4, "image_size": [32, 32]}},
        "sweep": {
            "variants": {"none": {}, "big": {"loss.lovasz": 0.5}, "small": {"loss.lovasz": 0.1}},
            "seeds": seeds,
        },
        "metric": {"name": "val/mIoU", "effect": effect},
        "baseline": "none",
    }
    return build_study(raw, tmp_path / "adaptive.yaml")


def _fit(recipe: Any, seed: int, device: Any, on_epoch: Any = None, checkpoint: Any = None):
    weight = recipe.loss.lovasz
    value = 0.5 + NOISE[seed] + (GAIN[weight][seed] if weight else 0.0)
    metrics = {"val/mIoU": value, "val/iou/a": value, "val/iou/b": 1 - value}
    epochs = [EpochResult(e, dict(metrics)) for e in (1, 2, 3, 4)]
    for epoch in epochs:
        on_epoch(epoch)
    return FitResult(epochs, False, 0.01, metrics)


def test_rounds_stop_where_each_comparison_is_decided(tmp_path: Path) -> None:
    study = _study(tmp_path, {"start": 2, "max": 8, "step": 2})
    assert isinstance(study.design, AdaptiveDesign)
    where = Locations.resolve(tmp_path / "results", "adaptive", None, None)
    outcome = run_study(study, where, None, 1, Console(quiet=True), train=_fit)
    assert outcome.failed == []

    queue = create_or_load(study, where.storage_url)
    seeds: dict[str, list[int]] = {}
    for r in queue.records():
        seeds.setdefault(r.cell, []).append(r.seed)
    decisions = study.design.decisions(queue.records())
    # big: undecided at 2 seeds (the first look spends almost nothing), better at 4;
    # small: a difference of 2 points is ruled out once the equivalence test can, or 8 seeds
    assert decisions["big"].status == "better" and decisions["big"].n == 4
    assert sorted(seeds["big"]) == [0, 1, 2, 3]
    small = decisions["small"]
    assert small.status == "equivalent" and sorted(seeds["small"]) == list(range(small.n))
    assert sorted(seeds["none"]) == list(range(max(4, small.n)))  # what both comparisons need
    assert len(queue.records()) == 4 + small.n + max(4, small.n)  # nothing twice

    report = write_report(study, queue, tmp_path / "results")
    summary = pd.read_csv(report.folder / "summary.csv").set_index("cell")
    assert summary.loc["big", "verdict"] == "better" and summary.loc["big", "seeds_used"] == 4
    assert "paired t-test rejected at n = 4" in summary.loc["big", "stopped"]
    assert summary.loc["small", "verdict"] == "no difference that matters"
    text = (report.folder / "report.md").read_text()
    big = decisions["big"]
    shown = f"{big.diff * 100:+.2f} [{big.ci_low * 100:+.2f}, {big.ci_high * 100:+.2f}]"
    assert "## Adaptive seeds" in text and f"| big | 4 | {shown} | better: paired t-test" in text
    assert big.ci_low < big.diff < big.ci_high and big.ci_low > 0  # it rejected at this look

    # resume: nothing to do
    again = run_study(study, where, None, 1, Console(quiet=True), train=_fit)
    assert again.trained == 0
    assert len(create_or_load(study, where.storage_url).records()) == len(queue.records())


def test_without_a_decision_the_seeds_stop_at_max(tmp_path: Path) -> None:
    study = _study(tmp_path, {"start": 2, "max": 4, "step": 2}, effect=None)
    where = Locations.resolve(tmp_path / "results", "adaptive", None, None)
    run_study(study, where, None, 1, Console(quiet=True), train=_fit)
    decisions = study.design.decisions(create_or_load(study, where.storage_url).records())
    assert decisions["small"].status == "max" and decisions["small"].n == 4


def test_adaptive_seeds_are_refused_for_a_search_and_checked(tmp_path: Path) -> None:
    raw = {
        "name": "s",
        "base": {"data": {"num_classes": 4}},
        "sweep": {
            "search": {"n_trials": 4, "space": {"train.lr": {"low": 0.001, "high": 0.1}}},
            "seeds": {"start": 2, "max": 4},
        },
    }
    with pytest.raises(SpecError, match="adaptive seeds need cells compared"):
        build_study(raw, tmp_path / "s.yaml")
    with pytest.raises(SpecError, match=r"max \(3\) must be at least start \(4\)"):
        _study(tmp_path, {"start": 4, "max": 3})


class _View:
    """The records so far, as a design reads a running study."""

    def __init__(self, records: list[TrialRecord]) -> None:
        self._records = records
        self.attrs: dict[str, Any] = {}

    def records(self) -> list[TrialRecord]:
        return self._records

    def sample(self, record: TrialRecord, space: Any, plan: Any) -> dict[str, Any]:
        raise AssertionError("adaptive seeds sample nothing")


def _trained(cell: str, seed: int, number: int) -> TrialRecord:
    """A COMPLETE trial of `cell` on `seed`, its value as `_fit` would give."""
    gain = {"big": GAIN[0.5], "small": GAIN[0.1]}.get(cell)
    value = 0.5 + NOISE[seed] + (gain[seed] if gain else 0.0)
    result = TrialResult(final={"val/mIoU": value})
    return TrialRecord(
        number, number, cell, seed, 1, {}, False, {}, Outcome.COMPLETE, False, value, result
    )


def test_declared_claims_drive_the_rounds_each_on_its_own_test(tmp_path: Path) -> None:
    raw = {
        "name": "claimed",
        "base": {"data": {"num_classes": 4, "image_size": [32, 32]}},
        "sweep": {
            "variants": {
                "none": {},
                "big": {"loss.lovasz": 0.5},
                "small": {"loss.lovasz": 0.1},
                "other": {"loss.lovasz": 0.3},
            },
            "seeds": {"start": 2, "max": 8, "step": 2},
        },
        "metric": {"name": "val/mIoU", "effect": 2.0},
        "baseline": "none",
        "claims": [
            {"a": "big", "b": "baseline", "test": "superior"},
            {"a": "small", "b": "none", "test": "noninferior", "margin": 2.0},
        ],
    }
    study = build_study(raw, tmp_path / "claimed.yaml")
    design = study.design
    assert isinstance(design, AdaptiveDesign) and len(design.claims) == 2
    outline = "\n".join(design.outline())
    assert "driven by the 2 declared claim(s), each at α = 0.025" in outline
    assert (
        "claim 0 (superior, one-sided): supported at z ≥ " in outline
        and "futility, non-binding" in outline
    )

    records: list[TrialRecord] = []
    while (round_ := design.next_round(records, {})) is not None:  # train what each asks
        assert design.later(_View(records)) >= 0
        records += [_trained(p.cell, p.seed, len(records) + i) for i, p in enumerate(round_.pairs)]
    assert design.later(_View(records)) == 0

    comparison = design.comparison(records, {})
    assert comparison.sequential == {}  # the cell comparisons are exploratory
    big, small = comparison.claims[0], comparison.claims[1]
    assert big.status == "supported" and big.reason.startswith("supported: one-sided paired")
    assert small.status == "supported" and "t-test rejected" in small.reason
    assert big.ci_low > 0 and small.ci_low > -0.02  # a − b in stored units, above −margin
    seeds = {c: sorted(r.seed for r in records if r.cell == c) for c in design.recipes}
    assert seeds["big"] == list(range(big.n)) and seeds["small"] == list(range(small.n))
    assert seeds["none"] == list(range(max(big.n, small.n)))  # what both claims need
    assert seeds["other"] == [0, 1]  # in no claim: the first round only
