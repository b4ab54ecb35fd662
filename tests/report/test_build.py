"""write_report from storage alone: trials made by hand in an in-memory Optuna study."""

import re
from html.parser import HTMLParser
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import create_trial

from ablate.report import trials_table, write_report
from ablate.report._tables import aux_weight_series
from ablate.study import Outcome, Queue, TrialResult, _record
from ablate.study_file import load_study

STUDY = """
name: two_keys
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4], loss.aux.schedule: [constant, linear]}
  seeds: [0, 1, 2]
baseline: {loss.aux.weight: 0.0, loss.aux.schedule: constant}
"""


def _study(tmp_path: Path, text: str = STUDY):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_study(path)


def _storage(
    study,
    values: dict[tuple[str, int], float],
    failed=(),
    curve=None,
    ious=None,
    error: str = "RuntimeError: boom",
) -> Queue:
    """Ended trials as a worker stores them (through the record's own writers). `curve(v)`
    gives the val/mIoU history ending at v (default: v/2, v); `ious(v)` the final per-class
    IoUs (default: one class, a); `error` that of each `failed` trial."""
    ostudy = optuna.create_study(direction="maximize")
    for cell in study.cells:
        for seed in study.spec.sweep.seeds:
            attrs = _record.enqueued(cell.name, seed, cell.overrides, 1, sampled=False)
            if (cell.name, seed) in failed:
                state, ended = _record.ended(Outcome.FAILED, error=error)
                ostudy.add_trial(create_trial(state=state, user_attrs=attrs | ended))
                continue
            v = values[(cell.name, seed)]
            points = curve(v) if curve else [v / 2, v]
            history = [{"train/loss/ce": 1.0 / k, "val/mIoU": m} for k, m in enumerate(points, 1)]
            final = {"val/mIoU": v, **(ious(v) if ious else {"val/iou/a": v})}
            result = TrialResult(history, final, duration_s=1.5)
            state, ended = _record.ended(Outcome.COMPLETE, result)
            ostudy.add_trial(create_trial(state=state, value=v, user_attrs=attrs | ended))
    return Queue(ostudy, "memory")


def test_report_from_storage_has_tables_plots_latex_and_two_way_anova(tmp_path: Path) -> None:
    study = _study(tmp_path)
    base = {0: 0.50, 1: 0.52, 2: 0.51}
    values = {
        (c.name, s): base[s]
        + 0.05 * c.overrides["loss.aux.weight"] * (s + 1) / 2
        + (0.01 if c.overrides["loss.aux.schedule"] == "linear" else 0.0)
        for c in study.cells
        for s in (0, 1, 2)
    }
    report = write_report(study, _storage(study, values), tmp_path / "results")
    folder = tmp_path / "results" / "two_keys"
    assert {p.name for p in report.files} >= {
        "trials.csv",
        "summary.csv",
        "report.md",
        "table.tex",
        "diff_heatmap.png",
        "metric_vs_cell.png",
        "aux_weight.png",
        "per_class_diff.png",
        "training_curves.png",
    }
    summary = pd.read_csv(folder / "summary.csv")
    row = summary.set_index("cell").loc["aux.weight=0.4,aux.schedule=linear"]
    assert row["diff"] == pytest.approx(0.01 + 0.05 * 0.4 * (0.5 + 1 + 1.5) / 3)
    text = (folder / "report.md").read_text()
    assert "## Two-way table" in text and "interaction: F = " in text
    assert "\\toprule" in (folder / "table.tex").read_text()


def test_missing_cells_are_shown_as_missing(tmp_path: Path) -> None:
    study = _study(tmp_path)
    gone = {(c.name, s) for c in study.cells[1:2] for s in (0, 1, 2)}
    values = {(c.name, s): 0.5 for c in study.cells for s in (0, 1, 2)}
    report = write_report(study, _storage(study, values, failed=gone), tmp_path / "r")
    row = report.summary.set_index("cell").loc[study.cells[1].name]
    assert row["n"] == 0 and row["verdict"] == "missing"
    assert set(trials_table(_storage(study, values, failed=gone).records(), study)["state"]) == {
        "COMPLETE",
        "FAIL",
    }


def test_aux_weight_series_follows_each_cells_schedule(tmp_path: Path) -> None:
    study = _study(tmp_path)
    series = aux_weight_series(study, [c.name for c in study.cells], points=5)
    linear = series[series["cell"] == "aux.weight=0.4,aux.schedule=linear"]
    assert list(linear["weight"]) == pytest.approx([0.4, 0.3, 0.2, 0.1, 0.0])
    constant_only = STUDY.replace("[constant, linear]", "[constant]").replace(
        "loss.aux.schedule: constant}", "loss.aux.schedule: constant}"
    )
    only = _study(tmp_path, constant_only)
    assert aux_weight_series(only, [c.name for c in only.cells]).empty


