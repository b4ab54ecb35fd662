"""The study file: its schema (pydantic models, frozen, no extra keys), safe YAML loading and
`--set` overrides.

Every string a study file holds is checked here, once, before any trial starts. A bad file raises
:class:`SpecError` with one message naming the file, the key path, the bad value and what is
allowed; the CLI turns that into exit code 2 without a traceback. The spec knows nothing of
designs: a loaded study with its design is `ablate.study_file.Study`.
"""

from ablate.errors import SpecError
from ablate.spec._base import (
    IGNORE_INDEX,
    MAX_BATCH,
    MAX_CELL_NAME,
    MAX_CELLS,
    MAX_CLASSES,
    MAX_COUNT,
    MAX_EPOCHS,
    MAX_FACTORIAL_TRICKS,
    MAX_FILE_BYTES,
    MAX_LOSS_WEIGHT,
    MAX_LR,
    MAX_NAME,
    MAX_POLY_POWER,
    MAX_SEED,
    MAX_SIZE,
    MAX_TRIALS,
    MAX_WEIGHT_DECAY,
    Seed,
    TricksDesignName,
)
from ablate.spec._file import load_raw, read_study_file
from ablate.spec._messages import raise_validation
from ablate.spec._overrides import (
    apply_overrides,
    check_key,
    format_value,
    leaf_annotation,
    parse_override,
    set_path,
    short_keys,
)
from ablate.spec._recipe import (
    AuxSpec,
    CenterSpec,
    CeSpec,
    DataSpec,
    DiagnosticsSpec,
    EvalSpec,
    LossSpec,
    ModelSpec,
    Recipe,
    ShapesSpec,
    TrainSpec,
)
from ablate.spec._study import (
    AdaptiveSeeds,
    MetricSpec,
    RangeSpec,
    SearchSpec,
    SeedsField,
    StudySpec,
    SweepSpec,
    check_grid_size,
)
from ablate.spec._yaml import MAX_DEPTH, MAX_DIGITS, MAX_YAML_NODES, load_yaml, shown

__all__ = [
    "IGNORE_INDEX",
    "MAX_BATCH",
    "MAX_CELLS",
    "MAX_CELL_NAME",
    "MAX_CLASSES",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_EPOCHS",
    "MAX_FACTORIAL_TRICKS",
    "MAX_FILE_BYTES",
    "MAX_LOSS_WEIGHT",
    "MAX_LR",
    "MAX_NAME",
    "MAX_POLY_POWER",
    "MAX_SEED",
    "MAX_SIZE",
    "MAX_TRIALS",
    "MAX_WEIGHT_DECAY",
    "MAX_YAML_NODES",
    "AdaptiveSeeds",
    "AuxSpec",
    "CeSpec",
    "CenterSpec",
    "DataSpec",
    "DiagnosticsSpec",
    "EvalSpec",
    "LossSpec",
    "MetricSpec",
    "ModelSpec",
    "RangeSpec",
    "Recipe",
    "SearchSpec",
    "Seed",
    "SeedsField",
    "ShapesSpec",
    "SpecError",
    "StudySpec",
    "SweepSpec",
    "TrainSpec",
    "TricksDesignName",
    "apply_overrides",
    "check_grid_size",
    "check_key",
    "format_value",
    "leaf_annotation",
    "load_raw",
    "load_yaml",
    "parse_override",
    "raise_validation",
    "read_study_file",
    "set_path",
    "short_keys",
    "shown",
]
