"""How ablate writes a number for a person: a metric's values in the unit it is shown in (IoU
×100 in points, a loss in nats), p-values, other statistics, and durations. The report's
Markdown, HTML and LaTeX, the console and the CLI write their numbers through here, so one
value reads the same wherever it is printed.

It imports nothing heavy (the metric list only), so any layer may use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ablate.names import metric_info

MISSING = "–"  # a value that does not exist: no completed seed, the baseline's own difference


@dataclass(frozen=True)
class Units:
    """A metric's display unit: `scale` turns a stored value into a shown one (100 for a
    fraction in [0, 1], shown in points), `unit` names a raw value's unit ("nats"; "" for
    none, "%" for points)."""

    scale: float
    unit: str

    @classmethod
    def of(cls, metric: str) -> Units:
        info = metric_info(metric)
        return cls(info.scale, info.unit)

    @property
    def in_points(self) -> bool:
        return self.scale != 1.0

    @property
    def name(self) -> str:
        """What differences are measured in, for a header: "points", "nats" or "units"."""
        return "points" if self.in_points else (self.unit or "units")

    @property
    def digits(self) -> int:
        """A table's decimals: 2 for points, 3 for a raw value (a loss of 0.531 nats)."""
        return 2 if self.in_points else 3

    def fixed(
        self, value: float, digits: int = 2, *, signed: bool = False, missing: str = MISSING
    ) -> str:
        """`value` shown (scaled) with `digits` decimals, "+" first if `signed`; `missing`
        where it does not exist (NaN)."""
        if math.isnan(value):
            return missing
        return f"{value * self.scale:{'+' if signed else ''}.{digits}f}"

    def amount(
        self, value: float, *, signed: bool = False, unit: bool = True, points: str = " points"
    ) -> str:
        """`value` as a sentence says it: "1.94 points" for IoU, "0.031 nats" for a loss, two
        decimals (three significant digits below 0.01); "n/a" where it does not exist."""
        shown = value * self.scale
        if math.isnan(shown):
            return "n/a"
        sign = "+" if signed else ""
        text = f"{shown:{sign}.2f}" if abs(shown) >= 0.01 or shown == 0 else f"{shown:{sign}.3g}"
        if not unit:
            return text
        return text + (points if self.in_points else f" {self.unit}".rstrip())

    def interval(self, estimate: float, low: float, high: float) -> str:
        """A signed estimate and its interval, "+1.42 [+0.30, +2.50]" (amounts without the
        unit); the estimate alone without bounds, `MISSING` without an estimate."""
        if math.isnan(estimate):
            return MISSING
        shown = self.amount(estimate, signed=True, unit=False)
        if math.isnan(low):
            return shown
        bounds = (self.amount(x, signed=True, unit=False) for x in (low, high))
        return "{} [{}, {}]".format(shown, *bounds)


def p_value(p: float, *, missing: str = MISSING, tight: bool = False) -> str:
    """A p-value in a table: "0.031", "< 0.001" (`tight`: "<0.001", for a narrow column);
    `missing` where there was no test."""
    if math.isnan(p):
        return missing
    if p < 0.001:
        return "<0.001" if tight else "< 0.001"
    return f"{p:.3f}"


def p_said(p: float, name: str) -> str:
    """A p-value in a sentence: "p_holm = 0.031", "p_holm < 0.001", "p_holm n/a"."""
    if math.isnan(p):
        return f"{name} n/a"
    return f"{name} < 0.001" if p < 0.001 else f"{name} = {p:.3f}"


def significant(value: float, digits: int, *, missing: str = MISSING) -> str:
    """A statistic or a stored value with `digits` significant digits (an F statistic, a
    raw metric in the trials table); `missing` for NaN."""
    return missing if math.isnan(value) else f"{value:.{digits}g}"


def duration(seconds: float) -> str:
    """A duration as a person reads it: 42s, 3m 05s, 2h 04m."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"
