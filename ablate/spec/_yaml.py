"""Safe YAML loading for study files and `--set` values: the safe loader, and a walk over the
parsed nodes that refuses what a study file may not hold (YAML bombs, deep nesting, huge
numbers, repeated keys) before anything is built from it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import (
    Any,
)

import yaml

# --------------------------------------------------------------------------- loading


MAX_YAML_NODES = 100_000  # a study file is a few hundred; aliases can make billions (a YAML bomb)
_SHOWN_CHARS = 200  # the longest bad value an error message repeats


MAX_DIGITS = 100  # characters of a whole number (Python itself refuses to read over 4,300)
MAX_DEPTH = 50  # mappings and lists inside each other; a study file nests about 5 deep
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<: *base` may repeat keys on purpose


class _Refused(yaml.YAMLError):
    """YAML that parses but that a study file may not hold."""


def load_yaml(text: str, where: Sequence[str] = ()) -> Any:
    """Safe YAML, refusing what a safe loader still lets through: aliases that expand the
    document to more than MAX_YAML_NODES values (PyYAML shares aliased nodes, but validating or
    printing the result walks every copy), a value that holds itself through an alias (it can
    be neither stored nor printed), a key given twice in one mapping (YAML calls that an error;
    PyYAML keeps the last one silently), nesting deeper than MAX_DEPTH, whole numbers longer
    than MAX_DIGITS, and .inf and .nan anywhere (even in model.args, which pydantic does not
    check: JSON, where Optuna and MLflow keep them, would store null). These raise _Refused,
    saying the line and the key path from `where`; a text that is not YAML, yaml.YAMLError."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # PyYAML composes nested nodes recursively
            raise _Refused(f"mappings and lists nest more than {MAX_DEPTH} deep") from None
        if node is None:
            return None
        size = _checked_size(node, tuple(where), {}, set())
        if size > MAX_YAML_NODES:
            raise _Refused(
                f"its aliases expand it to {size:,} values, more than the "
                f"{MAX_YAML_NODES:,} a study file may hold"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _checked_size(
    node: yaml.Node, path: tuple[str, ...], sizes: dict[int, int], open_: set[int]
) -> int:
    """How many values the node stands for once every alias is copied out, each shared node
    computed once; raises _Refused for what load_yaml refuses. `open_` holds the nodes
    on the way from the root: meeting one again is an alias to a value that holds it."""
    if id(node) in open_:
        raise _refused(
            node, path, "this alias names a value that holds it; no value may contain itself"
        )
    if id(node) in sizes:
        return sizes[id(node)]
    if len(path) > MAX_DEPTH:
        raise _refused(node, path, f"mappings and lists nest more than {MAX_DEPTH} deep")
    open_.add(id(node))
    size = 1
    if isinstance(node, yaml.ScalarNode):
        problem = _scalar_problem(node)
        if problem:
            raise _refused(node, path, problem)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            size += _checked_size(child, (*path, str(i)), sizes, open_)
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            name = _clip(str(key.value), 60) if isinstance(key, yaml.ScalarNode) else "?"
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                line = key.start_mark.line + 1
                first = first_line.get((key.tag, key.value))
                if first is not None:
                    raise _refused(
                        key,
                        (*path, name),
                        f"key {name!r} is given twice in one mapping (lines {first} and "
                        f"{line}); YAML would keep only the last: give it once",
                    )
                first_line[key.tag, key.value] = line
            size += _checked_size(key, (*path, name), sizes, open_)
            size += _checked_size(value, (*path, name), sizes, open_)
    open_.discard(id(node))
    sizes[id(node)] = size
    return size


def _scalar_problem(node: yaml.ScalarNode) -> str | None:
    """What is wrong with a number as written, if anything."""
    if node.tag == _INT_TAG and len(node.value) > MAX_DIGITS:
        return (
            f"a whole number {len(node.value):,} characters long; a study file's numbers have "
            f"at most {MAX_DIGITS} digits"
        )
    if node.tag == _FLOAT_TAG:
        plain = node.value.lower().replace("_", "").lstrip("+-")
        try:
            finite = plain not in (".inf", ".nan") and math.isfinite(float(plain))
        except ValueError:  # sexagesimal (1:30.5), which is finite
            finite = True
        if not finite:
            return (
                f"{_clip(node.value, 40)} is not a finite number; a study file holds finite "
                "numbers only (a run cannot use the others, nor JSON store them)"
            )
    return None


def _refused(node: yaml.Node, path: Sequence[str], what: str) -> _Refused:
    where = _clip(".".join(path), 120) or "(top level)"
    return _Refused(f"line {node.start_mark.line + 1}, {where}: {what}")


def shown(value: Any) -> str:
    """A bad value as an error message repeats it: its repr, cut short."""
    return _clip(repr(value))


def _clip(text: str, limit: int = _SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
