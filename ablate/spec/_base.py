"""What every part of the study file's schema shares: the bounds a value may take and the
frozen base model (no extra keys, no inf or nan, no true/false for a number)."""

from __future__ import annotations

import types
from typing import (
    Annotated,
    Any,
    Literal,
    Union,
    get_args,
    get_origin,
)

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

IGNORE_INDEX = 255

# Upper bounds no real study reaches. Past them a run would hang or overflow long after
# `validate` said ok, so they are refused with the bound named.
MAX_SIZE = 10_000_000  # data.train_size / val_size: images per split (COCO has 0.1 M)
MAX_CLASSES = 1_000  # data.num_classes (ADE20K-full has 847)
MAX_EPOCHS = 100_000  # train.epochs
MAX_BATCH = 65_536  # train.batch_size
MAX_SEED = 2**32 - 1  # data.seed, sweep.seeds, search seed: the range NumPy seeds from
MAX_COUNT = 2**31 - 1  # any other count (pixels, steps, workers, trials): a 32-bit integer
MAX_NAME = 100  # characters of a study name: it names a folder and an MLflow experiment
# Floats whose absurd values only overflow (every trial diverges at once, or the weights turn
# inf): far above any published recipe, so only a slip (1e308 for 1e-3) meets them.
MAX_LR = 100.0  # train.lr: SGD and AdamW recipes use at most ~1; LARS-style scaling ~30
MAX_WEIGHT_DECAY = 10.0  # train.weight_decay: recipes use 1e-5 … 0.5
MAX_POLY_POWER = 100.0  # train.poly_power: 0.9 in DeepLab and PSPNet; past it lr is ~0 at once
MAX_LOSS_WEIGHT = 100.0  # the weight of a loss term (aux, Lovász, center) beside CE's 1
# How big a study may be, checked before its cells are expanded: a 13 KB file with a
# 1000 × 1000 grid took 286 s and 10 GB to validate.
MAX_CELLS = 10_000  # cells of one study (grid points, variants, tricks' rows, search trials)
MAX_TRIALS = 100_000  # (cell, seed) trials of one study
MAX_CLAIMS = 100  # declared claims of one study
MAX_CELL_NAME = 200  # UTF-8 bytes of a cell's name: it names MLflow runs and checkpoint files
MAX_FILE_BYTES = 1 << 20  # a study file (the shipped ones are a few KB)

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
TricksDesignName = Literal["one_at_a_time", "leave_one_out", "cumulative", "factorial"]
MAX_FACTORIAL_TRICKS = 6


def _is_model(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return _is_model(get_args(annotation)[0])
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _holds_numbers(annotation: Any) -> bool:
    """Whether a field is a number, an optional number, or a tuple or list of numbers."""
    if annotation in (int, float):
        return True
    args = [a for a in get_args(annotation) if a is not type(None) and a is not Ellipsis]
    origin = get_origin(annotation)
    if origin is Annotated:  # e.g. Seed
        return _holds_numbers(args[0])
    if origin in (Union, types.UnionType):  # a model beside numbers is checked by itself
        args = [a for a in args if not _is_model(a)]
    if origin in (Union, types.UnionType, tuple, list):
        return bool(args) and all(_holds_numbers(a) for a in args)
    return False


class _Frozen(BaseModel):
    # no .inf or .nan in a number: a run would only diverge or hang on it
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_true_for_a_number(cls, v: Any, info: ValidationInfo) -> Any:
        """YAML's true/false is not the number 1/0 (pydantic would take it as one)."""
        items = v if isinstance(v, list | tuple) else [v]
        name = info.field_name
        if (
            any(isinstance(x, bool) for x in items)
            and name is not None
            and _holds_numbers(cls.model_fields[name].annotation)
        ):
            raise ValueError("a number is needed here, not true/false")
        return v
