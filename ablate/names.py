"""Every list of names ablate keeps, each written once: the schedules, aux targets, datasets and
built-in models a study file may name, and the metrics with the unit they are shown in.

This module imports nothing heavy, so the spec, the CLI (`--help`, `validate`, `status`), the
losses, the trial loop and the report all read the same lists. The disk datasets are read from
their records (`ablate.data.layouts`, which imports nothing heavy either). A list that the code
also holds as a table (the model builders, the schedule formulas) is checked against this one by
a test, not copied by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from ablate.data.layouts import LAYOUTS

# Wang et al. (2015) call a layer's learning stalled below this mean |gradient|; the gradient
# diagnostics and the report's gradient-flow plot draw the same line.
VANISHING_GRADIENT = 1e-7

Schedule = Literal["constant", "linear", "step", "cosine", "exp"]
SCHEDULES: tuple[Schedule, ...] = get_args(Schedule)  # loss.aux.schedule

AuxTarget = Literal["full", "nearest", "cpp"]
AUX_TARGETS: tuple[AuxTarget, ...] = get_args(AuxTarget)  # loss.aux.target

GENERATED_DATASETS = ("shapes", "digits")  # rendered by ablate.data, no root
DISK_DATASETS = tuple(layout.name for layout in LAYOUTS)  # read from data.root
DATASETS = (*GENERATED_DATASETS, *DISK_DATASETS)  # data.name
if TYPE_CHECKING:
    DatasetName = str  # mypy reads no Literal built at run time; pydantic checks the values
else:
    DatasetName = Literal[DATASETS]
# data.num_classes where the dataset fixes it: digits are background and 0–9; a layout, its own
FIXED_CLASSES = {"digits": 11} | {
    layout.name: layout.num_classes for layout in LAYOUTS if layout.num_classes is not None
}

# built-in networks; `ablate.models.MODELS` maps each to its builder (a test keeps them equal)
MODELS = ("pspnet_tiny", "dsnet", "unet_ds", "pspnet", "deeplabv3plus", "dsn")


@dataclass(frozen=True)
class Metric:
    """How a metric is read: `scale` turns a stored value into the shown one, `unit` names it."""

    scale: float  # 100 for a fraction in [0, 1], shown in points
    unit: str  # "%" (points), or the unit of a raw value
    goal: Literal["maximize", "minimize"]


_POINTS = Metric(100.0, "%", "maximize")

# val/ metrics every trial records; the study's metric is one of these or a per-class one
METRICS: dict[str, Metric] = {
    "val/mIoU": _POINTS,
    "val/pixel_acc": _POINTS,
    "val/boundary_iou": _POINTS,
    "val/small_iou": _POINTS,
    "val/loss": Metric(1.0, "nats", "minimize"),  # mean cross-entropy per valid pixel
}
# per-class (val/iou/<class>) and per-size (val/small_iou/<bucket>) metrics, all in points
PER_CLASS_PREFIXES = ("val/iou/", "val/boundary_iou/", "val/small_iou/")


def metric_info(name: str) -> Metric:
    """The unit and scale of any metric ablate records (`best/<metric>` as the metric; train/
    ones are shown raw)."""
    name = name.removeprefix("best/")
    if name in METRICS:
        return METRICS[name]
    if name.startswith(PER_CLASS_PREFIXES):
        return _POINTS
    return Metric(1.0, "", "minimize" if "loss" in name else "maximize")


def metric_scale(name: str) -> float:
    """The factor a metric's values are shown at: 100 for IoU and accuracy, else 1."""
    return metric_info(name).scale


def is_fraction_metric(name: str) -> bool:
    """Whether a metric lives in [0, 1] and is best read in points (×100)."""
    return metric_info(name).scale == 100.0


def is_known_metric(name: str) -> bool:
    return name in METRICS or name.startswith(PER_CLASS_PREFIXES)
