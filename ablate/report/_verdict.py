"""The verdict on a summary row (better, worse, no detectable difference, ...) and the plain
sentence a report prints for it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ablate.names import metric_info


def verdict_of(
    row: Mapping[str, Any],
    base: Mapping[str, Any] | None,
    *,
    baseline: str,
    goal: str,
    alpha: float,
    metric: str,
    reference: str | None = None,
) -> str:
    """The verdict on a summary row, given the row of the cell it is compared with (the
    baseline's unless `reference` names another; None when it has none).

    A comparison that cannot be trusted says so before any test is read: models of the cell
    that collapsed to one class, or diverged seeds on either side, make it "inconclusive: <why>"
    (a difference between failures says nothing about the trick). A baseline that collapsed
    while the cell learned keeps the test's verdict, with the collapse named beside it. A cell
    whose curves still rose at the end is "inconclusive" when no difference is found (one may
    appear with longer training) and keeps a found difference, marked as measured at this
    training length. Only a healthy comparison reads "no detectable
    difference", with the smallest difference it could have detected.
    """
    if row["cell"] == baseline:
        return "baseline"
    who = "baseline" if reference in (None, baseline) else str(reference)
    k = int(row["n_pairs"])
    if k == 0:
        if int(row.get("diverged") or 0) and not int(row["n"]):
            return f"diverged ({int(row['diverged'])} of {int(row['diverged'])} seeds)"
        if base is not None and int(base.get("diverged") or 0) and not int(base["n"]):
            return f"inconclusive: {'the ' * (who == 'baseline')}{who} diverged on every seed"
        return "missing"
    own = [*_collapsed(row, ""), *_diverged(row, "")]
    base_collapsed = _collapsed(base, f"{who}: ")
    base_diverged = _diverged(base, f"{who}: ")
    # A baseline that collapsed while this cell learned is a finding (the trick rescued
    # training: deep supervision on a plain net), not a failure: its paired values are real.
    if own or base_diverged:
        return "inconclusive: " + "; ".join(own + base_collapsed + base_diverged)
    verdict = _tested(row, base, k, goal=goal, alpha=alpha, metric=metric, who=who)
    return f"{verdict} ({base_collapsed[0]})" if base_collapsed else verdict


def _tested(
    row: Mapping[str, Any],
    base: Mapping[str, Any] | None,
    k: int,
    *,
    goal: str,
    alpha: float,
    metric: str,
    who: str = "baseline",
) -> str:
    """The verdict of a comparison whose models learned: the test, the convergence caveat and
    what it could detect."""
    if k == 1:
        return "n/a (one seed)"
    unconverged = [
        f"{name}not converged"
        for name, r in (("", row), (f"{who} ", base))
        if r is not None and r.get("converged") is False
    ]
    if row["p_holm"] < alpha:
        improved = row["diff"] > 0 if goal == "maximize" else row["diff"] < 0
        verdict = "better" if improved else "worse"
        if unconverged:
            return f"{verdict} at this training length ({', '.join(unconverged)})"
        return verdict
    if unconverged:
        return "inconclusive: " + ", ".join(unconverged) + "; longer training may show a difference"
    detectable = row.get("mde", math.nan)
    if detectable is None or math.isnan(detectable):
        return f"no detectable difference at n = {k}"
    return f"no detectable difference at n = {k} (could detect ≥ {amount(detectable, metric)})"


def _collapsed(row: Mapping[str, Any] | None, who: str) -> list[str]:
    """The row's seeds whose model predicts one class, in words ([] when none)."""
    if row is None or not int(row.get("collapsed") or 0):
        return []
    return [f"{who}{int(row['collapsed'])} of {int(row['n'])} seeds predict one class"]


def _diverged(row: Mapping[str, Any] | None, who: str) -> list[str]:
    """The row's diverged seeds, in words ([] when none)."""
    if row is None or not int(row.get("diverged") or 0):
        return []
    diverged = int(row["diverged"])
    return [f"{who}{diverged} of {int(row['n']) + diverged} seeds diverged"]


def amount(
    value: float, metric: str, *, signed: bool = False, unit: bool = True, points: str = " points"
) -> str:
    """A value in the metric's display unit: "1.94 points" for IoU, "0.031 nats" for a loss;
    every sentence of a report writes its numbers through this one function."""
    info = metric_info(metric)
    text = _fmt(value * info.scale, signed=signed)
    if not unit or text == "n/a":
        return text
    return text + (points if info.scale != 1.0 else f" {info.unit}".rstrip())


def verdict_sentence(row: Mapping[str, Any], metric: str, *, confidence: float = 0.95) -> str:
    """One plain sentence for a summary row, e.g. "x: mIoU +1.42 points vs baseline (paired 95%
    t-interval +0.31 to +2.53 points, p_holm = 0.004, n = 3) — better."

    Fraction metrics (IoU, accuracy) are shown ×100 as points, others in their own units.
    """
    name = metric.split("/")[-1]
    cell, verdict = row["cell"], row["verdict"]
    if verdict == "baseline":
        mean = amount(row["mean"], metric, points="%")
        return f"{cell}: baseline, {name} = {mean} (n = {row['n']})."
    if int(row["n_pairs"]) == 0:
        against = row.get("reference") or "the baseline"
        return f"{cell}: no completed seed paired with {against} — {verdict}."
    against = row.get("reference") or "baseline"
    diff = f"{name} {amount(row['diff'], metric, signed=True)} vs {against}"
    if row["n_pairs"] < 2:
        return f"{cell}: {diff} (one paired seed, no test possible) — {verdict}."
    low = amount(row["diff_ci_low"], metric, signed=True, unit=False)
    high = amount(row["diff_ci_high"], metric, signed=True)
    level = f"paired {confidence * 100:g}% t-interval {low} to {high}"
    return f"{cell}: {diff} ({level}, {_fmt_p(row['p_holm'])}, n = {row['n_pairs']}) — {verdict}."


def _fmt(x: float, *, signed: bool = False) -> str:
    if math.isnan(x):
        return "n/a"
    sign = "+" if signed else ""
    return f"{x:{sign}.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:{sign}.3g}"


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "p_holm n/a"
    return "p_holm < 0.001" if p < 0.001 else f"p_holm = {p:.3f}"
