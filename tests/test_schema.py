"""`ablate schema`: the study file's JSON Schema for editors, which every shipped study meets,
printed without importing torch or MLflow."""

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from ablate._reference import ROOT, SCHEMA, schema_text, study_schema
from ablate.cli import app
from ablate.spec import StudySpec, load_yaml
from tests.test_import_weight import _heavy_modules

STUDIES = sorted((ROOT / "studies").rglob("*.yaml"))
SHIPPED = [pytest.param(p, id=str(p.relative_to(ROOT / "studies"))) for p in STUDIES]


def _study(path: Path) -> Any:
    return load_yaml(path.read_text(encoding="utf-8"))


def _resolved(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _unknown_keys(value: Any, node: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    """The keys of `value`, at any depth, that `node` has no place for."""
    node = _resolved(node, schema)
    for option in node.get("anyOf", []):  # `X | None`: the branch of the value's shape
        option = _resolved(option, schema)
        if option.get("type") == ("object" if isinstance(value, dict) else "array"):
            return _unknown_keys(value, option, schema, path)
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [
            k for i, v in enumerate(value) for k in _unknown_keys(v, node["items"], schema, path)
        ]
    if not isinstance(value, dict):
        return []
    properties, rest = node.get("properties", {}), node.get("additionalProperties", False)
    unknown = []
    for key, inner in value.items():
        where = f"{path}.{key}" if path else key
        if key in properties:
            unknown += _unknown_keys(inner, properties[key], schema, where)
        elif isinstance(rest, dict):
            unknown += _unknown_keys(inner, rest, schema, where)
        elif rest is not True:
            unknown.append(where)
    return unknown


def test_schema_prints_the_committed_schema() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert result.output == (ROOT / SCHEMA).read_text(encoding="utf-8")
    assert json.loads(result.output) == study_schema()


def test_schema_output_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "study.schema.json"
    result = CliRunner().invoke(app, ["schema", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == schema_text()


def test_schema_to_a_missing_folder_exits_2_naming_the_file(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "x.json"
    result = CliRunner().invoke(app, ["schema", "--output", str(out)])
    assert result.exit_code == 2
    assert "cannot write it" in result.output


def test_schema_imports_neither_torch_nor_mlflow() -> None:
    assert _heavy_modules("schema") == "heavy: []"


def test_the_schema_describes_every_key() -> None:
    schema = study_schema()
    models = [schema, *schema["$defs"].values()]
    assert [
        f"{m['title']}.{k}"
        for m in models
        for k, p in m["properties"].items()
        if not (p.get("description") or _resolved(p, schema).get("description"))
    ] == []  # pydantic leaves out a key's description where its model's docstring says it
    assert schema["properties"]["name"]["pattern"] == "^[a-z0-9_-]+$"


def test_the_shipped_studies_are_found() -> None:
    assert len(STUDIES) >= 10
    assert ROOT / "studies" / "cityscapes" / "pspnet_aux.yaml" in STUDIES


@pytest.mark.parametrize("path", SHIPPED)
def test_every_key_of_a_shipped_study_has_a_place_in_the_schema(path: Path) -> None:
    schema = study_schema()
    assert _unknown_keys(_study(path), schema, schema, "") == []


def test_a_misspelt_key_has_no_place_in_the_schema() -> None:
    schema = study_schema()
    study = _study(ROOT / "studies" / "aux_weight.yaml")
    study["base"]["train"]["epoch"] = 3
    study["sweep"]["search"] = {"space": {"train.lr": {"low": 0.1, "hi": 1}}}
    assert _unknown_keys(study, schema, schema, "") == [
        "base.train.epoch",
        "sweep.search.space.train.lr.hi",
    ]


def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = study_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("path", SHIPPED)
def test_every_shipped_study_is_valid_under_the_schema(path: Path) -> None:
    errors = [f"{e.json_path}: {e.message}" for e in _validator().iter_errors(_study(path))]
    assert errors == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("epochs", "six"),  # a string for a whole number
        ("epochs", True),  # YAML's true is not the number 1
        ("epochs", 0),  # below its bound
        ("optimizer", "SGD"),  # names are lowercase
        ("epoch", 3),  # no such key
    ],
)
def test_a_wrong_value_is_refused_by_the_schema_as_by_the_spec(key: str, value: Any) -> None:
    study = _study(ROOT / "studies" / "aux_weight.yaml")
    study["base"]["train"][key] = value
    assert list(_validator().iter_errors(study)) != []
    with pytest.raises(ValidationError):
        StudySpec.model_validate(study)


def test_an_uppercase_study_name_is_refused_by_the_schema() -> None:
    study = _study(ROOT / "studies" / "aux_weight.yaml")
    study["name"] = "Aux_Weight"
    assert list(_validator().iter_errors(study)) != []
