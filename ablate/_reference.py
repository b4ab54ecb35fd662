"""The study-file reference (docs/study-file.md) and its JSON Schema (docs/study.schema.json),
generated from the spec's models and the model builders, so neither can drift from what
`ablate validate` accepts.

`python -m ablate._reference` rewrites both files; tests/test_reference.py fails when either
differs from what this module generates now. `study_schema` needs only pydantic (`ablate schema`
imports no torch); the reference builds each built-in model once to list its aux heads.
"""

from __future__ import annotations

import importlib
import inspect
import json
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ablate.spec import StudySpec

ROOT = Path(__file__).resolve().parents[1]  # the repository
REFERENCE = Path("docs/study-file.md")  # both relative to ROOT
SCHEMA = Path("docs/study.schema.json")
REGENERATE = "python -m ablate._reference"
_JSON_SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"  # pydantic writes 2020-12
_HEADS_INPUT = (1, 3, 64, 64)  # (B, C, H, W): a batch the smallest built-in model takes


# --------------------------------------------------------------------------- JSON Schema


def study_schema() -> dict[str, Any]:
    """The JSON Schema of a study file, every key with its description, for editors."""
    schema = StudySpec.model_json_schema()
    return {"$schema": _JSON_SCHEMA_DRAFT, **schema, "title": "ablate study file"}


