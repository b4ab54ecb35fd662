"""The shipped real-dataset studies (Cityscapes, ADE20K): their design as written, and the
message a user gets when the dataset is not where data.root says. No data, weights or GPU are
needed: only the spec is validated (`validate`'s preflight stops at the missing folder, before
any model is built)."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablate.cli import app
from ablate.study_file import load_study

STUDIES = Path(__file__).parents[1] / "studies"

# file -> (swept key, its values in cell order, baseline value, number of classes)
EXPECTED = {
    "cityscapes/pspnet_aux.yaml": ("loss.aux.weight", [0.0, 0.2, 0.4, 0.6, 1.0], 0.0, 19),
    "cityscapes/cpp_deeplabv3plus.yaml": (
        "loss.aux.target",
        ["full", "nearest", "cpp"],
        "nearest",
        19,
    ),
    "ade20k/pspnet_aux.yaml": ("loss.aux.weight", [0.0, 0.3, 0.4, 0.6, 1.0], 0.0, 150),
}


def test_every_real_study_is_listed_here() -> None:
    shipped = {p.relative_to(STUDIES).as_posix() for p in STUDIES.glob("*/*.yaml")}
    assert shipped == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_study_has_its_cells_seeds_and_baseline(name: str) -> None:
    key, values, baseline, _ = EXPECTED[name]
    study = load_study(STUDIES / name)
    assert study.keys == [key]
    assert [c.overrides[key] for c in study.cells] == values
    assert study.spec.sweep.seeds == [0, 1, 2]
    assert study.n_trials == 3 * len(values)
    assert study.recipes[study.baseline].model_dump()["loss"]["aux"][key.split(".")[-1]] == (
        baseline
    )
    assert study.spec.metric.name == "val/mIoU"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_study_trains_the_published_recipe(name: str) -> None:
    recipe = load_study(STUDIES / name).spec.base
    assert recipe.data.num_classes == EXPECTED[name][3]
    assert recipe.data.root is not None and recipe.data.root.startswith("data/")  # placeholder
    assert recipe.model.args["backbone"] == "resnet50"
    assert recipe.model.args["pretrained"] is True
    t = recipe.train
    assert (t.optimizer, t.lr, t.momentum, t.weight_decay, t.poly_power) == (
        "sgd",
        0.01,
        0.9,
        0.0001,
        0.9,
    )
    assert t.iters is not None and t.iters >= 40_000
    assert recipe.eval.mode == "slide" and recipe.eval.crop == recipe.data.image_size


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_study_states_its_gpu_hours(name: str) -> None:
    description = load_study(STUDIES / name).spec.description
    assert "GPU-hours per trial" in description and "estimate" in description


def test_root_override_reaches_the_recipe(tmp_path: Path) -> None:
    study = load_study(
        STUDIES / "cityscapes/pspnet_aux.yaml", [f"base.data.root={tmp_path / 'cs'}"]
    )
    assert all(r.data.root == str(tmp_path / "cs") for r in study.recipes.values())


def test_validate_names_data_root_when_the_folder_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "no_cityscapes_here"
    result = CliRunner().invoke(
        app,
        [
            "validate",
            str(STUDIES / "cityscapes/pspnet_aux.yaml"),
            "--set",
            f"base.data.root={missing}",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "data.root" in result.output
    assert "no_cityscapes_here" in result.output
    assert "Traceback" not in result.output
