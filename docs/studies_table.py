"""The README's "Shipped studies" table, rebuilt from the studies' own results.

    python docs/studies_table.py                      # print the table for every studies/*.yaml
    python docs/studies_table.py --record results --write   # keep the new runs, rewrite README
    python docs/studies_table.py studies/lovasz.yaml --results /tmp/results

One row per study file: its claim (the description's sentence starting "Claim tested:", else its
first sentence), its design, n (seeds), the wall time from `report.md`, each compared cell's
paired difference from the baseline with its 95% interval and MDE (and the held-out test
difference where `summary.csv` has `test_diff`), and a one-line reading of the verdicts and the
health checks. Every number comes from a run record: `summary.csv` and `report.md` as `ablate run`
wrote them, kept under `docs/results/<name>/` (committed, so the table can be checked and rebuilt
without re-training; `--record results` copies a fresh run's files there first). The table says
what the last recorded run measured and nothing else; a study without a record says "not run".
`--write` replaces only the lines between `START` and `END` in the README, so the prose around
the table stays as its authors wrote it.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.names import metric_info
from ablate.study_file import Study, load_study

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs" / "results"
RECORD_FILES = ("summary.csv", "report.md")  # what a row is built from
# kept with them so anyone can recompute a record: every trial, and the declared claims' tests
RECOMPUTE_FILES = ("trials.csv",)
OPTIONAL_FILES = ("claims.csv",)  # a study that declares claims writes it
START = "<!-- shipped-studies:start -->"
END = "<!-- shipped-studies:end -->"
HEADER = (
    "| study | claim tested | design | n | wall | "
    "result: Δ vs baseline [paired 95% CI], MDE | reading |\n"
    "| --- | --- | --- | ---: | ---: | --- | --- |"
)
NOT_RUN = "not run"
_NO_STOP = ("al", "e.g", "i.e", "cf", "vs", "etc")  # a period after these ends no sentence
_TIME = re.compile(r"^- time: ([0-9.]+) min from the first trial's start", re.MULTILINE)


def shipped_studies(root: Path = ROOT) -> list[Path]:
    """The top-level study files; cityscapes/ and ade20k/ need real data and a GPU."""
    return sorted((root / "studies").glob("*.yaml"))


def first_sentence(text: str) -> str:
    """The text up to the first full stop that ends a sentence: outside parentheses, followed by
    a space and a capital (or the end), and not after an abbreviation such as "et al."."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char != "." or depth > 0:
            continue
        rest = text[i + 1 :]
        word = re.search(r"([\w.]*)$", text[:i])
        if word and word.group(1).lower() in _NO_STOP:
            continue
        if not rest or re.match(r"\s+[A-Z]", rest):
            return text[: i + 1]
    return text


def claim_of(description: str) -> str:
    """The claim a study tests, from its description: the sentence starting "Claim tested:"
    without that label, else the description's first sentence."""
    text = " ".join(description.split())
    label = text.find("Claim tested:")
    if label >= 0:
        text = text[label + len("Claim tested:") :].strip()
    sentence = first_sentence(text)
    return sentence[:1].upper() + sentence[1:]


def design_of(study: Study) -> str:
    """The design in words: cells and seeds, what varies, the baseline and the metric."""
    sweep = study.spec.sweep
    varies = []
    if sweep.grid:
        varies.append("grid on " + ", ".join(f"`{key}`" for key in sweep.grid))
    if sweep.variants:
        varies.append("named variants")
    text = study.describe() + (", " + " + ".join(varies) if varies else "")
    if study.baseline and "baseline" not in text:
        text += f", baseline `{study.baseline}`"
    return f"{text}, judged on `{study.spec.metric.name}`"


def shown(value: float, metric: str, *, signed: bool = True) -> str:
    """A value in the metric's display unit, compactly: one decimal for points (IoU and accuracy
    ×100), three significant digits otherwise; a true minus sign."""
    if not math.isfinite(value):
        return "n/a"
    info = metric_info(metric)
    value *= info.scale
    text = f"{value:{'+' if signed else ''}.1f}" if info.scale != 1.0 else f"{value:+.3g}"
    if not signed:
        text = text.lstrip("+")
    return text.replace("-", "−")


