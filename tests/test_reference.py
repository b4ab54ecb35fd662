"""docs/study-file.md and docs/study.schema.json are what ablate._reference generates now, and
the reference names every key of every spec model and every built-in model's arguments."""

import inspect

import pytest
from pydantic import BaseModel

from ablate import spec
from ablate._reference import (
    REFERENCE,
    REGENERATE,
    ROOT,
    SCHEMA,
    schema_text,
    sections,
    study_file_reference,
)
from ablate.models import MODELS

SPEC_MODELS = {
    m
    for m in vars(spec).values()
    if isinstance(m, type)
    and issubclass(m, BaseModel)
    and m.__module__.startswith(f"{spec.__name__}.")
}


@pytest.fixture(scope="module")
def reference() -> str:
    return study_file_reference()


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def test_the_committed_reference_is_what_the_generator_writes(reference: str) -> None:
    committed = (ROOT / REFERENCE).read_text(encoding="utf-8")
    assert committed == reference, f"{REFERENCE} is out of date: run `{REGENERATE}`, commit it"


def test_the_committed_schema_is_what_the_generator_writes() -> None:
    committed = (ROOT / SCHEMA).read_text(encoding="utf-8")
    assert committed == schema_text(), f"{SCHEMA} is out of date: run `{REGENERATE}`, commit it"


def test_every_model_of_the_spec_has_a_section() -> None:
    assert {model for _, model in sections()} == SPEC_MODELS


def test_every_key_of_every_spec_model_has_a_row(reference: str) -> None:
    rows = [
        _key(path, name) for path, model in sections() for name in model.model_fields
    ]  # e.g. base.loss.aux.until, sweep.search.space.<key>.low
    assert len(rows) > 60
    assert [k for k in rows if f"| `{k}` |" not in reference] == []


def test_every_key_and_every_model_is_described() -> None:
    undescribed = [
        f"{m.__name__}.{name}"
        for m in SPEC_MODELS
        for name, field in m.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert undescribed == []
    assert [m.__name__ for m in SPEC_MODELS if not inspect.getdoc(m)] == []


def test_a_row_gives_the_type_default_and_bounds_of_its_constraints(reference: str) -> None:
    assert "| `base.loss.aux.until` | number | `0.5` | > 0; ≤ 1 |" in reference
    assert "| `base.train.momentum` | number | `0.9` | ≥ 0; < 1 |" in reference
    assert (
        "| `sweep.seeds` | list of int or [mapping](#key-sweep-seeds) | `[0, 1, 2]` | "
        "at least 1 entry; each ≥ 0;" in reference
    )
    assert "| `name` | str | required |" in reference


def test_a_literal_row_lists_its_lowercase_names(reference: str) -> None:
    assert "| `base.train.optimizer` | str | `sgd` | `sgd`, `adamw` |" in reference
    assert "`constant`, `linear`, `step`, `cosine`, `exp`" in reference


def test_a_nested_mapping_links_to_its_section(reference: str) -> None:
    assert "| `base.loss.aux` | [mapping](#key-base-loss-aux) |" in reference
    assert '<a id="key-base-loss-aux"></a>' in reference
    assert "mapping of str to [mapping](#key-sweep-search-space-key)" in reference


def _model_section(reference: str, name: str) -> str:
    return reference.split(f"### `{name}`\n", 1)[1].split("\n### ", 1)[0]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_argument_of_every_built_in_model_has_a_row(reference: str, name: str) -> None:
    section = _model_section(reference, name)
    _, *params = inspect.signature(MODELS[name]).parameters.values()
    assert [p.name for p in params if f"| `{p.name}` |" not in section] == []


def test_a_model_section_names_the_aux_heads_its_defaults_build(reference: str) -> None:
    assert "Aux heads: `stage3`." in _model_section(reference, "pspnet_tiny")
    assert "Aux heads: `stage1`, `stage2`, `stage3`." in _model_section(reference, "dsnet")
    assert "Aux heads: none." in _model_section(reference, "deeplabv3plus")
    assert "| `init` | str | `he` | `he`, `torch` |" in _model_section(reference, "dsnet")
