"""Pydantic's validation errors as one message naming the file, the key path, the bad value and
what is allowed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import (
    Any,
    NoReturn,
)

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic.fields import FieldInfo

from ablate.errors import SpecError, did_you_mean
from ablate.spec._yaml import _clip, shown


def _walk(model: type[BaseModel], loc: Sequence[str | int]) -> tuple[FieldInfo | None, Any]:
    """The field `loc` names, walking from `model` through its sub-models, and its type (the
    sub-model where it is `X | None`); (None, None) where `loc` leaves the models."""
    current: Any = model
    found = None
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None, None
        found = current.model_fields.get(str(part))
        if found is None:
            return None, None
        current = found.annotation
        for arg in getattr(current, "__args__", ()):  # `X | None`
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
    return found, current


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The field names of the model found by walking `loc` from `model`, if it is a model."""
    current = _walk(model, loc)[1]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _describe(err: Mapping[str, Any], root: type[BaseModel]) -> str:
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "~")))]
    path = ".".join(map(str, loc)) or "(top level)"
    if err["type"] == "extra_forbidden":
        fields = _fields_at(root, loc[:-1]) or []
        hint = did_you_mean(str(loc[-1]), fields)
        allowed = f"; allowed here: {', '.join(fields)}" if fields else ""
        return f"{path}: unknown key{hint}{allowed}"
    if err["type"] == "missing":
        return f"{path}: required key is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "less_than_equal":  # a bound of MAX_*: in words a reader counts at once
        msg = f"must be at most {_number(err['ctx']['le'])}{_allowed_range(root, loc)}"
    return f"{path} = {shown(err.get('input'))}: {_clip(msg, 400)}"


def _number(x: float) -> str:
    """100 for 100.0, 10,000,000 for 10000000, 0.5 for 0.5."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        x = int(x)
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def _allowed_range(root: type[BaseModel], loc: Sequence[str | int]) -> str:
    """'; allowed: 0 < lr ≤ 100' for a field bounded on both sides, else ''."""
    field = _walk(root, loc)[0]
    if field is None:
        return ""
    low = high = ""
    for c in field.metadata:
        for attr, sign in (("gt", "<"), ("ge", "≤")):
            if getattr(c, attr, None) is not None:
                low = f"{_number(getattr(c, attr))} {sign} "
        for attr, sign in (("lt", "<"), ("le", "≤")):
            if getattr(c, attr, None) is not None:
                high = f" {sign} {_number(getattr(c, attr))}"
    return f"; allowed: {low}{loc[-1]}{high}" if low and high else ""


def raise_validation(
    path: Path, exc: ValidationError, root: type[BaseModel], context: str = ""
) -> NoReturn:
    lines = [_describe(e, root) for e in exc.errors()]
    head = (
        f"{path}: {context}" if len(lines) == 1 else f"{path}: {context}{len(lines)} problems:\n  "
    )
    raise SpecError(head + "\n  ".join(lines)) from None
