"""The `Design` protocol: what a study trains, and what it compares with what.

A design is built from a validated study file when it is loaded (it imports nothing heavy, so
`ablate validate` stays quick) and then asked by the engine, the CLI and the report. Those never
ask which design they hold: everything that differs between a grid, named variants and a search
is an answer of the design's own. The engine hands a design the records so far (a `QueueView`
where it also samples a claimed trial's values) where its plan depends on results, as a
search's confirmation does. A design decides and the queue coordinates: a design returns the
`Round` its records call for, and the queue enqueues it once, after the trials it depends on
have settled; no design writes to the study, waits or reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from ablate.design._sequential import Decision
    from ablate.spec import Recipe
    from ablate.study._record import TrialRecord


@dataclass(frozen=True)
class Cell:
    """One point of the design: a name and the dotted overrides it applies to the base recipe."""

    name: str
    overrides: Mapping[str, Any]


@dataclass(frozen=True)
class Pair:
    """One (cell, seed) to train, and what its trial applies to the base recipe. A `sampled`
    pair takes its values from the design when a worker claims it; `params` are the values
    fixed for it in advance (a retry, a confirmation)."""

    cell: str
    seed: int
    overrides: Mapping[str, Any]
    sampled: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Round:
    """Trials a design adds once the ones it depends on have settled (a search's confirmation,
    a round of adaptive seeds). The queue enqueues a round once under `key`: the first process
    to record `decision` there wins, and a later call with the same key enqueues only what is
    still missing. `decision` is what the design keeps of its choice (a search's chosen
    configurations), read back from the study's attributes by `key`."""

    key: str
    pairs: tuple[Pair, ...]
    decision: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Range:
    """One searched key, as the sampler needs it."""

    kind: Literal["int", "float"]
    low: float
    high: float
    log: bool


@dataclass(frozen=True)
class SamplerPlan:
    """Which sampler draws a claimed trial's values, and its seed. TPE models after a third of
    the budget (at least 3, at most 10): with a fixed 10 random start-up trials, a 12-trial
    search would be a random one."""

    name: Literal["tpe", "random"]
    seed: int
    startup: int


@dataclass(frozen=True)
class Comparison:
    """What a report compares: summary.csv's rows in order, the cell the others are paired
    with, and the cells tested against it (baseline first; empty when nothing can be tested)."""

    cells: list[str]
    baseline: str
    compared: list[str]
    # True when `baseline` is no trained baseline but the best cell of a search that has
    # none (one seed each): the others are ranked against it, not tested
    best_searched: bool = False
    # cell -> the cell it is compared with, where that is not `baseline` (a cumulative
    # design compares each row with the row above)
    references: Mapping[str, str] = field(default_factory=dict)
    against: str = ""  # what the cells are compared with, in words, when not "the baseline"
    # adaptive seeds: cell -> where its sequential test stopped and why
    sequential: Mapping[str, Decision] = field(default_factory=dict)
    # cell -> the seeds it was selected on (a search's confirmed configurations: the search
    # seed, where it ranked best and so reads high: the winner's curse); its paired comparison
    # leaves them out, so it is judged on the seeds it was not selected on
    selected_on: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # adaptive seeds with declared claims: a claim's index -> where its sequential test
    # stopped and why (claims of a study with a fixed seed count are tested by the report)
    claims: Mapping[int, Decision] = field(default_factory=dict)


class QueueView(Protocol):
    """The running study, as a design sees it: read-only but for sampling a claimed trial's
    values (the sampler records them on the trial)."""

    @property
    def attrs(self) -> Mapping[str, Any]: ...  # the study's attributes (rounds' decisions)

    def records(self) -> list[TrialRecord]: ...

    def sample(
        self, record: TrialRecord, space: Mapping[str, Range], plan: SamplerPlan
    ) -> dict[str, Any]: ...


class UpFront:
    """What a design whose every (cell, seed) is known before training shares (a grid,
    named variants, tricks): all enqueued at the start, nothing added later, every cell in
    the console's summary."""

    cells: tuple[Cell, ...]
    seeds: tuple[int, ...]

    def pairs(self, queue: QueueView | None) -> list[Pair]:
        return [Pair(c.name, s, c.overrides) for c in self.cells for s in self.seeds]

    def values(self, queue: QueueView, record: TrialRecord) -> dict[str, Any]:
        return dict(record.overrides)

    def later(self, queue: QueueView) -> int:
        return 0

    def next_round(self, records: Sequence[TrialRecord], attrs: Mapping[str, Any]) -> Round | None:
        return None  # everything was enqueued up front

    def summary_rows(self, comparison: Comparison) -> list[str]:
        return comparison.cells


class Design(Protocol):
    """Grid, variants, tricks and search implement this; the next designs plug in here."""

    @property
    def kind(self) -> str: ...  # its key under `sweep`: grid, tricks, search (its report part)

    @property
    def cells(self) -> tuple[Cell, ...]: ...

    @property
    def recipes(self) -> Mapping[str, Recipe]: ...  # each cell's recipe as known before training

    @property
    def baseline(self) -> str: ...  # the cell every other is compared with; "" when none

    @property
    def keys(self) -> list[str]: ...  # the swept keys in file order: the results' columns

    @property
    def factors(self) -> Sequence[str]: ...  # keys crossed in full (two-way tables, heatmaps)

    @property
    def crossed(self) -> Sequence[str]: ...  # the cells that make up the factorial over `factors`

    @property
    def axis(self) -> str | None: ...  # the one key the cells lie along (metric-vs-key plot)

    def n_trials(self) -> int:
        """How many (cell, seed) trials the design holds once complete."""
        ...

    def describe(self) -> str:
        """The design in a few words, for the console and the report."""
        ...

    def outline(self) -> list[str]:
        """What `ablate validate` lists below its first line: the cells and their comparisons."""
        ...

    def pairs(self, queue: QueueView | None) -> list[Pair]:
        """Every (cell, seed) to train as far as known now (None: before any storage)."""
        ...

    def values(self, queue: QueueView, record: TrialRecord) -> dict[str, Any]:
        """The overrides a claimed trial trains with."""
        ...

    def later(self, queue: QueueView) -> int:
        """At most how many trials the design may still add beyond `pairs(queue)` (a search's
        confirmation, the next rounds of adaptive seeds)."""
        ...

    def next_round(self, records: Sequence[TrialRecord], attrs: Mapping[str, Any]) -> Round | None:
        """What the results so far call for beyond `pairs` (None: nothing more now); a pure
        function of the records and the study's attributes (the decisions of earlier rounds).
        The queue enqueues it (`Queue.advance`)."""
        ...

    def comparison(self, records: Sequence[TrialRecord], attrs: Mapping[str, Any]) -> Comparison:
        """What the report compares, given the trials so far and the study's attributes."""
        ...

    def summary_rows(self, comparison: Comparison) -> list[str]:
        """The cells the console's summary table shows (the rest are in the files)."""
        ...
