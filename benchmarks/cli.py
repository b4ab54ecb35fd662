"""What `ablate` costs to start: its quick commands against a bare interpreter importing the
libraries a CLI of this kind cannot do without.

    python benchmarks/cli.py               # 7 runs of each command
    python benchmarks/cli.py --repeat 21   # steadier medians

`ablate --help` and `ablate status` answer in a moment and train nothing, so they must not
import torch or MLflow (seconds of imports, most of a quick command's wait); the goal is
`--help` in at most 3x the time of the baseline, a fresh `python -c "import yaml, pydantic,
typer, rich, rich.console, rich.table"`.

`ablate validate` makes the pre-flight check `run` makes before it trains (each model built
and run on one batch, each disk dataset's layout), so that a study it calls ok is not refused
later; that needs torch. Its goal is no MLflow and at most 1.5x a fresh interpreter importing
the same libraries and torch: the import is the price, the checks themselves must stay small.

Each row is a fresh interpreter run to its exit (`python -m ablate ...`, as the `ablate` entry
point does: import ablate.cli, call main), timed with time.perf_counter around the subprocess,
--repeat times after one untimed run that also warms the bytecode cache. "median s" and "min s"
are the wall times of those runs; "ratio" is the median over the baseline's median, measured in
the same run of this script. The torch and mlflow columns say whether the command imported them:
the untimed run executes the same code in a wrapper that writes, as the interpreter exits, which
of them are in sys.modules.

`validate` checks studies/aux_weight.yaml. `status` reads a results folder this script prepares
in a temporary directory without training: the Optuna study of that same file, created as
`ablate run` creates it, with no trial run yet (see prepare_results).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDY_FILE = ROOT / "studies" / "aux_weight.yaml"
BASELINE = "import yaml, pydantic, typer, rich, rich.console, rich.table"
BASELINE_TORCH = BASELINE + ", torch"  # what any command that builds a model imports
CLI = "from ablate.cli import main; main()"  # what `python -m ablate` and `ablate` run
HEAVY = ("torch", "mlflow")  # what a quick command must not import
GOAL = 3.0  # --help's median over the baseline's, at most
GOAL_VALIDATE = 1.5  # validate's median over the torch baseline's, at most
MARKER = "__modules__"
# runs the code in argv[1] with argv[2:] as its arguments; on the way out, even through
# SystemExit, writes to stderr e.g. "__modules__ torch=1 mlflow=0"
PROBE = f"""
import sys
code = sys.argv.pop(1)
sys.argv[0] = "ablate"
try:
    exec(code)
finally:
    loaded = " ".join(f"{{m}}={{int(m in sys.modules)}}" for m in {HEAVY!r})
    print("{MARKER}", loaded, file=sys.stderr, flush=True)
"""


@dataclass(frozen=True)
class Command:
    label: str
    code: str  # what the interpreter runs: BASELINE or CLI
    args: tuple[str, ...] = ()  # the CLI's arguments

    def argv(self) -> list[str]:
        if self.code in (BASELINE, BASELINE_TORCH):
            return [sys.executable, "-c", self.code]
        return [sys.executable, "-m", "ablate", *self.args]


@dataclass(frozen=True)
class Row:
    command: Command
    median_s: float
    min_s: float
    loaded: dict[str, bool]  # HEAVY module -> imported


# ---------------------------------------------------------------- a study without training


def prepare_results(results: Path) -> str:
    """A results folder holding the Optuna study of STUDY_FILE as `ablate run` creates it before
    any trial trains; the study's name, for `ablate status NAME --results RESULTS`. The one place
    that knows the study engine's API: adapt it when that API changes."""
    from ablate.study import create_or_load, default_storage_url
    from ablate.study_file import load_study

    study = load_study(STUDY_FILE, ())
    (results / study.spec.name).mkdir(parents=True)
    create_or_load(study, default_storage_url(results, study.spec.name))
    return study.spec.name


# ---------------------------------------------------------------- measuring


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """One fresh interpreter, from the repository root; stops the benchmark if it fails."""
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:])} exited with {done.returncode}:\n{done.stderr}")
    return done


def heavy_imports(command: Command) -> dict[str, bool]:
    """Which HEAVY modules the command imports, from one run under PROBE."""
    done = run([sys.executable, "-c", PROBE, command.code, *command.args])
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith(MARKER))
    pairs = (item.split("=") for item in line.split()[1:])
    return {name: flag == "1" for name, flag in pairs}


def wall_s(argv: list[str]) -> float:
    t0 = time.perf_counter()
    run(argv)
    return time.perf_counter() - t0


def measure(command: Command, repeat: int) -> Row:
    loaded = heavy_imports(command)  # also the untimed warm-up run
    times = [wall_s(command.argv()) for _ in range(repeat)]
    return Row(command, statistics.median(times), min(times), loaded)


# ---------------------------------------------------------------- main


def commands(results: Path, name: str) -> list[Command]:
    study_file = str(STUDY_FILE.relative_to(ROOT))
    return [
        Command("python -c 'import yaml, pydantic, typer, rich'", BASELINE),
        Command("python -c 'import yaml, pydantic, typer, rich, torch'", BASELINE_TORCH),
        Command("ablate --help", CLI, ("--help",)),
        Command(f"ablate validate {study_file}", CLI, ("validate", study_file)),
        Command(f"ablate status {name}", CLI, ("status", name, "--results", str(results))),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each command")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        name = prepare_results(results)
        print(
            f"start-up of ablate's quick commands: wall time of a fresh interpreter, "
            f"{args.repeat} runs each after one untimed run ({os.cpu_count()} cores)"
        )
        width = 54
        print(
            f"{'command':{width}} {'median s':>9} {'min s':>7} {'ratio':>6} "
            f"{'torch':>6} {'mlflow':>7}"
        )
        rows: list[Row] = []
        for command in commands(results, name):
            row = measure(command, args.repeat)
            rows.append(row)
            ratio = row.median_s / rows[0].median_s
            torch, mlflow = ("yes" if row.loaded[m] else "no" for m in HEAVY)
            print(
                f"{command.label:{width}} {row.median_s:9.3f} {row.min_s:7.3f} {ratio:6.2f} "
                f"{torch:>6} {mlflow:>7}",
                flush=True,
            )

    def by_args(first: str) -> Row:
        return next(r for r in rows if r.command.args[:1] == (first,))

    def goal(what: str, ratio: float, most: float) -> None:
        print(f"goal: {what} ≤ {most:g}×: {ratio:.1f}×, {'met' if ratio <= most else 'not met'}")

    goal("--help over the bare import", by_args("--help").median_s / rows[0].median_s, GOAL)
    goal(
        "validate over the bare import with torch",
        by_args("validate").median_s / rows[1].median_s,
        GOAL_VALIDATE,
    )
    quick = [by_args("--help"), by_args("status")]
    heavy = [r.command.label for r in quick if any(r.loaded.values())]
    heavy += [r.command.label for r in [by_args("validate")] if r.loaded["mlflow"]]
    print(
        f"goal: no {' or '.join(HEAVY)} in --help or status, no mlflow in validate: "
        + (f"not met ({', '.join(heavy)})" if heavy else "met")
    )


if __name__ == "__main__":
    main()