def _unit(metric: str) -> str:
    info = metric_info(metric)
    return " points" if info.scale != 1.0 else (f" {info.unit}" if info.unit else "")


def _compared(summary: pd.DataFrame, baseline: str) -> list[dict[str, Any]]:
    rows = summary.to_dict("records")
    return [r for r in rows if r["cell"] != baseline and r.get("verdict") != "baseline"]


def _number(value: Any) -> float:
    number = pd.to_numeric(value, errors="coerce")
    return float(number) if pd.notna(number) else math.nan


def cell_result(row: dict[str, Any], metric: str) -> str:
    """One compared cell: "ce_lovasz +3.8 [+0.8, +6.9], MDE 5.7, test +3.1"."""
    cell, diff = row["cell"], _number(row.get("diff"))
    if not math.isfinite(diff):
        return f"{cell}: {row.get('verdict') or 'no result'}"
    text = f"{cell} {shown(diff, metric)}"
    low, high = _number(row.get("diff_ci_low")), _number(row.get("diff_ci_high"))
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{shown(low, metric)}, {shown(high, metric)}]"
    mde = _number(row.get("mde"))
    if math.isfinite(mde):
        text += f", MDE {shown(mde, metric, signed=False)}"
    test = _number(row.get("test_diff"))
    if math.isfinite(test):
        text += f", test {shown(test, metric)}"
    return text


def reading(summary: pd.DataFrame, baseline: str, metric: str) -> str:
    """One line from the verdicts and health checks: what was found, what could have been, and
    what makes the comparison doubtful."""
    compared = _compared(summary, baseline)
    if not compared:
        return "nothing compared with a baseline"
    total = len(compared)
    verdicts = [str(r.get("verdict") or "") for r in compared]
    better = sum(v.startswith("better") for v in verdicts)
    worse = sum(v.startswith("worse") for v in verdicts)
    quiet = [r for r, v in zip(compared, verdicts, strict=True) if v.startswith("no detectable")]
    doubtful = [v.removeprefix("inconclusive: ") for v in verdicts if v.startswith("inconclusive")]
    other = total - better - worse - len(quiet) - len(doubtful)
    parts = []
    if better or worse:
        found = [f"{k} {word}" for k, word in ((better, "better"), (worse, "worse")) if k]
        found[0] = found[0].replace(" ", f" of {total} cells ", 1)
        parts.append(f"effect found ({', '.join(found)})")
    if quiet:
        mdes = [_number(r.get("mde")) for r in quiet]
        finite = [m for m in mdes if math.isfinite(m)]
        where = "" if len(quiet) == total else f" in {len(quiet)} of {total} cells"
        could = (
            f", could detect ≥ {shown(max(finite), metric, signed=False)}{_unit(metric)}"
            if finite
            else ""
        )
        parts.append(f"no detectable difference{where}{could}")
    if doubtful:
        reasons = list(dict.fromkeys(p for v in doubtful for p in v.split("; ") if p))
        where = "" if len(doubtful) == total else f" in {len(doubtful)} of {total} cells"
        parts.append(f"inconclusive{where}: {'; '.join(reasons)}")
    if other:
        parts.append(f"{other} of {total} cells without a paired result")
    said = " ".join(parts)

    # the health checks' own columns (summary.csv), not their wording
    def column(name: str) -> pd.Series:
        return summary[name] if name in summary else pd.Series(math.nan, index=summary.index)

    # (words, what the verdicts say when they already name it, which cells fail the check)
    checks = (
        ("not converged", "not converged", column("converged").astype(str) == "False"),
        ("collapsed", "predict one class", pd.to_numeric(column("collapsed")).fillna(0) > 0),
    )
    for words, named, failed in checks:
        count = int(failed.sum())
        if count and named not in said:
            parts.append(f"{words} ({count} of {len(summary)} cells)")
    return "; ".join(parts)


