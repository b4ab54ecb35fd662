"""Error rates and power of adaptive seeds' sequential tests, on simulated studies: the table
README.md's "Adaptive seeds" section shows.

    python benchmarks/sequential_error_rates.py                  # 20,000 studies a case
    python benchmarks/sequential_error_rates.py --studies 4000   # quicker, noisier

Each simulated study's paired differences are N(δ, 1) (δ in sd units), its seeds arriving
look by look (looks at 3, 5, 7, 9, 10 seeds: `start: 3, max: 10, step: 2`, the README's
example), at α = 0.05 for one test. Columns: the fixed-n paired t-test at 10 seeds; the
union-bound rule adaptive seeds used first (each look at its increment of α(t), no
futility); the rule used now (`ablate.design._sequential`: Lan–DeMets O'Brien–Fleming-type
boundaries, their levels calibrated for t statistics; futility for claims, obeyed unless the
row says it is ignored). Each cell: the rate ± its Monte Carlo standard error
sqrt(p(1 − p)/N), and the mean seeds a study used.

The second table is the rule's null rates with every futility stop ignored (the worst case
of a non-binding bound; obeyed, the futility stops lower them), over plans from tiny to
larger: the few-seed t statistics the calibration is for (z boundaries at their nominal
level ran up to about 6 % here). The simulation is tests/design/sequential_sim.py, which
tests/design/test_error_rates.py asserts on; its studies are drawn from `--seed`,
independently of those the boundaries are calibrated on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.design.sequential_sim import (
    ALPHA,
    CELLS,
    CLAIMS,
    IGNORED,
    PLAN,
    SMALL,
    Case,
    Rates,
    simulate,
)

RULES = ("fixed", "union", "calibrated")  # the columns of the first table


def _cell(r: Rates, rule: str) -> str:
    seeds = "" if rule == "fixed" else f" ({r.seeds:.1f})"
    return f"{100 * r.rate:.1f} % ± {100 * r.mcse:.1f}{seeds}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=20_000, help="simulated studies a case")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    looks = ", ".join(str(n) for n in PLAN.looks)
    print(
        f"Simulated studies ({args.studies:,} a case; paired differences N(δ, 1); looks at "
        f"{looks} seeds; α = {ALPHA:g} one test). Rate ± MCSE (mean seeds used)."
    )
    print()
    print(f"| case | fixed n = {PLAN.max} | union bound (before) | calibrated boundaries (now) |")
    print("| --- | --- | --- | --- |")
    groups: tuple[tuple[str, tuple[Case, ...]], ...] = (
        ("claim", CLAIMS),
        ("claim", IGNORED),
        ("cells", CELLS),
    )
    for kind, cases in groups:
        for i, case in enumerate(cases):
            row = [
                _cell(simulate(rule, case, PLAN, ALPHA, args.studies, args.seed + i)[0], rule)
                for rule in RULES
            ]
            what = "error" if case.null else "power"
            print(f"| {kind} {case.label} ({what}) | " + " | ".join(row) + " |")
    print()
    print(
        "Calibrated boundaries, every futility stop ignored: "
        f"false-positive rate at α = {ALPHA:g} (± MCSE)."
    )
    print()
    nulls = IGNORED  # (cell comparisons without effect run the `different` rule)
    print("| plan (start, max, step) | " + " | ".join(c.test for c in nulls) + " |")
    print("| --- |" + " --- |" * len(nulls))
    for plan in SMALL:
        row = [simulate("calibrated", c, plan, ALPHA, args.studies, args.seed)[0] for c in nulls]
        shown = [f"{100 * r.rate:.1f} % ± {100 * r.mcse:.1f}" for r in row]
        print(f"| {plan.start}, {plan.max}, {plan.step} | " + " | ".join(shown) + " |")


if __name__ == "__main__":
    main()
