"""The declared claims, tested as stated: each on the seeds both of its cells completed, by the
paired t-test of its kind, Holm-corrected over the declared family; claims.csv and the report's
first section.

With d the per-seed paired differences a − b, turned so that positive favours `a` (negated for
a metric to minimize), m the claim's margin, and the paired t statistic of d's mean:

- `superior` (a beats b by more than m, m = 0 unless given): H0 δ ≤ m, one-sided;
- `noninferior` (a at most m worse than b): H0 δ ≤ −m, one-sided;
- `equivalent` (|a − b| < m): two one-sided tests, H0 δ ≤ −m and H0 δ ≥ m; p is the larger
  of the two (Schuirmann's TOST);
- `different`: H0 δ = 0, two-sided.

The interval matches the test: the (1 − 2α) paired t-interval for the one-sided tests and TOST
(its bound is the one-sided test's 1 − α bound, so "supported" before correction is "the
interval clears the margin"), the (1 − α) interval for `different`. Intervals are not adjusted
for multiplicity; the verdict reads the Holm-adjusted p. With adaptive seeds the design's
sequential test (`Comparison.claims`) decides instead: a fixed-n p-value is not valid after
optional stopping, so p and p_adj are left empty and the interval is the repeated one.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from scipy import special

from ablate.design import Claim, Comparison
from ablate.formats import Units, p_value
from ablate.report._health import differences_settled
from ablate.report._paired import holm, identical, level_stats, paired_differences
from ablate.report._seeds import empty_series, seed_values
from ablate.report._summary import Summary
from ablate.report._text import md_text
from ablate.report._verdict import collapsed_seeds, diverged_seeds
from ablate.spec import AdaptiveSeeds

if TYPE_CHECKING:
    from ablate.design._sequential import Decision

CLAIM_COLUMNS = (
    "claim",
    "a",
    "b",
    "test",
    "margin",
    "n",
    "diff",
    "ci_low",
    "ci_high",
    "p",
    "p_adj",
    "verdict",
)


class Finding(enum.Enum):
    """What a claim's test found; the value is the verdict's first words."""

    SUPPORTED = "supported"
    NOT_SUPPORTED = "not supported"
    INCONCLUSIVE = "inconclusive"


SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = Finding
# what the sequential test of an adaptive study decided, as a claim's verdict
# (the largest sample reached without crossing the efficacy bound is not supported: the
# last look is the test's final analysis)
_SEQUENTIAL = {"supported": SUPPORTED, "not supported": NOT_SUPPORTED, "max": NOT_SUPPORTED}


@dataclass(frozen=True)
class ClaimResult:
    """A claim's test: the pairs it used, the mean difference a − b with its interval (stored
    units; `confidence` names the interval), the p-value before and after Holm, and the
    verdict with its reasons (why inconclusive) and what is said beside it."""

    claim: Claim
    n: int = 0
    diff: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    confidence: float = math.nan
    p: float = math.nan
    p_adj: float = math.nan
    verdict: Finding = Finding.INCONCLUSIVE
    reasons: tuple[str, ...] = ()
    beside: tuple[str, ...] = ()
    status: str = ""  # adaptive seeds: the sequential test's decision (`Decision.status`)
    sequential: str = ""  # and where it stopped, and why

    @property
    def text(self) -> str:
        """The verdict in words, as claims.csv writes it."""
        head = self.verdict.value
        if self.verdict is INCONCLUSIVE:
            head += ": " + "; ".join(self.reasons)
        return f"{head} ({'; '.join(self.beside)})" if self.beside else head


def claim_p(d: np.ndarray, test: str, margin: float) -> float:
    """The p-value of a claim's test from the favourable-direction differences d (at least two)
    and its margin (stored units). Differences that are all equal are the limit of ever
    smaller spread: p is 0 where that shift lies strictly inside the claim, else 1."""
    n = len(d)
    mean = float(np.mean(d))
    if identical(d):
        inside = {
            "superior": mean > margin,
            "noninferior": mean > -margin,
            "equivalent": abs(mean) < margin,
            "different": mean != 0,
        }[test]
        return 0.0 if inside else 1.0
    se, df = float(np.std(d, ddof=1)) / math.sqrt(n), n - 1
    if test == "superior":
        return float(special.stdtr(df, -(mean - margin) / se))
    if test == "noninferior":
        return float(special.stdtr(df, -(mean + margin) / se))
    if test == "equivalent":
        below = special.stdtr(df, -(mean + margin) / se)  # H0: δ ≤ −m
        above = special.stdtr(df, (mean - margin) / se)  # H0: δ ≥ +m
        return float(max(below, above))
    return float(2.0 * special.stdtr(df, -abs(mean) / se))


def interval_confidence(test: str, alpha: float) -> float:
    """The confidence of the interval that matches a claim's test."""
    return 1.0 - alpha if test == "different" else 1.0 - 2.0 * alpha


