"""Report plots: files are written, readable, and the drawn data is the summary's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from ablate.report.plots import (
    DPI,
    _draw_heatmap,
    _draw_metric_vs_key,
    _draw_training_curve,
    plot_heatmap,
    plot_metric_vs_key,
    plot_training_curves,
)
from ablate.report.stats import summarize

METRIC = "val/mIoU"
SEEDS = (0, 1, 2)
Cells = dict[str, dict[str, Any]]  # cell name -> its swept-key values


def make_trials(cells: Cells, keys: list[str]) -> pd.DataFrame:
    """cells: name -> key values; mIoU = 0.5 + 0.01 * (cell index + seed). Cell "dead" diverges."""
    rows = []
    for i, (cell, values) in enumerate(cells.items()):
        for seed in SEEDS:
            state = "DIVERGED" if cell == "dead" else "COMPLETE"
            metric = 0.5 + 0.01 * (i + seed) if state == "COMPLETE" else np.nan
            rows.append({"state": state, "cell": cell, "seed": seed, METRIC: metric, **values})
    table = pd.DataFrame(rows, columns=["state", "cell", "seed", METRIC, *keys])
    table.insert(0, "number", range(len(table)))
    return table


def study(cells: Cells, keys: list[str], extra: tuple[str, ...] = ()):
    trials = make_trials(cells, keys)
    summary = summarize(
        trials,
        metric=METRIC,
        goal="maximize",
        baseline=next(iter(cells)),
        keys=keys,
        cells=[*cells, *extra],
        n_boot=200,
    )
    return trials, summary


NUMERIC: Cells = {"w0": {"w": 0.0}, "w4": {"w": 0.4}, "w8": {"w": 0.8}, "dead": {"w": 1.0}}
CATEGORICAL: Cells = {
    "plain": {"ohem": None},
    "ohem_07": {"ohem": 0.7},
    "ohem_09": {"ohem": 0.9},
    "dead": {"ohem": 0.95},
}
STRINGS: Cells = {
    "full": {"target": "full"},
    "nearest": {"target": "nearest"},
    "cpp": {"target": "cpp"},
}
VARIANTS: Cells = {"base": {}, "no_aux_long_variant_name": {}, "lovasz_plus_ohem": {}, "dead": {}}


def assert_written(paths: list[Path], size: tuple[float, float] | None = None) -> None:
    png, svg = paths
    assert png.suffix == ".png" and svg.suffix == ".svg"
    assert png.stat().st_size > 1000 and svg.stat().st_size > 1000
    image = imread(png)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    if size is not None:
        assert image.shape[:2] == (round(size[1] * DPI), round(size[0] * DPI))
    assert image[..., :3].std() > 0.01  # not a blank canvas
    assert svg.read_text().lstrip().startswith("<?xml")


def draw(trials: pd.DataFrame, summary: pd.DataFrame, key: str | None, baseline: str):
    ax = Figure().subplots()
    _draw_metric_vs_key(ax, trials, summary, key=key, metric=METRIC, baseline=baseline)
    return ax


def by_gid(ax: Any, gid: str) -> Any:
    found = [a for a in [*ax.lines, *ax.collections] if a.get_gid() == gid]
    assert len(found) == 1, f"expected one artist {gid!r}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize(
    ("cells", "key"),
    [(NUMERIC, "w"), (CATEGORICAL, "ohem"), (STRINGS, "target"), (VARIANTS, None)],
    ids=["numeric", "categorical", "strings", "variants"],
)
def test_metric_vs_key_writes_png_and_svg(tmp_path: Path, cells: Cells, key: str | None):
    keys = [] if key is None else [key]
    trials, summary = study(cells, keys, extra=("never_ran",))
    baseline = next(iter(cells))
    paths = plot_metric_vs_key(
        trials, summary, key=key, metric=METRIC, baseline=baseline, out_dir=tmp_path, stem="metric"
    )
    assert paths == [tmp_path / "metric.png", tmp_path / "metric.svg"]
    assert_written(paths, size=(6.4, 4.0))


def test_numeric_key_draws_mean_line_in_points_over_key_values():
    trials, summary = study(NUMERIC, ["w"], extra=("never_ran",))
    ax = draw(trials, summary, "w", "w0")
    mean = by_gid(ax, "mean").get_xydata()
    # dead (w = 1.0) has no completed trial: the line stops at 0.8; values are ×100
    np.testing.assert_allclose(mean, [[0.0, 51.0], [0.4, 52.0], [0.8, 53.0]])
    assert ax.get_ylabel() == "val/mIoU (%)" and ax.get_xlabel().startswith("w")
    assert "never_ran" in ax.get_xlabel()  # cannot be placed on the axis: named instead
    np.testing.assert_allclose(by_gid(ax, "baseline").get_ydata(), [51.0, 51.0])
    missing = by_gid(ax, "missing").get_xdata()
    np.testing.assert_allclose(missing, [1.0])


def test_every_complete_seed_is_a_point_near_its_cell():
    trials, summary = study(NUMERIC, ["w"])
    points = by_gid(draw(trials, summary, "w", "w0"), "seeds").get_offsets()
    assert len(points) == 9  # three cells × three seeds; the diverged cell has none
    expected = sorted(50.0 + i + s for i in range(3) for s in SEEDS)
    np.testing.assert_allclose(sorted(points[:, 1]), expected)
    assert np.all(np.abs(points[:, 0] - np.round(points[:, 0] / 0.4) * 0.4) < 0.05)


def test_none_makes_a_key_categorical_with_labelled_ticks():
    trials, summary = study(CATEGORICAL, ["ohem"], extra=("never_ran",))
    ax = draw(trials, summary, "ohem", "plain")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["None", "0.7", "0.9", "0.95", "never_ran"]
    np.testing.assert_allclose(by_gid(ax, "mean").get_ydata()[:3], [51.0, 52.0, 53.0])
    np.testing.assert_allclose(by_gid(ax, "missing").get_xdata(), [3.0, 4.0])


def test_variants_use_cell_names_and_rotate_long_labels():
    trials, summary = study(VARIANTS, [])
    ax = draw(trials, summary, None, "base")
    ticks = ax.get_xticklabels()
    assert [t.get_text() for t in ticks] == list(VARIANTS)
    assert all(t.get_rotation() == 30 for t in ticks)
    assert ax.get_xlabel() == "cell"


def make_history() -> pd.DataFrame:
    rows = []
    for c, cell in enumerate(["base", "aux", "never_finished"]):
        for seed in SEEDS:
            for epoch in range(4):
                loss = 2.0 - 0.3 * epoch + 0.1 * seed + c
                miou = np.nan if cell == "never_finished" else 0.3 + 0.05 * epoch + 0.01 * seed
                rows.append(
                    {"cell": cell, "seed": seed, "epoch": epoch, "train/loss": loss, METRIC: miou}
                )
    return pd.DataFrame(rows)


def test_training_curves_write_files(tmp_path: Path):
    paths = plot_training_curves(
        make_history(), metrics=["train/loss", METRIC], out_dir=tmp_path / "plots", stem="curves"
    )
    assert_written(paths, size=(7.2, 3.4))


def test_training_curve_is_mean_over_seeds():
    ax = Figure().subplots()
    _draw_training_curve(ax, make_history(), metric=METRIC, cells=["base", "aux", "never_finished"])
    base = next(line for line in ax.lines if line.get_gid() == "base")
    np.testing.assert_allclose(np.asarray(base.get_xdata()), [0, 1, 2, 3])
    np.testing.assert_allclose(
        np.asarray(base.get_ydata()), [31.0, 36.0, 41.0, 46.0]
    )  # mean seed term 0.01
    never = next(line for line in ax.lines if line.get_gid() == "never_finished")
    assert np.asarray(never.get_xdata()).size == 0
    assert ax.get_ylabel() == "val/mIoU (%)" and ax.get_xlabel() == "epoch"


def test_training_curves_need_their_columns(tmp_path: Path):
    with pytest.raises(ValueError, match="val/pixel_acc"):
        plot_training_curves(make_history(), metrics=["val/pixel_acc"], out_dir=tmp_path, stem="x")


TWO_KEYS: Cells = {
    f"t{t}_w{w}": {"target": t, "w": w} for t in ("full", "nearest", "cpp") for w in (0.0, 0.4)
}


def test_heatmap_writes_files(tmp_path: Path):
    _, summary = study(TWO_KEYS, ["target", "w"], extra=("never_ran",))
    paths = plot_heatmap(
        summary, row_key="target", col_key="w", out_dir=tmp_path, stem="heat", metric=METRIC
    )
    assert_written(paths, size=(6.4, 4.4))


def test_heatmap_grid_holds_differences_in_points_with_stars():
    _, summary = study(TWO_KEYS, ["target", "w"])
    # Mark one cell significant and blank another, as the summary would for a missing cell.
    summary.loc[summary["cell"] == "tcpp_w0.4", "p_holm"] = 0.001
    summary.loc[summary["cell"] == "tnearest_w0.0", "diff"] = np.nan  # no data
    ax = Figure().subplots()
    grid = _draw_heatmap(ax, summary, row_key="target", col_key="w", value="diff", metric=METRIC)
    assert grid.shape == (3, 2)
    assert np.isnan(grid[0, 0])  # the baseline compares with nothing
    np.testing.assert_allclose(grid[0, 1], 1.0)  # cell index 1 vs 0: +0.01 -> +1 point
    np.testing.assert_allclose(grid[2, 1], 5.0)
    texts = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    assert texts[(0, 0)] == "baseline"
    assert texts[(1, 0)] == "missing"
    assert texts[(2, 1)] == "+5.00*"
    assert texts[(0, 1)] == "+1.00"


def test_heatmap_rejects_cells_sharing_a_slot():
    _, summary = study(TWO_KEYS, ["target", "w"])
    with pytest.raises(ValueError, match="share"):
        ax = Figure().subplots()
        _draw_heatmap(ax, summary, row_key="target", col_key="target", value="diff", metric=None)
