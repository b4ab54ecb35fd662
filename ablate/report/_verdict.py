"""The verdict on a summary row (better, worse, no detectable difference, ...) and the plain
sentence a report prints for it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ablate.names import metric_scale


def verdict_of(row: Mapping[str, Any], *, baseline: str, goal: str, alpha: float) -> str:
    if row["cell"] == baseline:
        return "baseline"
    k = int(row["n_pairs"])
    if k == 0:
        return "missing"
    if k == 1:
        return "n/a (one seed)"
    if math.isnan(row["p_value"]) and row["diff"] != 0:
        return "n/a (identical differences)"
    if row["p_holm"] < alpha:
        improved = row["diff"] > 0 if goal == "maximize" else row["diff"] < 0
        return "better" if improved else "worse"
    return f"no detectable difference at n = {k}"


def verdict_sentence(row: Mapping[str, Any], metric: str, *, confidence: float = 0.95) -> str:
    """One plain sentence for a summary row, e.g. "x: +1.42 mIoU-points vs baseline (...) — better."

    Fraction metrics (IoU, accuracy) are shown ×100 as points, others in their own units.
    """
    scale = metric_scale(metric)
    name = metric.split("/")[-1]
    unit = f"{name}-points" if scale == 100.0 else name
    cell, verdict = row["cell"], row["verdict"]
    if verdict == "baseline":
        percent = "%" if scale == 100.0 else ""
        return f"{cell}: baseline, {name} = {_fmt(row['mean'] * scale)}{percent} (n = {row['n']})."
    if verdict == "missing":
        return f"{cell}: no completed seed paired with the baseline — missing."
    diff = f"{_fmt(row['diff'] * scale, signed=True)} {unit} vs baseline"
    if row["n_pairs"] < 2:
        return f"{cell}: {diff} (one paired seed, no test possible) — {verdict}."
    low = _fmt(row["diff_ci_low"] * scale, signed=True)
    high = _fmt(row["diff_ci_high"] * scale, signed=True)
    level = f"{confidence * 100:g}% CI {low} to {high}"
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
