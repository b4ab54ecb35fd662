"""`ablate plan`: the trials a study will train, grouped by model, and the probed wall time."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablate.cli import app
from ablate.plan import make_plan
from ablate.study_file import build_study
from ablate.train.probe import probe

STUDY = {
    "name": "p",
    "base": {
        "data": {"num_classes": 3, "image_size": [32, 32], "train_size": 16, "val_size": 8},
        "train": {"epochs": 2, "batch_size": 8},
        "loss": {"aux": {"weight": 0.0}},
    },
    "sweep": {
        "tricks": {"aux": {"loss.aux.weight": 0.4}, "unet": {"model.name": "unet_ds"}},
        "seeds": {"start": 2, "max": 5},
    },
}


def test_trials_are_grouped_by_model_and_timed_once_each() -> None:
    study = build_study(STUDY, Path("p.yaml"))
    timed: list[str] = []

    def timer(recipe):
        timed.append(recipe.model.name)
        return {"pspnet_tiny": 10.0, "unet_ds": 30.0}[recipe.model.name]

    made = make_plan(study, workers=2, timer=timer)
    assert made.trials == 15  # 3 cells × at most 5 seeds
    assert sorted(timed) == ["pspnet_tiny", "unet_ds"]  # one probe per distinct model
    lines = {line.model: line for line in made.lines}
    assert lines["pspnet_tiny"].cells == ["baseline", "+aux"] and lines["pspnet_tiny"].trials == 10
    assert lines["unet_ds"].trials == 5
    assert made.wall_s == pytest.approx((10 * 10.0 + 5 * 30.0) / 2)


def test_a_probe_times_steps_and_an_evaluation_and_extrapolates() -> None:
    recipe = build_study(STUDY, Path("p.yaml")).recipes["baseline"]
    timing = probe(recipe, "cpu", steps=2)
    assert timing.total_steps == 4 and timing.evaluations == 2  # 2 epochs of 2 batches
    assert timing.step_s > 0 and timing.eval_s > 0 and timing.setup_s > 0
    assert timing.trial_s == pytest.approx(
        timing.setup_s + 4 * timing.step_s + 2 * timing.eval_s + timing.test_s
    )


def test_plan_prints_the_trials_and_with_probe_the_wall_time(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    plain = CliRunner().invoke(app, ["plan", str(path)])
    assert plain.exit_code == 0, plain.output
    assert "= 15 trials" in plain.output and "unet_ds: 5 trials (+unet)" in plain.output
    assert "estimated wall time" not in plain.output
    probed = CliRunner().invoke(app, ["plan", str(path), "--probe", "--workers", "1"])
    assert probed.exit_code == 0, probed.output
    assert "per trial" in probed.output and "estimated wall time: " in probed.output
    bad = CliRunner().invoke(app, ["plan", str(path), "--set", "sweep.seeds={start: 1, max: 2}"])
    assert bad.exit_code == 2 and "sweep.seeds" in bad.output