def schema_text() -> str:
    """`study_schema` as the text of docs/study.schema.json and `ablate schema`."""
    return json.dumps(study_schema(), indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- walking the spec


def sections(
    model: type[BaseModel] = StudySpec, path: str = ""
) -> Iterator[tuple[str, type[BaseModel]]]:
    """(dotted path, model) of the top level and every mapping below it, depth first; a
    mapping of models (`sweep.search.space`) is `<path>.<key>`, a list of them (`claims`)
    `<path>.<i>`."""
    yield path, model
    for name, field in model.model_fields.items():
        for inner, suffix in _models_in(field.annotation):
            yield from sections(inner, _join(path, name) + suffix)


def _models_in(annotation: Any) -> list[tuple[type[BaseModel], str]]:
    """The models a field holds: itself, inside `X | None`, or as a mapping's values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, "")]
    if get_origin(annotation) is Annotated:  # a tagged union member (`sweep.seeds`)
        return _models_in(get_args(annotation)[0])
    if get_origin(annotation) is dict:
        return [(m, ".<key>" + s) for m, s in _models_in(get_args(annotation)[1])]
    if get_origin(annotation) is list:
        return [(m, ".<i>" + s) for m, s in _models_in(get_args(annotation)[0])]
    return [found for arg in _union_args(annotation) for found in _models_in(arg)]


def _union_args(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _anchor(path: str) -> str:
    return "key-" + (path.replace(".", "-").replace("<key>", "key").replace("<i>", "i") or "top")


# --------------------------------------------------------------------------- rendering


def _type(annotation: Any) -> str:
    """A type as a YAML author reads it."""
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    simple = {bool: "bool", int: "int", float: "number", str: "str"}
    if annotation in simple:
        return simple[annotation]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type(args[0])
    if origin is Literal:
        return "str"
    if origin in (Union, types.UnionType):
        return " or ".join(dict.fromkeys(_type(a) for a in args))
    if origin is tuple:
        return "[" + ", ".join(_type(a) for a in args) + "]"
    if origin in (list, Sequence):
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        return "mapping" if args[1] is Any else f"mapping of str to {_type(args[1])}"
    return str(annotation)


def _allowed(annotation: Any, metadata: list[Any]) -> str:
    """The values a field takes beyond its type: a Literal's names, the bounds of its
    constraints, a list's length and its items' bounds."""
    parts = [_constraint(c) for c in metadata]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        parts.insert(0, ", ".join(f"`{a}`" for a in args))
    elif origin is Annotated:
        parts.insert(0, _allowed(args[0], list(args[1:])))
    elif origin in (Union, types.UnionType):
        parts.insert(0, "; ".join(filter(None, (_allowed(a, []) for a in args))))
    elif origin is list and args:
        inner = _allowed(args[0], [])
        parts.append(f"each {inner}" if inner else "")
    return "; ".join(p for p in parts if p)


def _constraint(c: Any) -> str:
    if isinstance(c, FieldInfo):  # Annotated[int, Field(ge=0)]
        return "; ".join(filter(None, map(_constraint, c.metadata)))
    if isinstance(c, at.Ge):
        return f"≥ {_number(c.ge)}"
    if isinstance(c, at.Gt):
        return f"> {_number(c.gt)}"
    if isinstance(c, at.Le):
        return f"≤ {_number(c.le)}"
    if isinstance(c, at.Lt):
        return f"< {_number(c.lt)}"
    if isinstance(c, at.MinLen):
        return f"at least {c.min_length} entr{'y' if c.min_length == 1 else 'ies'}"
    if isinstance(c, at.MaxLen):
        return f"at most {c.max_length} entries"
    pattern = getattr(c, "pattern", None)
    return f"matches `{pattern}`" if pattern else ""


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _value(value: Any) -> str:
    """A default as it would be written in a study file (JSON is YAML)."""
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "each key's default"
    return _value(value)


def _cell(text: str) -> str:
    """Text for one cell of a markdown table: one line, `|` escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _doc(obj: Any) -> str:
    """An object's docstring as one paragraph."""
    return " ".join((inspect.getdoc(obj) or "").split())


def _paragraphs(obj: Any) -> list[str]:
    """An object's docstring, each paragraph on one line followed by a blank one."""
    text = inspect.getdoc(obj) or ""
    return [line for p in text.split("\n\n") for line in (" ".join(p.split()), "")]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _section(path: str, model: type[BaseModel]) -> list[str]:
    title = f"`{path}`" if path else "The top level"
    lines = [f'<a id="{_anchor(path)}"></a>', "", f"## {title}", "", _doc(model), ""]
    rows = []
    for name, field in model.model_fields.items():
        key = _join(path, name)
        kind = _type(field.annotation)
        for _, suffix in _models_in(field.annotation):  # a mapping of models: its values
            head, _, tail = kind.rpartition("mapping") if suffix else kind.partition("mapping")
            kind = f"{head}[mapping](#{_anchor(key + suffix)}){tail}"
        allowed = _allowed(field.annotation, field.metadata)
        rows.append([f"`{key}`", kind, _default(field), allowed, field.description or ""])
    return lines + _table(["key", "type", "default", "allowed", "meaning"], rows) + [""]


# --------------------------------------------------------------------------- model builders


def _builders() -> dict[str, Callable[..., Any]]:
    from ablate.models import MODELS  # torch: only the reference needs the builders

    return dict(MODELS)


def _arguments(builder: Callable[..., Any], allowed: dict[str, str]) -> list[list[str]]:
    """(argument, type, default, allowed) of every keyword a builder takes after
    `num_classes`; `allowed` adds what a type does not say."""
    try:
        hints = typing.get_type_hints(builder)
    except (NameError, TypeError):  # an annotation that cannot be resolved: shown as written
        hints = {}
    _, *params = inspect.signature(builder).parameters.values()
    rows = []
    for p in params:
        annotation = hints.get(p.name, p.annotation)
        kind = annotation if isinstance(annotation, str) else _type(annotation)
        values = "" if isinstance(annotation, str) else _allowed(annotation, [])
        default = "required" if p.default is inspect.Parameter.empty else _value(p.default)
        rows.append([f"`{p.name}`", kind, default, allowed.get(p.name, values)])
    return rows


def _aux_heads(builder: Callable[..., Any]) -> list[str]:
    """The aux heads of the model a builder makes with its default arguments."""
    import torch

    model = builder(2).eval()
    with torch.no_grad():
        outputs = model(torch.zeros(_HEADS_INPUT))
    return list(outputs["aux"])


def _models_section() -> list[str]:
    backbones = importlib.import_module("ablate.models.resnet")  # the function shadows it
    timm = backbones.TIMM
    on_backbone = {
        "backbone": ", ".join(f"`{b}`" for b in backbones.BACKBONES) + f", `{timm}<name>`",
        "output_stride": ", ".join(f"`{s}`" for s in backbones.OUTPUT_STRIDES),
    }

    lines = [
        f'<a id="{_anchor("base.model.args")}"></a>',
        "",
        "## Model arguments (`base.model.args`)",
        "",
        "Each built-in model is a builder `name(num_classes, **args)`; `base.model.args` holds "
        "the arguments below (`num_classes` comes from `base.data.num_classes`) and is checked "
        "against the builder's signature before any trial starts. `loss.aux.weight` weights "
        "the sum of the losses of every aux head the model returns; the heads listed are "
        "those of the default arguments.",
        "",
    ]
    builders = _builders()
    on_resnet = [n for n, b in builders.items() if "backbone" in inspect.signature(b).parameters]
    for name, builder in builders.items():
        heads = ", ".join(f"`{h}`" for h in _aux_heads(builder)) or "none"
        lines += [f"### `{name}`", "", _doc(builder), "", f"Aux heads: {heads}.", ""]
        rows = _arguments(builder, on_backbone if name in on_resnet else {})
        lines += [*_table(["argument", "type", "default", "allowed"], rows), ""]
    lines += [
        f"### The ResNet backbone of {', '.join(f'`{n}`' for n in on_resnet)}",
        "",
        _doc(backbones.resnet),
        "",
        *_paragraphs(backbones),
        f"`backbone: {timm}<name>` takes a timm `features_only` model instead (the optional "
        "timm extra).",
        "",
        "### Your own model",
        "",
        '`model: {name: "pkg.module:function", args: {...}}` imports `function` from '
        "`pkg.module` and calls `function(num_classes, **args)`; it returns a torch module "
        'whose forward gives `{"out": logits (B, C, h, w), "aux": {head: logits}, "embed": '
        "features (B, D, h, w)}`. A model that breaks this is reported before any trial starts.",
        "",
    ]
    return lines


# --------------------------------------------------------------------------- the document


def study_file_reference() -> str:
    """docs/study-file.md: every key of a study file with its type, default, allowed values and
    meaning, then each built-in model's arguments."""
    found = list(sections())
    lines = [
        "# Study file reference",
        "",
        f"<!-- Generated by `{REGENERATE}` from ablate/spec/ and the model builders; "
        "do not edit by hand. -->",
        "",
        "A study is one YAML file. Every key below is checked before any trial starts "
        "(`ablate validate FILE`); a key left out takes its default; an unknown key is an "
        "error. Keys and the names they take (datasets, models, schedules, optimizers, …) "
        "are lowercase, written as listed. Keys under `sweep.grid`, `sweep.variants`, "
        "`sweep.search.space` and `baseline` are dotted paths inside `base` without the "
        "`base.` (`loss.aux.weight`); `--set` paths start at the top (`--set "
        "base.train.epochs=1`). `ablate schema` prints the same rules as a JSON Schema for "
        "editors (docs/study.schema.json).",
        "",
        "Contents: "
        + ", ".join(f"[`{p or 'top level'}`](#{_anchor(p)})" for p, _ in found)
        + f", [model arguments](#{_anchor('base.model.args')}).",
        "",
    ]
    for path, model in found:
        lines += _section(path, model)
    lines += _models_section()
    return "\n".join(lines).rstrip("\n") + "\n"


def write(root: Path = ROOT) -> list[Path]:
    """Rewrite both generated files under `root`; the paths written."""
    (root / REFERENCE).write_text(study_file_reference(), encoding="utf-8")
    (root / SCHEMA).write_text(schema_text(), encoding="utf-8")
    return [root / REFERENCE, root / SCHEMA]


if __name__ == "__main__":
    for written in write():
        print(written)