def tested_claims(
    claims: Sequence[Claim],
    trials: pd.DataFrame,
    summary: Summary,
    comparison: Comparison,
    *,
    metric: str,
    goal: Literal["maximize", "minimize"],
    history: pd.DataFrame | None = None,
    alpha: float = 0.05,
) -> list[ClaimResult]:
    """Every declared claim tested on the COMPLETE seeds both its cells have, Holm-corrected
    over the claims; the health of either cell can make a claim inconclusive (`_verdict`),
    and so can its difference curve a − b (from `history`, the per-evaluation table) still
    moving at the end of training."""
    values = seed_values(trials, metric)
    sign = 1.0 if goal == "maximize" else -1.0
    tested: list[ClaimResult] = []
    for claim in claims:
        a, b = values.get(claim.a, empty_series()), values.get(claim.b, empty_series())
        d = paired_differences(a, b)
        result = ClaimResult(claim, n=len(d), diff=float(np.mean(d)) if len(d) else math.nan)
        decision = comparison.claims.get(claim.index)
        confidence = interval_confidence(claim.test, alpha)
        if decision is not None:
            result = _sequential(result, decision)
        elif len(d) >= 2:
            level = level_stats(d, confidence)  # a − b as measured, not turned by the goal
            p = claim_p(sign * d, claim.test, claim.stored_margin)
            result = replace(
                result, ci_low=level.ci_low, ci_high=level.ci_high, confidence=confidence, p=p
            )
        tested.append(result)
    adjusted = holm([r.p for r in tested])
    settled = differences_settled(
        trials,
        history if history is not None else pd.DataFrame(),
        metric=metric,
        goal=goal,
        pairs=[(c.a, c.b) for c in claims],
    )
    return [
        _verdict(
            replace(r, p_adj=float(q)),
            summary,
            _unsettled(r.claim, summary, settled[r.claim.a, r.claim.b]),
            alpha,
        )
        for r, q in zip(tested, adjusted, strict=True)
    ]


def _unsettled(claim: Claim, summary: Summary, settled: bool | None) -> list[str]:
    """Why a claim's difference may still change with longer training: its difference curve
    a − b (`settled`: mean over the shared seeds, `differences_settled`) moved over the last
    quarter of training; or, where that curve cannot be formed, a cell's own curve still
    rose. Two curves rising together leave their difference settled, as for the cells."""
    if settled is not None:
        return [] if settled else [f"difference {claim.a} − {claim.b} still moving"]
    rows = ((claim.a, summary.get(claim.a)), (claim.b, summary.get(claim.b)))
    return [
        f"{n} not converged" for n, row in rows if row is not None and row.checks.converged is False
    ]


def _sequential(result: ClaimResult, decision: Decision) -> ClaimResult:
    """An adaptive study's claim: the sequential test's decision, and its mean and repeated
    interval at the look where it stopped (on that look's seeds); no fixed-n p, which is not
    valid after optional stopping."""
    said = "; ".join(x for x in (decision.reason, decision.caveat) if x)
    return replace(
        result,
        n=decision.n,
        diff=decision.diff,
        ci_low=decision.ci_low,
        ci_high=decision.ci_high,
        confidence=decision.ci_level,
        status=decision.status,
        sequential=said,
    )


def _verdict(
    result: ClaimResult, summary: Summary, unconverged: Sequence[str], alpha: float
) -> ClaimResult:
    """Supported, not supported, or inconclusive with its reasons: a claim between cells that
    failed (collapsed to one class, diverged) or whose test could not run says nothing; one
    whose difference was still moving (`unconverged`) holds at this training length."""
    claim = result.claim
    rows = {side: summary.get(name) for side, name in (("a", claim.a), ("b", claim.b))}
    a, b = f"{claim.a}: ", f"{claim.b}: "
    reasons = [*collapsed_seeds(rows["a"], a), *diverged_seeds(rows["a"], a)]
    beside: list[str] = []
    b_collapsed = collapsed_seeds(rows["b"], b)
    # b collapsed while a learned: a rescue, a finding for superior/different claims; a claim
    # that a is as good as (or no worse than) a model that learned nothing says nothing
    if claim.test in ("superior", "different"):
        beside += b_collapsed
    else:
        reasons += b_collapsed
    reasons += diverged_seeds(rows["b"], b)
    if result.n < 2:
        reasons.append(
            f"{result.n} seed(s) completed by both cells; a paired test needs 2"
            if result.n
            else "no seed completed by both cells"
        )
    if reasons:  # what else failed is a reason too, not a remark beside a finding
        return replace(result, verdict=INCONCLUSIVE, reasons=(*reasons, *beside))
    if result.status:
        if result.status not in _SEQUENTIAL:  # "undecided": its next look's seeds are queued
            why = "undecided: more seeds are queued"
            return replace(result, verdict=INCONCLUSIVE, reasons=(why,), beside=tuple(beside))
        supported = _SEQUENTIAL[result.status] is SUPPORTED
    else:
        supported = result.p_adj < alpha
    if supported:
        if unconverged:
            beside = [f"at this training length: {', '.join(unconverged)}", *beside]
        return replace(result, verdict=SUPPORTED, beside=tuple(beside))
    if unconverged:
        reasons = [*unconverged, "longer training may change it"]
        return replace(result, verdict=INCONCLUSIVE, reasons=tuple(reasons), beside=tuple(beside))
    return replace(result, verdict=NOT_SUPPORTED, beside=tuple(beside))


