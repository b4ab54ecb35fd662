"""The rest of a study file: what is swept (grid, variants, tricks, search, seeds), the metric
the cells are compared on, and the file as a whole."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import (
    Annotated,
    Any,
    Literal,
)

from pydantic import (
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ablate.errors import SpecError, did_you_mean
from ablate.names import (
    METRICS,
    PER_CLASS_PREFIXES,
    is_known_metric,
)
from ablate.spec._base import (
    MAX_CELL_NAME,
    MAX_CELLS,
    MAX_CLAIMS,
    MAX_FACTORIAL_TRICKS,
    MAX_NAME,
    MAX_SEED,
    MAX_TRIALS,
    Seed,
    TricksDesignName,
    _Frozen,
)
from ablate.spec._recipe import Recipe

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


ClaimTest = Literal["superior", "noninferior", "equivalent", "different"]
CLAIM_TESTS: tuple[str, ...] = ("superior", "noninferior", "equivalent", "different")
_NEEDS_MARGIN = ("noninferior", "equivalent")


class ClaimSpec(_Frozen):
    """One claim the study sets out to show, declared before it runs: cell `a` against cell
    `b`, paired by seed, by the test named."""

    a: str = Field(
        description="A cell's name as `ablate validate` lists it (`aux.weight=0.4`, a variant's "
        "or a trick combination's name), or `baseline`.",
    )
    b: str = Field(description="The cell `a` is compared with; as `a`.")
    test: ClaimTest = Field(
        description="`superior`: a beats b (by more than `margin` when one is given; one-sided "
        "paired t-test); `noninferior`: a is at most `margin` worse than b (one-sided); "
        "`equivalent`: |a − b| < `margin` (two one-sided tests, TOST); `different`: a and b "
        "differ, either way (two-sided). Better and worse follow `metric.goal`."
    )
    margin: float | None = Field(
        None,
        ge=0,
        le=1e6,
        description="In the metric's display unit (points for IoU): needed by `noninferior` "
        "and `equivalent` (above 0), optional for `superior` (default 0), not taken by "
        "`different`.",
    )

    @model_validator(mode="after")
    def _margin_fits_the_test(self) -> ClaimSpec:
        if self.test in _NEEDS_MARGIN and not self.margin:
            raise ValueError(
                f"a {self.test!r} claim needs a margin above 0, in the metric's display unit "
                "(points for IoU; e.g. margin: 1.0)"
            )
        if self.test == "different" and self.margin is not None:
            raise ValueError("a 'different' claim takes no margin (it is two-sided, against 0)")
        if self.a == self.b:
            raise ValueError(f"a claim compares two cells; a and b are both {self.a!r}")
        return self

    @property
    def shown_margin(self) -> float:
        """The margin the test uses (0 where none is given), in display units."""
        return self.margin or 0.0


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
    claims: list[ClaimSpec] = Field(
        default_factory=list,
        max_length=MAX_CLAIMS,
        description="What the study sets out to show, declared before it runs: each item names "
        "two cells, a test and, where the test needs one, a margin "
        "(`{a: step, b: constant, test: noninferior, margin: 1.0}`). The report answers each "
        "with supported / not supported / inconclusive, Holm-corrected over the claims, in "
        "claims.csv and first in report.md; comparisons not declared are exploratory. Claims "
        "are part of the study: changing them once a trial has a result is refused.",
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
