"""The verdict on a comparison as a value: what it found (a `Kind`) and the reasons and caveats
that go with it, built once from the summary row, the row it is compared with and, with
adaptive seeds, the sequential test's decision. summary.csv, report.md and .html, the console
and the plots render it (`Verdict.text`, `Verdict.short`, `Verdict.kind`); nothing patches its
words afterwards."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from ablate.formats import Units
from ablate.report._power import POWER

if TYPE_CHECKING:
    from ablate.design import Comparison
    from ablate.report._health import CellHealth
    from ablate.report._paired import Level, Paired


class Kind(enum.Enum):
    """What a comparison found; the value is the words its verdict starts with."""

    BASELINE = "baseline"  # the row the others are compared with
    BEST_SEARCHED = "best of the search"  # a search without baseline: the others ranked on it
    BETTER = "better"
    WORSE = "worse"
    NO_DIFFERENCE = "no detectable difference"  # the fixed-n test found none
    EQUIVALENT = "no difference that matters"  # adaptive seeds: the equivalence test
    UNDECIDED = "undecided: more seeds are queued"  # adaptive seeds, still running
    UNDECIDED_AT_MAX = "undecided at the most seeds"  # adaptive seeds, none of the above
    ONE_SEED = "n/a"  # one paired seed: no test possible
    INCONCLUSIVE = "inconclusive"  # the comparison cannot be trusted (`Verdict.reasons`)
    DIVERGED = "diverged"  # every seed of the cell diverged
    MISSING = "missing"  # no completed seed

    @property
    def tested(self) -> bool:
        """A healthy comparison's fixed-n test said it: more seeds would sharpen it."""
        return self in (Kind.BETTER, Kind.WORSE, Kind.NO_DIFFERENCE)


_SHORT_CUT = 48  # a plot's tick label holds at most this many characters of the verdict


@dataclass(frozen=True)
class Verdict:
    """A kind and its reasons. `n`: the pairs a test used ("no detectable difference at n =
    4", "undecided at the most seeds (n = 8)"), or the seeds that diverged. `reasons`: why an
    inconclusive comparison cannot be trusted. `unconverged`: why the comparison had not
    settled: the sides whose curves still rose ("not converged", "baseline not converged"),
    or the difference between them ("difference from the baseline still moving"): a finding
    holds "at this training length", no finding is inconclusive. For a test that found
    nothing, `rules_out`: the differences its interval excludes ("gains above +1.30 and
    losses below -1.52 points (95 % paired t-interval)"), and `detectable`: what it could have
    found ("3.20 points with 80 % power (95 % interval of that 1.81–11.93, from 4 seeds'
    spread)"). `beside`: what is said beside the finding, in parentheses (the reference
    predicted one class while this cell learned: a trick that rescued training)."""

    kind: Kind
    n: int = 0
    reasons: tuple[str, ...] = ()
    unconverged: tuple[str, ...] = ()
    detectable: str = ""
    beside: tuple[str, ...] = ()
    rules_out: str = ""

    @property
    def text(self) -> str:
        """The verdict in words, as summary.csv writes it (plain text: a renderer escapes it)."""
        head = self._head()
        return f"{head} ({'; '.join(self.beside)})" if self.beside else head

    @property
    def short(self) -> str:
        """Its first clause, for a plot's tick label."""
        kind = self.kind
        if kind is Kind.INCONCLUSIVE:
            head = f"inconclusive: {self.reasons[0] if self.reasons else self._still_rising()}"
        elif kind in (Kind.BETTER, Kind.WORSE):
            head = kind.value + (" at this training length" if self.unconverged else "")
        elif kind is Kind.NO_DIFFERENCE:
            head = f"{kind.value} at n = {self.n}"
        else:
            head = kind.value
        return head if len(head) <= _SHORT_CUT else head[: _SHORT_CUT - 3] + "…"

    def _head(self) -> str:
        kind = self.kind
        if kind is Kind.INCONCLUSIVE:
            if self.reasons:
                return "inconclusive: " + "; ".join(self.reasons)
            return f"inconclusive: {self._still_rising()}; longer training may show a difference"
        if kind in (Kind.BETTER, Kind.WORSE) and self.unconverged:
            return f"{kind.value} at this training length ({self._still_rising()})"
        if kind is Kind.NO_DIFFERENCE:
            said = [
                *([f"rules out {self.rules_out}"] if self.rules_out else []),
                *([f"could detect ≥ {self.detectable}"] if self.detectable else []),
            ]
            return f"{kind.value} at n = {self.n}" + (": " + "; ".join(said) if said else "")
        if kind is Kind.UNDECIDED_AT_MAX:
            return f"{kind.value} (n = {self.n})"
        if kind is Kind.DIVERGED:
            return f"diverged ({self.n} of {self.n} seeds)"
        if kind in (Kind.ONE_SEED, Kind.BEST_SEARCHED):
            return f"{kind.value} (one seed)"
        return kind.value

    def _still_rising(self) -> str:
        return ", ".join(self.unconverged)