def claims_frame(results: Sequence[ClaimResult], metric: str) -> pd.DataFrame:
    """claims.csv: one row per claim, differences and margins in the report's units."""
    scale = Units.of(metric).scale
    return pd.DataFrame(
        [
            {
                "claim": r.claim.index,
                "a": r.claim.a,
                "b": r.claim.b,
                "test": r.claim.test,
                "margin": r.claim.margin if r.claim.test != "different" else math.nan,
                "n": r.n,
                "diff": r.diff * scale,
                "ci_low": r.ci_low * scale,
                "ci_high": r.ci_high * scale,
                "p": r.p,
                "p_adj": r.p_adj,
                "verdict": r.text,
            }
            for r in results
        ],
        columns=list(CLAIM_COLUMNS),
    )


def claims_section(
    results: Sequence[ClaimResult], metric: str, alpha: float, plan: str
) -> list[str]:
    """report.md's first section: the claims and their verdicts, or that none were declared
    (and so every comparison in the report is exploratory); and how the seed count was fixed."""
    if not results:
        return [
            "## Claims",
            "",
            "No claims were declared in the study file (`claims:`), so every comparison below "
            "is exploratory: chosen after the design, not stated before the run, and read "
            "best as a pointer to the next study's claims.",
            "",
            f"- seeds: {plan}",
            "",
        ]
    units = Units.of(metric)
    if any(r.status for r in results):
        levels = sorted(
            {f"{100 * r.confidence:g} %" for r in results if not math.isnan(r.confidence)}
        )
        how = (
            "decided by the sequential test of adaptive seeds (each claim at α/m over its "
            "looks; a fixed-n p-value is not valid after optional stopping, so none is shown)"
        )
        interval = (
            f"the interval is the repeated confidence interval at the look where the claim "
            f"stopped (simultaneous coverage {', '.join(levels) or 'n/a'} over the looks)"
        )
    else:
        how = f"Holm-corrected over the {len(results)} claim(s) at α = {alpha:g}"
        interval = (
            f"the interval matches the test (one-sided tests and equivalence: the "
            f"{100 * (1 - 2 * alpha):g} % paired t-interval, whose bound is the one-sided "
            f"{100 * (1 - alpha):g} % bound; `different`: the {100 * (1 - alpha):g} % "
            "interval), not adjusted for multiplicity"
        )
    lines = [
        "## Claims",
        "",
        f"Declared in the study file before it ran; each tested on the seeds both of its cells "
        f"completed, {how}. Δ is a − b in {units.name}; {interval}.",
        "",
        "| # | claim | test | n | Δ (a − b) [interval] | p | p (Holm) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.claim.index} | {md_text(r.claim.sentence)} | {r.claim.test} | {r.n} | "
            f"{units.interval(r.diff, r.ci_low, r.ci_high)} | {p_value(r.p)} | "
            f"{p_value(r.p_adj)} | **{md_text(r.text)}** |"
        )
    lines += [
        "",
        "Comparisons in the rest of this report that are not among these claims are "
        "exploratory: they were not declared, and their p-values are not corrected for the "
        "claims.",
        "",
        f"- seeds: {plan}",
        "",
    ]
    return lines


def seed_plan(seeds: list[int] | AdaptiveSeeds, planned: bool | None, sequential: str) -> str:
    """How the study's seed count was fixed, in words: the adaptive rule with where its tests
    stopped (`sequential`), or the fixed count and whether the plan stored with the study was
    recorded before any result (`planned`; None: no plan stored)."""
    if isinstance(seeds, AdaptiveSeeds):
        head = (
            f"adaptive, declared up front: {seeds.start} seeds first, then +{seeds.step} a "
            f"round for what is undecided, up to {seeds.max}"
        )
        return f"{head}; {sequential}" if sequential else head
    if planned is None:
        return f"{len(seeds)} per cell; no plan was recorded with the study"
    if planned:
        return f"{len(seeds)} per cell, fixed before any trial had a result"
    return (
        f"{len(seeds)} per cell; the plan was first recorded after results were in (a study "
        "begun by an earlier release), so it cannot show whether seeds were added after a "
        "look at the results"
    )