def test_html_from_the_study_file_is_shown_as_text_in_report_html(tmp_path: Path) -> None:
    text = STUDY.replace(
        "name: two_keys\n",
        "name: two_keys\ndescription: '<script>alert(1)</script> & <b>bold</b>'\n",
    )
    study = _study(tmp_path, text)
    values = {(c.name, s): 0.5 + 0.01 * s for c in study.cells for s in study.spec.sweep.seeds}
    report = write_report(study, _storage(study, values), tmp_path / "results")
    page = (report.folder / "report.html").read_text()
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "<table>" in page and "<img" in page  # the report's own markdown still renders


TWO_CELLS = """
name: two_cells
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4, 1.0]}
  seeds: [0, 1, 2, 3]
metric: {name: val/mIoU, effect: 0.5}
baseline: {loss.aux.weight: 0.0}
"""
FLAT = lambda v: [v - 0.1, v - 0.01, v, v, v, v]  # noqa: E731 - learned, then settled
TWO_CLASSES = lambda v: {"val/iou/bg": 0.9, "val/iou/a": 2 * v - 0.9}  # noqa: E731


def test_real_difference_is_reported_first_with_its_interval_and_mde(tmp_path: Path) -> None:
    study = _study(tmp_path, TWO_CELLS)
    noise = {0: 0.0, 1: 0.004, 2: -0.003, 3: 0.001}
    gain = {0.0: 0.0, 0.4: 0.03, 1.0: 0.001}
    spread = {0.0: 1.0, 0.4: 2.0, 1.0: 4.0}  # the pairs differ by seed, not by a constant
    values = {
        (c.name, s): 0.60 + gain[w] + noise[s] * spread[w]
        for c in study.cells
        for w in [c.overrides["loss.aux.weight"]]
        for s in range(4)
    }
    argv = ["ablate", "report", "s.yaml", "--set", "base.train.epochs=2"]
    report = write_report(
        study, _storage(study, values, curve=FLAT, ious=TWO_CLASSES), tmp_path / "r", argv
    )
    summary = pd.read_csv(report.folder / "summary.csv").set_index("cell")
    better = summary.loc["aux.weight=0.4"]
    assert better["verdict"] == "better" and pd.isna(better["health"])  # no failed check
    assert better["diff"] == pytest.approx(0.03 + 0.0005) and better["mde"] > 0
    same = summary.loc["aux.weight=1"]
    assert same["verdict"].startswith("no detectable difference at n = 4: rules out gains above ")
    assert "; could detect ≥ " in same["verdict"]
    assert same["seeds_needed"] > 4  # 0.5 points with this spread needs more seeds
    text = (report.folder / "report.md").read_text()
    order = [
        text.index(h)
        for h in (
            "## Health",
            "## Difference from the baseline",
            "## Verdicts",
            "## Ablation table",
            "## Provenance",
        )
    ]
    assert order == sorted(order)
    assert "![diff_vs_baseline](plots/diff_vs_baseline.png)" in text
    assert (report.folder / "plots" / "diff_vs_baseline.svg").exists()
    assert "Every check passed" in text
    assert "paired 95% t-interval" in text and "— better." in text
    assert "about " in text and "seeds (has 4)" in text  # seeds needed for metric.effect
    assert "- command: `ablate report s.yaml --set base.train.epochs=2`" in text
    assert "`--set` overrides: `base.train.epochs=2`" in text and "```yaml" in text
    trials = pd.read_csv(report.folder / "trials.csv")
    assert {"error", "collapsed", "late_gain"} <= set(trials.columns)
    assert not trials["collapsed"].any() and trials["late_gain"].abs().max() < 1e-9


def test_a_study_that_learned_nothing_reads_inconclusive(tmp_path: Path) -> None:
    study = _study(tmp_path, TWO_CELLS)
    values = {(c.name, s): 0.122 for c in study.cells for s in range(4)}
    background = lambda v: {"val/iou/bg": 0.732, "val/iou/a": 0.0, "val/iou/b": 0.0}  # noqa: E731
    report = write_report(
        study, _storage(study, values, curve=FLAT, ious=background), tmp_path / "r"
    )
    text = (report.folder / "report.md").read_text()
    assert "**The models did not learn: all 12 completed trials predict one class.**" in text
    assert "classes never learned (IoU 0 in all 12 completed trials): a, b" in text
    verdicts = report.summary.set_index("cell")["verdict"].drop("aux.weight=0")
    assert all(v.startswith("inconclusive: 4 of 4 seeds predict one class") for v in verdicts)
    assert "no detectable difference" not in text and "**12.20" not in text
    assert pd.read_csv(report.folder / "trials.csv")["collapsed"].all()


