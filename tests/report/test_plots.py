"""Report plots: files are written, readable, and the drawn data is the summary's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.text import Text

from ablate.report import Kind, Paired, SummaryRow, Verdict
from ablate.report._plot_classes import _draw_per_class_diff, _per_class_figure
from ablate.report._plot_forest import _draw_diff_vs_baseline
from ablate.report._plot_gradients import _gradient_flow_figure
from ablate.report._plot_heatmap import _draw_heatmap
from ablate.report._plot_metric import _draw_metric_vs_key
from ablate.report._plot_training import _aux_weight_figure, _draw_training_curve
from ablate.report.plots import (
    DPI,
    WANG_THRESHOLD,
    plot_aux_weight,
    plot_diff_vs_baseline,
    plot_gradient_flow,
    plot_heatmap,
    plot_metric_vs_key,
    plot_per_class_diff,
    plot_training_curves,
)
from ablate.report.stats import summarize
from ablate.study import Outcome

METRIC = "val/mIoU"
SEEDS = (0, 1, 2)
Cells = dict[str, dict[str, Any]]  # cell name -> its swept-key values


def make_trials(cells: Cells, keys: list[str]) -> pd.DataFrame:
    """cells: name -> key values; mIoU = 0.5 + 0.01 * (cell index + seed). Cell "dead" diverges."""
    rows = []
    for i, (cell, values) in enumerate(cells.items()):
        for seed in SEEDS:
            outcome = Outcome.DIVERGED if cell == "dead" else Outcome.COMPLETE
            metric = 0.5 + 0.01 * (i + seed) if outcome is Outcome.COMPLETE else np.nan
            rows.append({"outcome": outcome, "cell": cell, "seed": seed, METRIC: metric, **values})
    table = pd.DataFrame(rows, columns=["outcome", "cell", "seed", METRIC, *keys])
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
    # (the fixture's differences are exact shifts, p = 0: set the p-values by hand)
    summary.loc[summary["cell"] == "tcpp_w0.4", "p_holm"] = 0.001
    summary.loc[summary["cell"] == "tfull_w0.4", "p_holm"] = 0.5
    summary.loc[summary["cell"] == "tnearest_w0.0", "diff"] = np.nan  # no data
    ax = Figure().subplots()
    grid = _draw_heatmap(
        ax,
        summary,
        row_key="target",
        col_key="w",
        value="diff",
        metric=METRIC,
        baseline="tfull_w0.0",
    )
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


def assert_no_overlapping_text(fig: Figure) -> None:
    """Render the figure and check that no two visible, non-empty texts overlap.

    Texts pass when their bounding boxes share no pixels. A slanted text's box is larger than
    the text, so two texts slanted by the same angle (tick labels) whose boxes meet are parallel
    strips instead: their anchors must lie at least a line height apart across the slant.
    """
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    for n, text in enumerate(texts):
        box = text.get_window_extent(renderer).padded(-1)
        for other in texts[n + 1 :]:
            if not box.overlaps(other.get_window_extent(renderer).padded(-1)):
                continue
            pair = f"{text.get_text()!r} overlaps {other.get_text()!r}"
            angle = text.get_rotation()
            assert angle % 360 and angle == other.get_rotation(), pair
            anchors = [t.get_transform().transform(t.get_position()) for t in (text, other)]
            across = np.array([-np.sin(np.radians(angle)), np.cos(np.radians(angle))])
            line = max(t.get_fontsize() for t in (text, other)) * fig.dpi / 72
            assert abs(np.dot(anchors[1] - anchors[0], across)) >= line, pair


CITYSCAPES = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
]  # fmt: skip


def make_per_class(classes: list[str], cells: list[str]) -> pd.DataFrame:
    """diff = 0.01 * (class index - 2) * (cell index + 1); CI ± 0.015, so |diff| > 0.015 is
    significant. The first cell has no paired seed for the second class."""
    rows = []
    for c, cell in enumerate(cells):
        for k, name in enumerate(classes):
            diff = 0.01 * (k - 2) * (c + 1)
            row = {"cell": cell, "class": name, "diff": diff, "n_pairs": 3}
            row |= {"ci_low": diff - 0.015, "ci_high": diff + 0.015}
            if (c, k) == (0, 1):
                row |= {"diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_pairs": 0}
            rows.append(row)
    return pd.DataFrame(rows)


def test_per_class_diff_writes_files(tmp_path: Path):
    table = make_per_class(CITYSCAPES[:5], ["aux_0.4", "lovasz"])
    paths = plot_per_class_diff(table, out_dir=tmp_path, stem="per_class")
    assert paths == [tmp_path / "per_class.png", tmp_path / "per_class.svg"]
    assert_written(paths)


def test_per_class_grid_is_in_points_with_stars_where_the_ci_excludes_zero():
    ax = Figure().subplots()
    grid = _draw_per_class_diff(ax, make_per_class(CITYSCAPES[:4], ["aux_0.4", "lovasz"]))
    np.testing.assert_allclose(grid, [[-2.0, np.nan, 0.0, 1.0], [-4.0, -2.0, 0.0, 2.0]])
    texts = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    assert texts == {
        (0, 0): "-2.0*",
        (0, 2): "+0.0",
        (0, 3): "+1.0",
        (1, 0): "-4.0*",
        (1, 1): "-2.0*",
        (1, 2): "+0.0",
        (1, 3): "+2.0*",
    }  # no text on the class without paired seeds
    image = ax.images[0]
    assert image.norm.vmin == -image.norm.vmax == -4.0  # centred at 0
    assert image.get_cmap().name.startswith("RdBu")
    assert [t.get_text() for t in ax.get_xticklabels()] == CITYSCAPES[:4]
    assert "points" in image.colorbar.ax.get_ylabel()


def test_per_class_many_classes_stars_only_and_labels_stay_apart():
    cells = ["loss.aux.weight=0.4", "lovasz_plus_ohem_and_a_long_name", "cpp_target"]
    fig = _per_class_figure(make_per_class(CITYSCAPES, cells))
    ax = fig.axes[0]
    assert {t.get_text() for t in ax.texts} == {"*"}
    assert_no_overlapping_text(fig)


def test_per_class_rejects_a_repeated_class():
    table = make_per_class(["road", "pole"], ["aux"])  # pole: no paired seed, NaN
    with pytest.raises(ValueError, match="two rows for class 'pole'"):
        _draw_per_class_diff(Figure().subplots(), pd.concat([table, table.tail(1)]))
    with pytest.raises(ValueError, match="two rows for class 'road'"):
        _draw_per_class_diff(Figure().subplots(), pd.concat([table, table]))


LAYERS = ["stem", "stage1", "stage2", "ppm", "head"]


def make_gradients(cells: list[str]) -> pd.DataFrame:
    """value = 10^-(3 + layer index) * (1 + seed) * (1 - progress / 2), progress 0, 0.5, 1."""
    rows = [
        {
            "cell": cell,
            "seed": seed,
            "progress": t,
            "layer": layer,
            "value": 10.0 ** -(3 + k) * (1 + seed) * (1 - t / 2),
        }
        for cell in cells
        for seed in SEEDS
        for t in (0.0, 0.5, 1.0)
        for k, layer in enumerate(LAYERS)
    ]
    return pd.DataFrame(rows)


def test_gradient_flow_writes_files(tmp_path: Path):
    paths = plot_gradient_flow(make_gradients(["base", "aux"]), out_dir=tmp_path, stem="grad")
    assert_written(paths)


def test_gradient_flow_has_a_log_panel_per_cell_with_seed_means_and_the_threshold():
    cells = ["base", "aux_0.4", "lovasz_plus_ohem", "everything_together"]
    fig = _gradient_flow_figure(make_gradients(cells))
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == cells  # 4 cells: 3 + 1, wrapped
    assert len(fig.axes) == 6
    first = panels[0]
    assert first.get_yscale() == "log"
    stage1 = next(line for line in first.lines if line.get_gid() == "stage1")
    np.testing.assert_allclose(stage1.get_xdata(), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(stage1.get_ydata(), [2e-4, 1.5e-4, 1e-4])  # mean of 1, 2, 3 × ...
    for ax in panels:
        threshold = next(line for line in ax.lines if line.get_gid() == "threshold")
        assert threshold.get_linestyle() == "--"
        np.testing.assert_allclose(threshold.get_ydata(), [WANG_THRESHOLD] * 2)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:-1] == LAYERS and legend[-1].startswith("Wang et al. threshold")
    # Every panel at the bottom of its column has a labelled x axis, units included.
    assert [bool(ax.get_xlabel()) for ax in panels] == [False, True, True, True]
    assert all("progress" in ax.get_xlabel() for ax in panels[1:])
    assert_no_overlapping_text(fig)


def test_gradient_flow_needs_its_columns(tmp_path: Path):
    with pytest.raises(ValueError, match="layer"):
        plot_gradient_flow(make_gradients(["a"]).drop(columns="layer"), out_dir=tmp_path, stem="g")


def make_schedules() -> pd.DataFrame:
    """Two seeds logged the same linear decay; a constant schedule; a step at progress 0.5."""
    rows = []
    for t in np.linspace(0.0, 1.0, 11):
        rows += [{"cell": "linear", "progress": t, "weight": 0.4 * (1 - t)} for _ in SEEDS]
        rows.append({"cell": "constant", "progress": t, "weight": 0.4})
        rows.append({"cell": "step", "progress": t, "weight": 0.4 if t < 0.5 else 0.0})
    return pd.DataFrame(rows)


def test_aux_weight_writes_files(tmp_path: Path):
    assert_written(plot_aux_weight(make_schedules(), out_dir=tmp_path, stem="aux"), (6.4, 3.6))


def test_aux_weight_draws_one_line_per_cell_against_progress():
    fig = _aux_weight_figure(make_schedules())
    ax = fig.axes[0]
    assert [line.get_gid() for line in ax.lines] == ["linear", "constant", "step"]
    linear = ax.lines[0]
    np.testing.assert_allclose(linear.get_xdata(), np.linspace(0.0, 1.0, 11))
    np.testing.assert_allclose(linear.get_ydata(), 0.4 * (1 - np.linspace(0.0, 1.0, 11)))
    assert len({line.get_linestyle() for line in ax.lines}) == 3
    assert ax.get_xlim() == (0.0, 1.0) and ax.get_ylim()[0] == 0.0
    assert "progress" in ax.get_xlabel() and "alpha" in ax.get_ylabel()
    assert_no_overlapping_text(fig)


def forest_row(cell: str, verdict: Verdict, *interval: float, mde: float = np.nan) -> SummaryRow:
    """A summary row with a paired difference and its interval (none given: no pairs)."""
    diff, low, high = interval or (np.nan, np.nan, np.nan)
    paired = Paired(diff, low, high, n_pairs=3 if interval else 0, mde=mde)
    return SummaryRow(cell, paired=paired, verdict=verdict)


def test_forest_plot_draws_each_cells_paired_interval_and_mde_band(tmp_path: Path):
    summary = [
        forest_row("base", Verdict(Kind.BASELINE)),
        forest_row("gain", Verdict(Kind.BETTER), 0.02, 0.01, 0.03, mde=0.008),
        forest_row("flat", Verdict(Kind.NO_DIFFERENCE, n=3), 0.001, -0.01, 0.012, mde=0.015),
        forest_row("gone", Verdict(Kind.MISSING)),
    ]
    ax = Figure().subplots()
    _draw_diff_vs_baseline(ax, summary, metric=METRIC, baseline="base")
    intervals = [line for line in ax.lines if line.get_gid() == "ci"]
    assert [list(line.get_xdata()) for line in intervals] == [
        pytest.approx([1.0, 3.0]),
        pytest.approx([-1.0, 1.2]),
    ]  # in points, first cell on top; the missing cell has none
    bands = [c for c in ax.collections if c.get_gid() == "mde"]
    widths = sorted(float(np.ptp(b.get_paths()[0].vertices[:, 0])) for b in bands)
    assert widths == pytest.approx([1.6, 3.0])  # ± MDE around zero
    colors = {line.get_color() for line in intervals}
    assert len(colors) == 2  # better and no-difference read differently
    labels = {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()}
    assert labels["gain\nbetter"] > labels["gone\nmissing"]  # first cell on top
    assert "flat\nno detectable difference at n = 3" in labels
    assert "points" in ax.get_xlabel()
    paths = plot_diff_vs_baseline(
        summary, metric=METRIC, baseline="base", out_dir=tmp_path, stem="diff"
    )
    assert [p.name for p in paths] == ["diff.png", "diff.svg"] and all(p.exists() for p in paths)


def test_per_class_plot_marks_never_learned_classes(tmp_path: Path):
    table = pd.DataFrame(
        {
            "cell": ["b", "b"],
            "class": ["road", "pole"],
            "diff": [0.02, 0.0],
            "ci_low": [0.01, 0.0],
            "ci_high": [0.03, 0.0],
            "p_holm": [0.01, np.nan],
            "never_learned": [False, True],
        }
    )
    ax = Figure().subplots()
    grid = _draw_per_class_diff(ax, table)
    assert np.isnan(grid[0, 1])  # not a "+0.0"
    assert sorted(t.get_text() for t in ax.texts) == ["+2.0*", "n/l"]


def test_a_figure_taller_than_a_page_is_written_as_png_only(tmp_path: Path):
    from ablate.report._figure import PAGE_HEIGHT_IN, save

    short = save(Figure(figsize=(6.0, PAGE_HEIGHT_IN)), tmp_path, "short")
    tall = save(Figure(figsize=(6.0, PAGE_HEIGHT_IN + 1)), tmp_path, "tall")
    assert [p.name for p in short] == ["short.png", "short.svg"]
    assert [p.name for p in tall] == ["tall.png"] and not (tmp_path / "tall.svg").exists()


def test_a_forest_plot_of_many_cells_names_the_verdicts_by_colour(tmp_path: Path):
    n = 30
    kinds = [Kind.WORSE, Kind.NO_DIFFERENCE, Kind.BETTER] * 10
    diffs, lows, highs = (
        np.linspace(a, b, n) for a, b in ((-0.02, 0.02), (-0.03, 0.01), (-0.01, 0.03))
    )
    summary = [forest_row("base", Verdict(Kind.BASELINE))] + [
        forest_row(f"c{i}", Verdict(kinds[i], n=3), diffs[i], lows[i], highs[i], mde=0.01)
        for i in range(n)
    ]
    fig = Figure()
    ax = fig.subplots()
    _draw_diff_vs_baseline(ax, summary, metric=METRIC, baseline="base")
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["c0", "c1"]  # no verdict lines
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"verdict: better", "verdict: worse", "verdict: no detectable difference"} <= set(legend)


def test_hundreds_of_categories_are_numbered_in_the_summary_s_order():
    n = 120
    cells = [f"aux.weight={i / 100},loss.lovasz={i % 7 / 10}" for i in range(n)]
    summary = pd.DataFrame({"cell": cells, "n": 2, "mean": 0.5, "ci_low": 0.45, "ci_high": 0.55})
    trials = pd.DataFrame(
        {"cell": cells * 2, "seed": [0] * n + [1] * n, "outcome": Outcome.COMPLETE, METRIC: 0.5}
    )
    ax = Figure().subplots()
    _draw_metric_vs_key(ax, trials, summary, key=None, metric=METRIC, baseline=cells[0])
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:3] == ["1", "11", "21"] and len(labels) == 12
    assert ax.get_xticks()[1] == 10.0  # row 11 of summary.csv sits at position 10
    assert "row of summary.csv (120 cells)" in ax.get_xlabel()
