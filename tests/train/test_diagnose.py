from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablate.cli import app
from ablate.spec import Recipe
from ablate.train.diagnose import StageGradient, diagnose, recommend, stage_names

# Six BN-free stages under PyTorch's default init: the first stages' gradients vanish (issue 13)
PLAIN_TORCH_INIT = {"width": 4, "depth": 6, "batch_norm": False, "init": "torch"}
STEPS = 12


def tiny(model: str, args: dict[str, object]) -> Recipe:
    return Recipe.model_validate(
        {
            "data": {"num_classes": 3, "image_size": [32, 32], "train_size": 8, "val_size": 2},
            "model": {"name": model, "args": args},
            "train": {"batch_size": 4},
        }
    )


def test_a_plain_net_under_torch_init_starves_its_early_stages() -> None:
    found = diagnose(tiny("dsnet", PLAIN_TORCH_INIT), STEPS, every=2)
    assert [s.name for s in found.stages] == [f"stage{k}" for k in range(1, 7)]
    assert found.first_vanishing == "stage1"
    assert found.recommended[:2] == ("stage1", "stage2") and "stage6" not in found.recommended
    assert not found.stages[-1].vanishing
    assert [i for i, _ in found.samples] == list(range(0, STEPS, 2))
    assert found.aux_weight == 0.0  # companion losses off while measuring


def test_a_residual_net_has_no_stage_under_the_threshold() -> None:
    found = diagnose(tiny("pspnet_tiny", {"width": 4}), STEPS, every=4)
    assert [s.name for s in found.stages] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert found.recommended == () and found.first_vanishing is None


def stage(name: str, vanishing: bool) -> StageGradient:
    return StageGradient(name, 1.0, 1e-9 if vanishing else 1.0, vanishing)


def test_no_head_is_recommended_after_the_last_stage_or_on_the_stem() -> None:
    stages = [stage("stem", True), stage("stage1", False), stage("stage2", True)]
    assert recommend(stages) == ("stage1",)  # the stem's head goes after the stage it feeds


def write_study(folder: Path, model: str, args: dict[str, object]) -> Path:
    file = folder / "diag.yaml"
    file.write_text(
        "name: diag\n"
        "base:\n"
        "  data: {num_classes: 3, image_size: [32, 32], train_size: 8, val_size: 2}\n"
        f"  model: {{name: {model}, args: {args}}}\n"
        "  train: {batch_size: 4}\n"
        "sweep: {variants: {a: {}}, seeds: [0]}\n"
    )
    return file


def test_the_command_prints_the_table_and_writes_the_plot(tmp_path: Path) -> None:
    study = write_study(tmp_path, "dsnet", PLAIN_TORCH_INIT)
    results = tmp_path / "results"
    cmd = ["diagnose", str(study), "--steps", str(STEPS), "--results", str(results)]
    result = CliRunner().invoke(app, cmd, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "mean |∂L/∂w|" in result.output and "stage6" in result.output
    assert "companion heads after: stage1, stage2" in result.output
    png = results / "diag" / "diagnose.png"
    assert png.stat().st_size > 0 and f"plot: {png}" in result.output


@pytest.mark.parametrize(
    "extra",
    [["--set", "base.model.name=nope"], ["--device", "bogus"], ["--steps", "0"]],
)
def test_bad_input_exits_2(tmp_path: Path, extra: list[str]) -> None:
    study = write_study(tmp_path, "pspnet_tiny", {"width": 4})
    result = CliRunner().invoke(app, ["diagnose", str(study), *extra])
    assert result.exit_code == 2, result.output


def test_stage_names_need_neither_memory_nor_pretrained_weights() -> None:
    recipe = tiny("dsn", {"backbone": "resnet50", "pretrained": True})  # no file on this machine
    assert stage_names(recipe) == ["stem", "stage1", "stage2", "stage3", "stage4"]