# what the sequential test decided, as the verdict's kind
_SEQUENTIAL = {
    "better": Kind.BETTER,
    "worse": Kind.WORSE,
    "equivalent": Kind.EQUIVALENT,
    "max": Kind.UNDECIDED_AT_MAX,
    "undecided": Kind.UNDECIDED,
}


class CellFacts(Protocol):
    """What a verdict reads of a cell's summary row (`SummaryRow` has it all)."""

    @property
    def cell(self) -> str: ...
    @property
    def level(self) -> Level: ...  # the metric over its complete seeds
    @property
    def diverged(self) -> int: ...  # seeds whose loss turned NaN/inf
    @property
    def paired(self) -> Paired: ...  # the comparison with its reference
    @property
    def checks(self) -> CellHealth: ...


def verdict_of(
    row: CellFacts,
    base: CellFacts | None,
    *,
    comparison: Comparison,
    goal: Literal["maximize", "minimize"],
    alpha: float,
    metric: str,
) -> Verdict:
    """The verdict on a summary row, given the row of the cell it is compared with (None when
    it has none) and the comparison the design made (its baseline, the references, whether
    the baseline is a search's best, the sequential decisions of adaptive seeds).

    A comparison that cannot be trusted says so before any test is read: models of the cell
    that collapsed to one class, or diverged seeds on either side, make it inconclusive (a
    difference between failures says nothing about the trick). A reference that collapsed
    while the cell learned keeps the test's verdict, with the collapse named beside it. The
    test is the sequential one where seeds were added adaptively (the fixed-n p-value is not
    valid after optional stopping), else the Holm-corrected paired t-test. A comparison that
    had not settled is inconclusive when no difference is found (one may appear with longer
    training) and keeps a found difference, marked as measured at this training length. It
    had not settled when its difference curve (cell − reference, `CellHealth.diff_converged`)
    still moved; a flat difference curve settles it even where both curves still rose, since
    two curves rising together leave their difference where it is; where the difference curve
    was not judged, a side whose own curve still rose unsettles it. Only a healthy comparison
    reads "no detectable difference", with what its paired interval rules out (gains and
    losses in the direction of `goal`) and the smallest difference it could have detected,
    with that MDE's interval from the seed spread's own uncertainty.
    """
    if row.cell == comparison.baseline:
        return Verdict(Kind.BEST_SEARCHED if comparison.best_searched else Kind.BASELINE)
    reference = comparison.references.get(row.cell, comparison.baseline)
    who = "baseline" if reference == comparison.baseline else reference
    k = row.paired.n_pairs
    if k == 0:
        if row.diverged and not row.level.n:
            return Verdict(Kind.DIVERGED, n=row.diverged)
        if base is not None and base.diverged and not base.level.n:
            the = "the " if who == "baseline" else ""
            return Verdict(Kind.INCONCLUSIVE, reasons=(f"{the}{who} diverged on every seed",))
        return Verdict(Kind.MISSING)
    own = [*collapsed_seeds(row, ""), *diverged_seeds(row, "")]
    base_collapsed = collapsed_seeds(base, f"{who}: ")
    base_diverged = diverged_seeds(base, f"{who}: ")
    # A reference that collapsed while this cell learned is a finding (the trick rescued
    # training: deep supervision on a plain net), not a failure: its paired values are real.
    if own or base_diverged:
        return Verdict(Kind.INCONCLUSIVE, reasons=(*own, *base_collapsed, *base_diverged))
    beside = tuple(base_collapsed)
    if k == 1:
        return Verdict(Kind.ONE_SEED, beside=beside)
    unconverged = _unsettled(row, base, who)
    decision = comparison.sequential.get(row.cell)
    if decision is not None:
        kind, n = _SEQUENTIAL[decision.status], decision.n
    elif row.paired.p_holm < alpha:
        improved = row.paired.diff > 0 if goal == "maximize" else row.paired.diff < 0
        kind, n = (Kind.BETTER if improved else Kind.WORSE), k
    else:
        kind, n = Kind.NO_DIFFERENCE, k
    if kind in (Kind.BETTER, Kind.WORSE):
        return Verdict(kind, n, unconverged=unconverged, beside=beside)
    if unconverged:
        return Verdict(Kind.INCONCLUSIVE, unconverged=unconverged, beside=beside)
    if kind is Kind.NO_DIFFERENCE:
        units, confidence = Units.of(metric), 1.0 - alpha
        return Verdict(
            kind,
            n,
            detectable=_detectable(row.paired, units, confidence),
            beside=beside,
            rules_out=_rules_out(row.paired, goal, units, confidence),
        )
    return Verdict(kind, n, beside=beside)