def wall_time(report: str) -> str:
    """The wall time `report.md` gives ("7.3 min"), or "–"."""
    match = _TIME.search(report)
    return f"{match.group(1)} min" if match else "–"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def study_row(path: Path, results: Path) -> str:
    """The table row of one study file, from `results/<name>/`."""
    study = load_study(path)
    spec = study.spec
    seeds = len(spec.sweep.seeds)
    folder = results / spec.name
    cells: list[str] = [f"`{spec.name}`", _escape(claim_of(spec.description)), design_of(study)]
    summary_file = folder / "summary.csv"
    if not summary_file.is_file():
        return "| " + " | ".join([*cells, str(seeds), "–", NOT_RUN, "–"]) + " |"
    summary = pd.read_csv(summary_file, keep_default_na=True)
    summary["cell"] = summary["cell"].astype(str)
    metric = spec.metric.name
    compared = _compared(summary, study.baseline)
    pairs = [_number(r.get("n_pairs")) for r in compared]
    fewest = min((int(k) for k in pairs if math.isfinite(k)), default=seeds)
    n = f"{fewest} of {seeds}" if fewest < seeds else str(seeds)
    report = folder / "report.md"
    wall = wall_time(report.read_text(encoding="utf-8")) if report.is_file() else "–"
    result = "<br>".join(cell_result(r, metric) for r in compared) or "–"
    line = reading(summary, study.baseline, metric)
    unknown = sorted(set(summary["cell"]) - {c.name for c in study.cells})
    if unknown:
        line += "; results from an earlier version of the study file (rerun it)"
    return "| " + " | ".join([*cells, n, wall, _escape(result), _escape(line)]) + " |"


def record(paths: Sequence[Path], source: Path, records: Path) -> list[str]:
    """Copy each study's run files from `source/<name>/` into `records/<name>/`, replacing the
    record of an earlier run (summary.csv, report.md, trials.csv, and claims.csv where the
    run wrote one; a claims.csv the new run did not write is removed, not kept from the
    earlier run); studies not run under `source` keep their record. Returns the names
    recorded."""
    recorded = []
    for path in paths:
        name = load_study(path).spec.name
        files = [source / name / f for f in (*RECORD_FILES, *RECOMPUTE_FILES)]
        if not all(f.is_file() for f in files):
            continue
        (records / name).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copyfile(f, records / name / f.name)
        for optional in OPTIONAL_FILES:
            kept = records / name / optional
            if (source / name / optional).is_file():
                shutil.copyfile(source / name / optional, kept)
            elif kept.exists():
                kept.unlink()
        recorded.append(name)
    return recorded


def table(paths: Sequence[Path], results: Path) -> str:
    """The whole table, header and one row per study file."""
    return "\n".join([HEADER, *(study_row(p, results) for p in paths)])


def replace_block(text: str, block: str) -> str:
    """`text` with everything between the START and END markers replaced by `block`."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {START} … {END} block in the README")
    head = text[: start + len(START)]
    return f"{head}\n{block}\n{text[end:]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("studies", nargs="*", type=Path, help="study files (default: shipped)")
    parser.add_argument("--results", type=Path, default=RECORDS, help="run records to read")
    parser.add_argument(
        "--record", type=Path, metavar="DIR", help="first copy DIR/<name>/ runs into --results"
    )
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--write", action="store_true", help="rewrite the README's block")
    args = parser.parse_args(argv)
    paths = args.studies or shipped_studies()
    if args.record is not None:
        names = record(paths, args.record, args.results)
        print(f"recorded into {args.results}: {', '.join(names) or 'nothing (no finished run)'}")
        if not args.write:
            return 0
    block = table(paths, args.results)
    if not args.write:
        print(block)
        return 0
    text = args.readme.read_text(encoding="utf-8")
    try:
        args.readme.write_text(replace_block(text, block), encoding="utf-8")
    except ValueError as exc:
        print(f"{args.readme}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.readme}: shipped-studies table rewritten ({len(block.splitlines()) - 2} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