def test_a_missing_result_in_a_two_way_grid_costs_only_that_result(tmp_path: Path) -> None:
    study = _study(tmp_path)
    values = {
        (c.name, s): 0.5
        + 0.01 * s
        + 0.02 * c.overrides["loss.aux.weight"]
        + 0.001 * (s * s) * (c.overrides["loss.aux.schedule"] == "linear")
        for c in study.cells
        for s in (0, 1, 2)
    }
    lost = {(study.cells[3].name, 2)}
    report = write_report(study, _storage(study, values, failed=lost), tmp_path / "r")
    text = (report.folder / "report.md").read_text()
    assert "unbalanced: 1 (pair, seed) result(s) missing, all others used" in text
    line = next(x for x in text.splitlines() if x.startswith("Two-way ANOVA"))
    assert "F = nan" not in line and line.count("F = ") == 3


def test_a_second_report_removes_the_plots_the_first_wrote_and_it_did_not(
    tmp_path: Path,
) -> None:
    study = _study(tmp_path)
    values = {(c.name, s): 0.5 + 0.01 * s for c in study.cells for s in (0, 1, 2)}
    queue = _storage(study, values)
    first = write_report(study, queue, tmp_path / "results")
    plots = tmp_path / "results" / "two_keys" / "plots"
    (plots / "gradient_flow.png").write_bytes(b"from a report of another run")
    second = write_report(study, queue, tmp_path / "results")
    assert not (plots / "gradient_flow.png").exists()
    assert {p.name for p in second.files} == {p.name for p in first.files}
    assert all(p.exists() for p in second.files)


HOSTILE = """
name: hostile
description: |
  See [the paper](https://arxiv.org/abs/1612.01105) and [x](javascript:alert(1)).
  <script>alert(1)</script> <img src=x onerror=alert(1)>
  # not a heading
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
sweep:
  variants:
    none: {loss.aux.weight: 0.0}
    "# injected [y](javascript:alert(2)) <script>alert(3)</script> | x": {loss.aux.weight: 0.4}
    "[z]: javascript:alert(6)": {loss.aux.weight: 1.0}
    '$\\frac{a$ costs $5': {loss.aux.weight: 0.7}  # no mathtext a plot could draw
  seeds: [0, 1, 2]
baseline: none
"""
INJECTED = "x\n# injected\n[y](javascript:alert(2))"


class _Page(HTMLParser):
    """Every tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_text_from_the_study_file_and_the_trials_is_text_in_every_rendering(
    tmp_path: Path,
) -> None:
    study = _study(tmp_path, HOSTILE)
    values = {
        (c.name, s): 0.5 + 0.01 * s + 0.02 * i for i, c in enumerate(study.cells) for s in (0, 1, 2)
    }
    failed = {(study.cells[2].name, 2)}
    ious = lambda v: {"val/iou/bg": v, f"val/iou/{INJECTED} <img src=x onerror=alert(4)>": 0.0}  # noqa: E731
    error = f"RuntimeError: <img src=x onerror=alert(5)>\n{INJECTED}"
    report = write_report(
        study, _storage(study, values, failed=failed, ious=ious, error=error), tmp_path / "r"
    )
    text = (report.folder / "report.md").read_text()
    ours = {line for line in text.splitlines() if line.startswith("#")}
    assert all(line.startswith(("# hostile", "## ")) for line in ours), ours
    assert not any("injected" in line for line in ours)
    assert "](javascript:" not in text
    assert not re.search(r"^\s*\[[^\]]*\]:", text, re.MULTILINE)  # no link definition
    assert not re.search(r"<\s*(script|img)", text, re.IGNORECASE)
    assert "[the paper](https://arxiv.org/abs/1612.01105)" in text  # an http(s) link stays
    # a line of the trials table is one trial: the error's line breaks are not the table's
    rows = [line for line in text.split("## Trials")[1].splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(study.cells) * 3

    page = _Page()
    page.feed((report.folder / "report.html").read_text())
    assert {tag for tag, _ in page.tags} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "ul", "li", "a",
        "img", "code", "strong", "em", "table", "thead", "tbody", "tr", "th", "td",
    }  # fmt: skip
    for tag, attrs in page.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        for name in ("href", "src"):
            target = attrs.get(name)
            assert target is None or target.startswith(("https://", "plots/")), (tag, attrs)
    assert ("a", {"href": "https://arxiv.org/abs/1612.01105"}) in page.tags
    assert [tag for tag, _ in page.tags].count("h1") == 1

    tex = (report.folder / "table.tex").read_text()
    rows = tex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(rows) == len(study.cells) and all(row.endswith(r" \\") for row in rows)
    assert r"\# injected {[}y{]}(javascript:alert(2)) \textless{}script" in tex
    assert r"\$\textbackslash{}frac\{a\$ costs \$5" in tex
    assert {"metric_vs_cell.png", "diff_vs_baseline.svg"} <= {p.name for p in report.files}