def _unsettled(row: CellFacts, base: CellFacts | None, who: str) -> tuple[str, ...]:
    """Why a comparison had not settled (() where it had): its difference curve decides
    where it was judged, naming the sides whose own curves still rose, or the difference
    itself where neither did; else each side's own curve."""
    sides = tuple(
        f"{name}not converged"
        for name, r in (("", row), (f"{who} ", base))
        if r is not None and r.checks.converged is False
    )
    settled = row.checks.diff_converged
    if settled is None:
        return sides
    if settled:
        return ()
    the = "the " if who == "baseline" else ""
    return sides or (f"difference from {the}{who} still moving",)


def _rules_out(
    paired: Paired, goal: Literal["maximize", "minimize"], units: Units, confidence: float
) -> str:
    """What the paired interval excludes, in display units with sign: gains beyond its bound
    on the goal's side (above it when maximizing, below it when minimizing) and losses beyond
    the other; plain differences outside it where it does not hold zero. "" without one."""
    low, high = paired.diff_ci_low, paired.diff_ci_high
    if math.isnan(low) or math.isnan(high):
        return ""

    def bound(x: float, unit: bool = False) -> str:
        return units.amount(x, signed=True, unit=unit)

    if not low <= 0 <= high:
        said = f"differences below {bound(low)} and above {bound(high, unit=True)}"
    elif goal == "maximize":
        said = f"gains above {bound(high)} and losses below {bound(low, unit=True)}"
    else:
        said = f"gains below {bound(low)} and losses above {bound(high, unit=True)}"
    return f"{said} ({confidence * 100:g} % paired t-interval)"


def _detectable(paired: Paired, units: Units, confidence: float) -> str:
    """The MDE with its power, and its interval from the seed spread where it has one; ""
    without an MDE."""
    if math.isnan(paired.mde):
        return ""
    said = f"{units.amount(paired.mde)} with {POWER * 100:g} % power"
    if paired.mde > 0 and not math.isnan(paired.mde_low):
        low, high = (units.amount(x, unit=False) for x in (paired.mde_low, paired.mde_high))
        said += (
            f" ({confidence * 100:g} % interval of that {low}–{high}, "
            f"from {paired.n_pairs} seeds' spread)"
        )
    return said


def collapsed_seeds(row: CellFacts | None, who: str) -> list[str]:
    """The row's seeds whose model predicts one class, in words, `who` first ("baseline: ";
    [] when none). Claims name their cells with these too."""
    if row is None or not row.checks.collapsed:
        return []
    return [f"{who}{row.checks.collapsed} of {row.level.n} seeds predict one class"]


def diverged_seeds(row: CellFacts | None, who: str) -> list[str]:
    """The row's diverged seeds, in words ([] when none)."""
    if row is None or not row.diverged:
        return []
    return [f"{who}{row.diverged} of {row.level.n + row.diverged} seeds diverged"]
