"""The study file: pydantic models of its schema, loading, validation and `--set` overrides.

Every string a study file holds is checked here, once, before any trial starts. A bad file raises
:class:`SpecError` with one message naming the file, the key path, the bad value and what is
allowed; the CLI turns that into exit code 2 without a traceback.
"""

from __future__ import annotations

import copy
import math
import os
import re
import stat
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    NoReturn,
    Union,
    get_args,
    get_origin,
)

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from ablate.errors import SpecError, did_you_mean
from ablate.names import (
    FIXED_CLASSES,
    METRICS,
    MODELS,
    PER_CLASS_PREFIXES,
    AuxTarget,
    DatasetName,
    Schedule,
    is_known_metric,
)

if TYPE_CHECKING:
    from ablate.design import Cell, Design

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


# --------------------------------------------------------------------------- the recipe


class ShapesSpec(_Frozen):
    """Knobs of the `shapes` generator, for studies whose mechanism needs a particular kind of
    scene. The defaults give the scenes these knobs were added to, pixel for pixel."""

    size_range: tuple[float, float] = Field(
        (0.025, 0.45),
        description="[min, max] of an object's size, drawn log-uniformly between them per "
        "object: its half-extent (a disc's radius, a box's or bar's half-length) as a fraction "
        "of the image's shorter side, each in (0, 1], min ≤ max; never under 1 pixel. The "
        "default spans a few pixels to most of the image; e.g. [0.02, 0.06] fills scenes with "
        "small objects.",
    )
    thin: float = Field(
        0.08,
        gt=0,
        le=0.5,
        description="Thickness of the thin parts: a bar's half-width (a cross's arm's is "
        "twice it) as a fraction of the object's half-length, so a bar is `thin` times as wide "
        "as it is long; never under ~1 pixel. Smaller: thinner structures.",
    )
    class_weights: list[float] | None = Field(
        None,
        description="Relative frequency of each object class 1 … num_classes − 1 (the "
        "background is not drawn), one weight ≥ 0 each, not all 0; an object's class is drawn "
        "with probability weight / sum. null: ∝ 1/√k for class k (mild imbalance, the last "
        "classes rarest).",
    )

    texture: bool = Field(
        False,
        description="Classes that differ only in texture: every object's shape is drawn at "
        "random from all kinds and its colour ignores its class; the class is told only by a "
        "stripe pattern inside the object, at a class-specific orientation (evenly spaced over "
        "180°, 4-pixel period). false: one shape per class and class-tinted colours.",
    )

    @field_validator("size_range")
    @classmethod
    def _sane_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1] <= 1:
            raise ValueError("needs 0 < min ≤ max ≤ 1 (fractions of the image's shorter side)")
        return v

    @field_validator("class_weights")
    @classmethod
    def _sane_weights(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (any(w < 0 for w in v) or not any(w > 0 for w in v)):
            raise ValueError("weights must be ≥ 0 and not all 0")
        return v


class DataSpec(_Frozen):
    """The dataset, and how much of it a trial sees."""

    name: DatasetName = Field(
        "shapes",
        description="`shapes` (procedural scenes) and `digits` (scenes of scikit-learn's "
        "handwritten digits) are generated; `folder`, `cityscapes`, `ade20k` and `voc` are "
        "read from `root` in their standard layouts.",
    )
    num_classes: int = Field(
        6,
        ge=2,
        le=MAX_CLASSES,
        description="Classes, background included. shapes: at most 8 (background + 7 shape "
        "kinds); fixed by the dataset for "
        + ", ".join(f"{name} ({n})" for name, n in FIXED_CLASSES.items())
        + "; folder: the mask values 0 … num_classes − 1.",
    )
    image_size: tuple[int, int] = Field(
        (96, 96),
        description="[height, width] in pixels, each 32–4096: the size of generated scenes, or "
        "the crop size on disk (validation images are scaled to fit inside it).",
    )
    train_size: int = Field(
        512,
        ge=1,
        le=MAX_SIZE,
        description="Training images: scenes generated, or at most this many files on disk.",
    )
    val_size: int = Field(
        128,
        ge=1,
        le=MAX_SIZE,
        description="Validation images: scenes generated, or at most this many files on disk.",
    )
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="Seed of the data (the generated scenes; on disk, the augmentations). The "
        "same for every trial seed: only training varies, so cells meet the same data.",
    )
    ignore_index: int = Field(
        IGNORE_INDEX,
        description="Label value the losses and metrics skip; the built-in datasets mark "
        "ignored and padded pixels with 255.",
    )
    root: str | None = Field(
        None,
        description="The dataset's folder; required by `folder`, `cityscapes`, `ade20k` and "
        "`voc`, unused by generated data.",
    )
    num_workers: int = Field(
        2,
        ge=0,
        le=256,
        description="DataLoader worker processes reading a dataset on disk (0: the trial's own).",
    )
    test_size: int = Field(
        0,
        ge=0,
        le=MAX_SIZE,
        description="A held-out test split, measured once on the final model as "
        "`test/<metric>`: generated data take this many scenes (0: no test split); on disk, at "
        "most this many files of `test_split` (0: all).",
    )
    normalize: Literal["auto", "imagenet", "centered"] = Field(
        "auto",
        description="Input normalisation: `imagenet` (ImageNet's mean and std, what pretrained "
        "weights expect), `centered` ((x − ½)/¼), or `auto` (`imagenet` when "
        "`model.args.pretrained` is set, else `centered`).",
    )
    test_split: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="On disk: the folder split measured as the test split (e.g. `test`); "
        "generated data take `test_size` instead. null: no test split.",
    )
    shapes: ShapesSpec = Field(
        ShapesSpec(),
        description="Knobs of the `shapes` generator (object sizes, thin parts, class "
        "frequencies); `shapes` only.",
    )

    @field_validator("image_size")
    @classmethod
    def _sane_size(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not all(32 <= s <= 4096 for s in v):
            raise ValueError("each side must be between 32 and 4096 pixels")
        return v

    @model_validator(mode="after")
    def _classes_and_root(self) -> DataSpec:
        fixed = FIXED_CLASSES.get(self.name)
        if fixed is not None and self.num_classes != fixed:
            raise ValueError(f"{self.name} has {fixed} classes: set num_classes: {fixed}")
        if self.name == "shapes" and self.num_classes > 8:
            raise ValueError("shapes has at most 8 classes (background + 7 shape kinds)")
        if self.name not in ("shapes", "digits") and self.root is None:
            raise ValueError(f"{self.name} is read from disk: set root to its folder")
        if self.name in ("shapes", "digits") and self.test_split is not None:
            raise ValueError(f"{self.name} is generated: set test_size, not test_split")
        if self.name != "shapes" and self.shapes != ShapesSpec():
            raise ValueError(f"shapes knobs apply to name: shapes, not {self.name}")
        weights = self.shapes.class_weights
        if weights is not None and len(weights) != self.num_classes - 1:
            raise ValueError(
                f"shapes.class_weights has {len(weights)} weights; num_classes "
                f"{self.num_classes} needs {self.num_classes - 1} (classes 1 … num_classes − 1)"
            )
        return self


class ModelSpec(_Frozen):
    """The network."""

    name: str = Field(
        "pspnet_tiny",
        description=f"A built-in model ({', '.join(MODELS)}), or `pkg.module:function` for "
        "your own: called as `function(num_classes, **args)`, it returns a torch module whose "
        'forward gives `{"out": logits, "aux": {head: logits}, "embed": features}`.',
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the model's builder (`num_classes` comes from "
        "`data.num_classes`), checked against its signature before any trial starts. Keys "
        "below it may be swept too (`model.args.width`).",
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v in MODELS or re.fullmatch(r"[\w.]+:\w+", v):
            return v
        hint = did_you_mean(v, MODELS)
        raise ValueError(
            f"unknown model {v!r}{hint}; built-in: {', '.join(sorted(MODELS))}, "
            "or 'pkg.module:function' for your own"
        )


class DiagnosticsSpec(_Frozen):
    """What a trial logs besides its metrics."""

    grad_every: int | None = Field(
        None,
        ge=1,
        le=MAX_COUNT,
        description="Every K steps, log the mean |gradient| of each top-level layer as "
        "`train/grad/<layer>` (gradient flow); null: off.",
    )


class TrainSpec(_Frozen):
    """The optimisation: how long, with what, at which precision."""

    epochs: int = Field(
        6,
        ge=1,
        le=MAX_EPOCHS,
        description="Passes over the training split; ignored when `iters` is set.",
    )
    iters: int | None = Field(
        None,
        ge=1,
        le=MAX_COUNT,
        description="Training iterations (batches), replacing `epochs`, as real recipes count "
        "them (40k–160k); null: `epochs`.",
    )
    batch_size: int = Field(16, ge=1, le=MAX_BATCH, description="Images per training step.")
    lr: float = Field(
        0.01,
        gt=0,
        le=MAX_LR,
        description="Initial learning rate; it decays every iteration by the poly schedule "
        "lr·(1 − t/T)^poly_power.",
    )
    optimizer: Literal["sgd", "adamw"] = Field(
        "sgd",
        description="`sgd` (PyTorch's SGD with `momentum`) or `adamw` (PyTorch's AdamW, its "
        "default betas); both take `weight_decay`.",
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD's momentum; `adamw` ignores it.")
    weight_decay: float = Field(
        1e-4,
        ge=0,
        le=MAX_WEIGHT_DECAY,
        description="Weight decay of either optimizer (L2 in SGD, decoupled in AdamW).",
    )
    poly_power: float = Field(
        0.9,
        ge=0,
        le=MAX_POLY_POWER,
        description="The exponent of the poly decay lr_t = lr·(1 − t/T)^power, t the iteration, "
        "as in DeepLab and PSPNet; 0 keeps the rate constant.",
    )
    amp: Literal["auto", "bf16", "fp16", "off"] = Field(
        "auto",
        description="Mixed precision: `auto` is bf16 on CUDA (fp16 with a gradient scaler "
        "where the GPU lacks bf16) and off on the CPU; `off` trains in float32. The losses "
        "are computed in float32 in every case.",
    )
    save_model: bool = Field(
        False,
        description="Log `model.pt` (the network's state dict and the loss's buffers) with "
        "each trial's MLflow run.",
    )
    diagnostics: DiagnosticsSpec = Field(
        DiagnosticsSpec(), description="What a trial logs besides its metrics."
    )
    threads: int = Field(
        1,
        ge=1,
        le=256,
        description="CPU threads of one trial; part of the recipe, so results do not depend "
        "on `--workers`.",
    )
    deterministic: bool = Field(
        False,
        description="Use PyTorch's deterministic algorithms (and cuDNN's, on a GPU).",
    )
    checkpoint_every: int = Field(
        1,
        ge=1,
        le=MAX_COUNT,
        description="Evaluations between checkpoints of a running trial; a stopped trial "
        "continues from its last checkpoint.",
    )
    keep_checkpoint: bool = Field(
        False,
        description="Keep a finished trial's last checkpoint; otherwise it is deleted when the "
        "trial completes.",
    )


class CeSpec(_Frozen):
    """The cross-entropy on the main output (weight 1), plain or with hard-example mining."""

    ohem_thresh: float | None = Field(
        None,
        gt=0,
        le=1,
        description="null: plain cross-entropy, the mean over non-ignored pixels. A number: "
        "OHEM (Shrivastava et al. 2016), keeping every pixel whose true-class probability is "
        "below it and at least `min_kept`, the loss the mean over kept pixels.",
    )
    min_kept: int = Field(
        100_000,
        ge=1,
        le=MAX_COUNT,
        description="OHEM only: the fewest pixels kept per batch (the hardest; every valid "
        "pixel when there are fewer).",
    )
    class_weight: Literal["balanced"] | None = Field(
        None,
        description="null: every pixel weighs the same. `balanced`: median-frequency balancing "
        "(Eigen & Fergus 2015), pixel i weighs w_{y_i} = median_c(f_c)/f_{y_i}, f_c = pixels "
        "of class c / pixels of the training images that contain c (ignored pixels not "
        "counted), computed once per trial before training from the training labels (at most "
        "the first 100 batches of a shuffled order fixed by `data.seed`; the whole split when "
        "it is smaller); a class without a pixel there is left out of the median and weighs "
        "0. The loss is the weighted mean Σ w_{y_i}·CE_i / Σ w_{y_i} over non-ignored pixels "
        "(PyTorch's `weight=`); with OHEM, over the kept pixels, which are still chosen by "
        "probability alone.",
    )

    @field_validator("class_weight", mode="before")
    @classmethod
    def _known_weighting(cls, v: Any) -> Any:
        if v is not None and v != "balanced":
            raise ValueError("allowed: null (unweighted) or 'balanced'")
        return v


class AuxSpec(_Frozen):
    """The companion (auxiliary) loss on the model's intermediate heads: PSPNet's aux loss,
    deep supervision."""

    weight: float = Field(
        0.4,
        ge=0,
        le=MAX_LOSS_WEIGHT,
        description="α: the weight of the aux term, the sum of one loss per head the model "
        "returns under `aux` (all of them; docs/study-file.md lists each built-in model's "
        "heads); 0: off. PSPNet uses 0.4.",
    )
    schedule: Schedule = Field(
        "constant",
        description="How the weight follows training progress t/T (in iterations): "
        "`constant` α; `linear` α(1 − t/T); `step` α while t/T < `until`, then 0; `cosine` "
        "α·½(1 + cos πt/T); `exp` α·γ^(t/T), γ = `gamma`.",
    )
    target: AuxTarget = Field(
        "full",
        description="How a coarse head meets the full-resolution labels: `full` upsamples its "
        "logits bilinearly, cross-entropy (PSPNet); `nearest` downsamples the labels by "
        "nearest neighbour, cross-entropy; `cpp` pools them to per-class shares (CPP, "
        "SeeThroughNet), KL divergence.",
    )
    until: float = Field(
        0.5,
        gt=0,
        le=1,
        description="`step` only: the fraction of training (of the iterations, not epochs) "
        "with the aux term on; 0.5 turns it off halfway.",
    )
    gamma: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="`exp` only: the weight at the end of training as a fraction of `weight` "
        "(α_T = γ·α).",
    )


class CenterSpec(_Frozen):
    """Center loss on the pixel embeddings (Wen et al. 2016)."""

    weight: float = Field(
        0.0,
        ge=0,
        le=MAX_LOSS_WEIGHT,
        description="λ: the weight of the center loss Σ‖x_i − c_{y_i}‖²/(2N) on the model's "
        "`embed` features (unit-length with `normalize`); 0: off.",
    )
    alpha: float = Field(
        0.5,
        ge=0,
        le=1,
        description="The class centers' learning rate of Wen et al.: "
        "c_j ← c_j − α·Σ_{y_i=j}(c_j − x_i)/(1 + n_j).",
    )
    max_pixels: int = Field(
        4096,
        ge=1,
        le=MAX_COUNT,
        description="Embedding pixels sampled at random per batch (ignored ones left out).",
    )
    normalize: bool = Field(
        True,
        description="L2-normalise every embedding vector and keep each center at unit length "
        "(rescaled after every update): the term becomes 1 − cos(x, c_y), independent of the "
        "embedding's scale. false: the paper's raw features (with `init: zero` the term then "
        "mostly shrinks every feature towards the origin).",
    )
    init: Literal["first_batch", "zero"] = Field(
        "first_batch",
        description="`first_batch`: a class's center is set to the mean of its embedding "
        "vectors (of the `max_pixels` sampled, ignored pixels left out) the first time the "
        "class appears in a training batch, and on that batch the term measures the distance "
        "to that mean; a class not yet seen keeps a zero center. `zero`: every center starts "
        "at the origin (Wen et al.).",
    )
    warmup: float = Field(
        0.0,
        ge=0,
        le=1,
        description="The fraction of training (t/T in iterations) over which λ ramps linearly "
        "from 0 to `weight`; 0: λ from the start. The centers are initialised and updated "
        "during the ramp; the λ in use is logged as `train/center_weight`.",
    )


class LossSpec(_Frozen):
    """The training objective: a weighted sum of named terms."""

    ce: CeSpec = Field(CeSpec(), description="The cross-entropy on the main output.")
    lovasz: float = Field(
        0.0,
        ge=0,
        le=MAX_LOSS_WEIGHT,
        description="The weight of a Lovász-Softmax term (Berman et al. 2018) on the main "
        "output; 0: off.",
    )
    aux: AuxSpec = Field(AuxSpec(), description="The companion loss on the intermediate heads.")
    center: CenterSpec = Field(CenterSpec(), description="Center loss on the pixel embeddings.")


class EvalSpec(_Frozen):
    """When validation runs, and how it predicts."""

    every: int | None = Field(
        None,
        ge=1,
        le=MAX_COUNT,
        description="Training iterations between evaluations; null: once per epoch.",
    )
    boundary_width: int = Field(
        3,
        ge=1,
        le=4096,
        description="d of boundary IoU (Cheng et al. 2021): the band within d pixels of an edge.",
    )
    mode: Literal["whole", "slide"] = Field(
        "whole",
        description="`whole`: one forward pass per image; `slide`: overlapping `crop` windows "
        "every `stride`, logits averaged where they overlap.",
    )
    crop: tuple[int, int] | None = Field(
        None,
        description="`slide` window [height, width], each 1–4096; null: `data.image_size`.",
    )
    stride: tuple[int, int] | None = Field(
        None,
        description="`slide` step [height, width], each 1–4096 and at most `crop` (which it "
        "needs); null: 2/3 of the crop, as in mmsegmentation.",
    )
    scales: list[float] = Field(
        [1.0],
        description="Resize the image by each factor (1 to 8 of them, each above 0 and at most "
        "4) and average the softmax probabilities: multi-scale testing.",
    )
    flip: bool = Field(False, description="Also predict each mirrored image and average it in.")

    @field_validator("crop", "stride")
    @classmethod
    def _sane_window(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not all(1 <= s <= 4096 for s in v):
            raise ValueError("each side must be between 1 and 4096 pixels")
        return v

    @field_validator("scales")
    @classmethod
    def _sane_scales(cls, v: list[float]) -> list[float]:
        if not 1 <= len(v) <= 8:
            raise ValueError("give 1 to 8 scales (each is a full pass over the split)")
        if not all(0 < s <= 4 for s in v):
            raise ValueError("each scale must be above 0 and at most 4")
        return v

    @model_validator(mode="after")
    def _stride_within_crop(self) -> EvalSpec:
        if self.stride is None:
            return self
        if self.crop is None:
            raise ValueError("stride needs crop: set eval.crop too (default: data.image_size)")
        if any(s > c for s, c in zip(self.stride, self.crop, strict=True)):
            raise ValueError(
                f"stride {list(self.stride)} must not exceed crop {list(self.crop)} on either "
                "side: windows would leave pixels unpredicted"
            )
        return self


class Recipe(_Frozen):
    """Everything one training run needs; a trial's recipe is the base with its cell applied."""

    data: DataSpec = Field(DataSpec(), description="The dataset.")
    model: ModelSpec = Field(ModelSpec(), description="The network.")
    train: TrainSpec = Field(TrainSpec(), description="The optimisation.")
    loss: LossSpec = Field(LossSpec(), description="The training objective.")
    eval: EvalSpec = Field(EvalSpec(), description="Validation: when, and how it predicts.")


# --------------------------------------------------------------------------- the study file


class RangeSpec(_Frozen):
    """The range one key is searched over."""

    # an int bound stays an int: a whole-number key is searched over integers
    low: int | float = Field(
        description="Lower bound. A whole-number key takes whole-number bounds and is searched "
        "over integers."
    )
    high: int | float = Field(description="Upper bound, above `low`.")
    log: bool = Field(False, description="Sample on a log scale (needs `low` > 0).")

    @model_validator(mode="after")
    def _ordered(self) -> RangeSpec:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self

    @property
    def whole(self) -> bool:
        """Both bounds written as whole numbers."""
        return isinstance(self.low, int) and isinstance(self.high, int)


class SearchSpec(_Frozen):
    """A sampler picks the configurations, instead of a grid."""

    sampler: Literal["tpe", "random"] = Field(
        "tpe", description="Optuna's `tpe` (Tree-structured Parzen Estimator) or `random`."
    )
    n_trials: int = Field(
        20,
        ge=1,
        le=MAX_CELLS,
        description="Configurations sampled, each trained once on the search `seed`.",
    )
    space: dict[str, RangeSpec] = Field(
        min_length=1,
        description="Key → range: the numeric keys searched, dotted paths inside `base` "
        "(`train.lr`).",
    )
    confirm_top: int = Field(
        0,
        ge=0,
        description="Then train the K best configurations (K ≤ n_trials) on every seed of "
        "`sweep.seeds`, beside the `baseline`; 0: no confirmation.",
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description="The search trials' seed; null: the first of `sweep.seeds`.",
    )

    @field_validator("confirm_top")
    @classmethod
    def _confirm_at_most_all(cls, v: int, info: ValidationInfo) -> int:
        n_trials = info.data.get("n_trials")
        if n_trials is not None and v > n_trials:
            raise ValueError(f"cannot exceed n_trials ({n_trials})")
        return v


class AdaptiveSeeds(_Frozen):
    """Seeds added in rounds while some comparison is undecided."""

    start: int = Field(
        ge=2, le=1000, description="Seeds every cell trains first (0 … start − 1); at least 2."
    )
    max: int = Field(le=1000, description="The most seeds any cell trains; at least `start`.")
    step: int = Field(
        2,
        ge=1,
        le=1000,
        description="Seeds added per round to each undecided comparison (its cell and the "
        "cell it is compared with); each round is one look of the sequential test.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveSeeds:
        if self.max < self.start:
            raise ValueError(f"max ({self.max}) must be at least start ({self.start})")
        return self


def _seeds_kind(value: Any) -> str:
    return "~adaptive" if isinstance(value, dict | AdaptiveSeeds) else "~list"


# a list of seeds, or adaptive seeds: told apart by the value's form, so a bad list is
# reported as a bad list, not also as a bad mapping ("~" tags are left out of key paths)
SeedsField = Annotated[
    Annotated[list[Seed], Field(min_length=1), Tag("~list")]
    | Annotated[AdaptiveSeeds, Tag("~adaptive")],
    Discriminator(_seeds_kind),
]


class SweepSpec(_Frozen):
    """The cells a study trains (from `grid` and `variants`, or a `search`) and the seeds."""

    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Key → values: one cell per combination (full factorial). Keys are dotted "
        "paths inside `base` (`loss.aux.weight`); each list is non-empty, without repeats. "
        f"A study has at most {MAX_CELLS:,} cells (here the product of the lists' lengths, "
        f"plus the variants) and {MAX_TRIALS:,} trials (cells × seeds), each cell's name (such "
        f"as `aux.weight=0.4`, or a variant's) at most {MAX_CELL_NAME} bytes in UTF-8.",
    )
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Name → overrides: named cells, each the base with these keys (dotted "
        "paths inside `base`) changed, after the grid's cells when both are given.",
    )
    search: SearchSpec | None = Field(
        None, description="A search instead of cells; not together with `grid` or `variants`."
    )
    tricks: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Name → overrides: named tricks (`aux: {loss.aux.weight: 0.4}`), each a set "
        "of keys (dotted paths inside `base`) it changes; `design` says which combinations are "
        "trained. Not together with `grid`, `variants` or `search`. Names: [a-z0-9_]+.",
    )
    design: TricksDesignName | None = Field(
        None,
        description="How `tricks` are combined: `one_at_a_time` (the base, and each trick alone "
        "on it, compared with the base), `leave_one_out` (all tricks, and all but each one, "
        "compared with all), `cumulative` (the base, then one more trick per row in file "
        "order, each compared with the row above: a bag of tricks), `factorial` (every "
        f"subset, 2^k cells, at most {MAX_FACTORIAL_TRICKS} tricks: main effects and two-way "
        "interactions). null: `one_at_a_time` when `tricks` is given.",
    )
    seeds: SeedsField = Field(
        default_factory=lambda: [0, 1, 2],
        description="Trial seeds, distinct: every cell is trained once per seed. A seed sets "
        "the model's initialisation and the batch order, so cells are paired by seed. Or "
        "adaptive seeds, `{start: 3, max: 10, step: 2}`: every cell trains seeds 0 … start − 1 "
        "(start ≥ 2), then `step` more (default 2) per round only where a comparison is still "
        "undecided, up to `max` (a group-sequential test; see the README).",
    )

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int] | AdaptiveSeeds) -> list[int] | AdaptiveSeeds:
        if isinstance(v, AdaptiveSeeds):
            return v
        if not v:
            raise ValueError("give at least one seed")
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @property
    def seed_list(self) -> list[int]:
        """Every seed a trial may get: the list, or 0 … max − 1 of adaptive seeds."""
        if isinstance(self.seeds, AdaptiveSeeds):
            return list(range(self.seeds.max))
        return list(self.seeds)

    @field_validator("grid")
    @classmethod
    def _non_empty_axes(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"grid key {key!r} has no values")
            if len({repr(x) for x in values}) != len(values):
                raise ValueError(f"grid key {key!r} repeats a value")
        return v

    @field_validator("tricks")
    @classmethod
    def _named_tricks(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, patch in v.items():
            if not re.fullmatch(r"[a-z0-9_]+", name):
                raise ValueError(
                    f"trick name {name!r}: lowercase letters, digits and '_' only ([a-z0-9_]+; "
                    "it names cells such as '+aux')"
                )
            if not patch:
                raise ValueError(f"trick {name!r} changes no key")
        return v

    @model_validator(mode="after")
    def _something_to_sweep(self) -> SweepSpec:
        if not (self.grid or self.variants or self.search or self.tricks):
            raise ValueError("give at least one of 'grid', 'variants', 'tricks' or 'search'")
        if self.search and (self.grid or self.variants):
            raise ValueError("'search' cannot be combined with 'grid' or 'variants'")
        if self.tricks and (self.grid or self.variants or self.search):
            raise ValueError("'tricks' cannot be combined with 'grid', 'variants' or 'search'")
        if self.design is not None and not self.tricks:
            raise ValueError(f"'design: {self.design}' needs 'tricks' to combine")
        if self.tricks and self.design is None:  # one name for one design everywhere after
            object.__setattr__(self, "design", "one_at_a_time")
        if self.design == "factorial" and len(self.tricks) > MAX_FACTORIAL_TRICKS:
            raise ValueError(
                f"a factorial design of {len(self.tricks)} tricks is "
                f"{2 ** len(self.tricks)} cells; at most {MAX_FACTORIAL_TRICKS} tricks "
                f"({2**MAX_FACTORIAL_TRICKS} cells)"
            )
        return self


class MetricSpec(_Frozen):
    """What the study compares its cells on."""

    name: str = Field(
        "val/mIoU",
        description=f"One of {', '.join(f'`{m}`' for m in METRICS)}, or a per-class or "
        f"per-size metric: {', '.join(f'`{p}<name>`' for p in PER_CLASS_PREFIXES)}.",
    )
    goal: Literal["maximize", "minimize"] = Field(
        "maximize",
        description="Whether higher is better; `minimize` for a loss such as `val/loss` (it "
        "does not follow the metric by itself).",
    )
    effect: float | None = Field(
        default=None,
        gt=0,
        le=1e6,
        description="The smallest difference that matters, in the metric's display unit "
        "(points for IoU); the report then says how many seeds would detect it. null: unset.",
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if is_known_metric(v):
            return v
        raise ValueError(
            f"unknown metric {v!r}{did_you_mean(v, METRICS)}; "
            f"allowed: {', '.join(METRICS)} or val/iou/<class>"
        )


class StudySpec(_Frozen):
    """A study file: the recipe every trial starts from, what is swept, what is compared."""

    name: str = Field(
        description=f"Lowercase letters, digits, `_` and `-` ([a-z0-9_-]+, at most {MAX_NAME} "
        "characters): names the results folder results/<name>/ and the MLflow experiment.",
        # for editors only: _plain_name checks it with a message that suggests a name
        json_schema_extra={"pattern": "^[a-z0-9_-]+$", "maxLength": MAX_NAME},
    )
    description: str = Field("", description="Free text for the report: the claim tested.")
    base: Recipe = Field(
        Recipe(),
        description="The full recipe every trial starts from; an omitted key takes its default.",
    )
    sweep: SweepSpec = Field(description="What varies between trials, and the seeds.")
    metric: MetricSpec = Field(MetricSpec(), description="What the cells are compared on.")
    baseline: dict[str, Any] | str | None = Field(
        None,
        description="The cell every other cell is compared with: overrides that match exactly "
        "one cell (`{loss.aux.weight: 0.0}`) or a cell's name; null: the first cell. In a "
        "search: overrides of the base (null: the base itself), trained beside the confirmed "
        "configurations.",
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if len(v) > MAX_NAME:
            raise ValueError(
                f"a study name has at most {MAX_NAME} characters (it names the results folder "
                f"and the MLflow experiment); this one has {len(v):,}"
            )
        if re.fullmatch(r"[a-z0-9_-]+", v):
            return v
        plain = re.sub(r"[^a-z0-9_-]+", "_", v.lower()).strip("_") or "my_study"
        raise ValueError(
            f"a study name is lowercase letters, digits, '_' and '-' only, [a-z0-9_-]+ (it "
            f"names the results folder and the MLflow experiment); try {plain[:MAX_NAME]!r}"
        )


# --------------------------------------------------------------------------- the loaded study


@dataclass(frozen=True)
class Study:
    """A validated study: the spec, where it came from, and its design (the cells, their
    recipes, what is compared with what)."""

    spec: StudySpec
    path: Path
    design: Design

    @property
    def cells(self) -> tuple[Cell, ...]:
        return self.design.cells

    @property
    def recipes(self) -> Mapping[str, Recipe]:
        """Cell name -> its recipe, as known before training."""
        return self.design.recipes

    @property
    def baseline(self) -> str:
        """The baseline cell's name ("" for a design without one)."""
        return self.design.baseline

    @property
    def keys(self) -> list[str]:
        """The swept keys, in file order (the columns of the results tables)."""
        return self.design.keys

    @property
    def n_trials(self) -> int:
        """How many (cell, seed) trials the design holds once complete."""
        return self.design.n_trials()

    def describe(self) -> str:
        """The design in words, for the console."""
        return self.design.describe()


def format_value(value: Any) -> str:
    """A compact, stable text form of a swept value, used in cell names."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """The shortest dotted suffix (at least two parts) telling each key apart from the others."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for n in range(min(2, len(parts)), len(parts) + 1):
            candidate = ".".join(parts[-n:])
            if sum(k.endswith(candidate) for k in keys) == 1:
                break
        short[key] = candidate
    return short


# --------------------------------------------------------------------------- overrides


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `tree[a][b][c] = value` for `dotted = "a.b.c"`, creating mappings on the way."""
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`"base.train.epochs=1"` -> `("base.train.epochs", 1)`; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z0-9_/\-]+(\.[A-Za-z0-9_/\-]+)*", key):
        raise SpecError(
            f"--set {_shown(text)}: expected KEY=VALUE with a dotted key, e.g. base.train.epochs=1"
        )
    try:
        value = load_yaml(raw, key.split(".")) if raw.strip() else None
    except _Refused as exc:
        raise SpecError(f"--set {_shown(text)}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"--set {_shown(text)}: the value is not valid YAML ({exc})") from None
    return key, value


def apply_overrides(recipe: Recipe, overrides: Mapping[str, Any]) -> Recipe:
    """The recipe with dotted overrides (paths inside `base`) applied, validated again."""
    tree = recipe.model_dump(mode="python")
    for key, value in overrides.items():
        set_path(tree, key, value)
    return Recipe.model_validate(tree)


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


def _shown(value: Any) -> str:
    """A bad value as an error message repeats it: its repr, cut short."""
    return _clip(repr(value))


def _clip(text: str, limit: int = _SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    return f"{path} = {_shown(err.get('input'))}: {_clip(msg, 400)}"


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


def _valid_path(dotted: str) -> bool:
    """Whether a sweep key names a leaf of the recipe (anything below `model.args` is free)."""
    model: Any = Recipe
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return False
        field = model.model_fields.get(part)
        if field is None:
            return False
        if model is ModelSpec and part == "args":
            return i < len(parts) - 1
        model = field.annotation
    return not (isinstance(model, type) and issubclass(model, BaseModel))


def _leaf_paths(model: type[BaseModel] = Recipe, prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            paths += _leaf_paths(ann, f"{prefix}{name}.")
        else:
            paths.append(f"{prefix}{name}")
    return paths


def check_key(file: Path, where: str, key: str) -> None:
    if not _valid_path(key):
        raise SpecError(
            f"{file}: {where}.{key}: not a key of the recipe{did_you_mean(key, _leaf_paths())}; "
            "sweep keys are dotted paths inside 'base', e.g. loss.aux.weight"
        )


def resolve_baseline(file: Path, spec: StudySpec, cells: Sequence[Cell]) -> str:
    """The baseline cell's name: the first cell, or the one `baseline` names or matches."""
    names = [c.name for c in cells]
    if spec.baseline is None:
        return names[0]
    if isinstance(spec.baseline, str):
        if spec.baseline not in names:
            raise SpecError(
                f"{file}: baseline = {spec.baseline!r}: no such cell"
                f"{did_you_mean(spec.baseline, names)}; cells: {_few(names)}"
            )
        return spec.baseline
    wanted = spec.baseline
    for key in wanted:
        check_key(file, "baseline", key)
    matches = [
        c.name
        for c in cells
        if all(_same(c.overrides.get(k, _MISSING), v) for k, v in wanted.items())
    ]
    if len(matches) != 1:
        found = "no cell" if not matches else f"{len(matches)} cells ({_few(matches)})"
        raise SpecError(
            f"{file}: baseline = {dict(wanted)!r} matches {found}; it must match exactly one "
            f"of: {_few(names)}"
        )
    return matches[0]


def _few(names: Sequence[str], shown: int = 10) -> str:
    """The first names, and how many more: a message lists a few of 10,000 cells."""
    more = f" and {len(names) - shown:,} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    """Equal as YAML values: 0 matches 0.0, but true does not match 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def load_study(path: str | Path, overrides: Sequence[str] = ()) -> Study:
    """Read, override (`--set`), validate and expand a study file. Raises SpecError."""
    file = Path(path)
    text = read_study_file(file)
    try:
        raw = load_yaml(text)
    except _Refused as exc:
        raise SpecError(f"{file}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{file}: a study file is a mapping with keys name, base, sweep, ...")
    raw = copy.deepcopy(raw)
    for text_override in overrides:
        key, value = parse_override(text_override)
        set_path(raw, key, value)
    return build_study(raw, file)


_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_study_file(file: Path) -> str:
    """A study file's text. What is not a regular file (a FIFO would block the read until a
    writer came, /dev/zero never ends) and a file over MAX_FILE_BYTES are refused before
    anything is read; opened without blocking, so the check is made on what is read."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SpecError(f"{file}: no such study file") from None
    except OSError as exc:
        raise SpecError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        for is_kind, kind in _FILE_KINDS:
            if is_kind(mode):
                raise SpecError(f"{file}: is {kind}; a study file is a regular YAML file")
        chunks: list[bytes] = []  # up to one byte past the limit: a size on disk may lie or grow
        left = MAX_FILE_BYTES + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise SpecError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_FILE_BYTES:
        raise SpecError(
            f"{file}: more than {MAX_FILE_BYTES // 2**20} MiB; a study file has at most "
            f"{MAX_FILE_BYTES:,} bytes (the shipped ones are a few KB)"
        )
    try:  # universal newlines, as Path.read_text reads them
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{file}: cannot read it ({exc})") from None


def build_study(raw: Mapping[str, Any], file: Path) -> Study:
    """Validate a study's raw mapping and build its design; `file` is named in errors."""
    from ablate.design import build_design  # designs are built on this module's models

    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as exc:
        raise_validation(file, exc, StudySpec)
    check_grid_size(file, spec.sweep)
    design = build_design(spec, file)
    check_design_size(file, spec.sweep, design)
    return Study(spec=spec, path=file, design=design)


def check_grid_size(file: Path, sweep: SweepSpec) -> None:
    """Refuse a grid of more than MAX_CELLS cells from the lengths of its lists, before
    its product is expanded (a million cells took minutes and gigabytes to build)."""
    lengths = [len(values) for values in sweep.grid.values()]
    cells = (math.prod(lengths) if lengths else 0) + len(sweep.variants)
    if cells > MAX_CELLS:
        parts = [" × ".join(f"{n:,}" for n in lengths) + " values"] if lengths else []
        parts += [f"{len(sweep.variants):,} variants"] if sweep.variants else []
        raise SpecError(
            f"{file}: {'sweep.grid' if lengths else 'sweep.variants'}: {' + '.join(parts)} "
            f"make {cells:,} cells; a study has at most {MAX_CELLS:,} cells: sweep fewer "
            "values, split it into several studies, or search the space with sweep.search"
        )


def check_design_size(file: Path, sweep: SweepSpec, design: Design) -> None:
    """Refuse a design over MAX_CELLS cells or MAX_TRIALS trials, and a cell name that
    cannot name a file or an MLflow run: over MAX_CELL_NAME bytes in UTF-8 (a file name has
    at most 255, a checkpoint's adds its seed; MLflow's run names 250 characters), or holding
    a control character (a newline breaks every one-line message; PostgreSQL refuses NUL)."""
    where = "sweep.tricks" if sweep.tricks else "sweep.search" if sweep.search else "sweep.grid"
    if len(design.cells) > MAX_CELLS:
        raise SpecError(
            f"{file}: {where}: {len(design.cells):,} cells; a study has at most {MAX_CELLS:,}"
        )
    if design.n_trials() > MAX_TRIALS:
        raise SpecError(
            f"{file}: sweep.seeds: {design.describe()} = {design.n_trials():,} trials; a study "
            f"has at most {MAX_TRIALS:,}: give fewer seeds or fewer cells"
        )
    for cell in design.cells:
        key = "sweep.variants" if cell.name in sweep.variants else where
        size = len(cell.name.encode("utf-8"))
        if size > MAX_CELL_NAME:
            fix = (
                "give the variant a shorter name"
                if cell.name in sweep.variants
                else "shorten the values or trick names, or name the cells with sweep.variants"
            )
            raise SpecError(
                f"{file}: {key}: the cell name {_shown(cell.name)} is {size:,} bytes in UTF-8 "
                f"({len(cell.name):,} characters); a cell name has at most {MAX_CELL_NAME} "
                f"bytes (it names the cell's MLflow runs and checkpoint files): {fix}"
            )
        if re.search(r"[\x00-\x1f\x7f]", cell.name):
            raise SpecError(
                f"{file}: {key}: the cell name {_shown(cell.name)} holds a control character "
                "(a newline, tab, NUL, …); a cell name is one line of printable text"
            )


def leaf_annotation(dotted: str) -> Any:
    """The type annotation of a recipe leaf; None below `model.args` (free keys)."""
    model: Any = Recipe
    for part in dotted.split("."):
        if model is ModelSpec and part == "args":
            return None
        model = model.model_fields[part].annotation
    return model
