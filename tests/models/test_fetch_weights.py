"""`ablate fetch-weights`: the command exists and refuses what it cannot fetch. It never runs a
download here (tests have no network)."""

from typer.testing import CliRunner

from ablate.cli import app
from ablate.models import WEIGHT_URLS


def test_fetch_weights_is_a_command_naming_the_backbones() -> None:
    result = CliRunner().invoke(app, ["fetch-weights", "--help"])
    assert result.exit_code == 0, result.output
    assert "torch hub" in result.output
    assert "resnet50" in result.output


def test_fetch_weights_of_an_unknown_backbone_exits_2_before_downloading() -> None:
    result = CliRunner().invoke(app, ["fetch-weights", "resnet152"])
    assert result.exit_code == 2
    assert "no weights to fetch for 'resnet152'" in result.output
    assert "resnet18, resnet34, resnet50, resnet101" in result.output.replace("\n", "")
    assert set(WEIGHT_URLS) == {"resnet18", "resnet34", "resnet50", "resnet101"}
