"""The recipe: data, model, training, losses and evaluation of one trial, as a study file's
`base` gives them."""

from __future__ import annotations

import re
from typing import (
    Any,
    Literal,
)

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from ablate.errors import did_you_mean
from ablate.names import (
    DISK_DATASETS,
    FIXED_CLASSES,
    GENERATED_DATASETS,
    MODELS,
    AuxTarget,
    DatasetName,
    Schedule,
)
from ablate.spec._base import (
    IGNORE_INDEX,
    MAX_BATCH,
    MAX_CLASSES,
    MAX_COUNT,
    MAX_EPOCHS,
    MAX_LOSS_WEIGHT,
    MAX_LR,
    MAX_POLY_POWER,
    MAX_SEED,
    MAX_SIZE,
    MAX_WEIGHT_DECAY,
    _Frozen,
)


def _listed(names: tuple[str, ...]) -> str:
    """`a`, `b` and `c`: names in a field's description."""
    quoted = [f"`{n}`" for n in names]
    return ", ".join(quoted[:-1]) + f" and {quoted[-1]}" if len(quoted) > 1 else quoted[0]


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
        f"handwritten digits) are generated; {_listed(DISK_DATASETS)} are read from `root` "
        "in their standard layouts.",
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
        description=f"The dataset's folder; required by {_listed(DISK_DATASETS)}, unused by "
        "generated data.",
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
        if self.name not in GENERATED_DATASETS and self.root is None:
            raise ValueError(f"{self.name} is read from disk: set root to its folder")
        if self.name in GENERATED_DATASETS and self.test_split is not None:
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
