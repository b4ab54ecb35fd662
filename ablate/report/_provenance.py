"""Provenance: what produced a report, so two reports of one study name can be told apart — the
exact command and its `--set` overrides, the resolved base recipe, package versions, the study
file's git commit (and whether its repository had uncommitted changes), devices and threads, and
the machines the complete trials trained on (`ablate.machine`: CPU, the kernels torch chose for
it, threads and library versions), on which a (cell, seed) depends bit for bit.

Passwords are masked (`ablate.urls.mask_secrets`) when the provenance is built: a
`--storage postgresql://user:secret@host/db` on the command line reaches none of report.md,
report.html, provenance.json or the study run's tags."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from ablate.report._text import md_code, md_fence, md_text
from ablate.study import Outcome, TrialRecord
from ablate.study_file import Study
from ablate.urls import mask_secrets

# distribution name → how the report names it; versions are read from the installed metadata,
# so nothing heavy is imported for them
_PACKAGES = {
    "ablate-runner": "ablate",
    "torch": "torch",
    "optuna": "optuna",
    "mlflow": "mlflow",
    "numpy": "numpy",
    "scipy": "scipy",
    "statsmodels": "statsmodels",
}
_SET_FLAGS = ("--set",)


@dataclass(frozen=True)
class Provenance:
    command: str  # as typed, program name first; passwords masked
    overrides: tuple[str, ...]  # each --set key=value, in order; passwords masked
    versions: dict[str, str]  # package → version ("not installed" where absent)
    git: str  # "<commit>", "<commit>, with uncommitted changes" or "not in a repository"
    devices: str  # the devices COMPLETE trials ran on
    threads: int  # CPU threads per trial (train.threads)
    recipe: str  # the resolved base recipe, as YAML; passwords masked
    # "<n> trials: <machine>" for each distinct machine COMPLETE trials ran on, most first
    machines: tuple[str, ...] = ()

    def as_tags(self) -> dict[str, str]:
        """Flat `ablate.provenance.*` strings for an MLflow run (the recipe is an artifact)."""
        tags = {
            "ablate.provenance.command": self.command,
            "ablate.provenance.overrides": " ".join(self.overrides) or "none",
            "ablate.provenance.git": self.git,
            "ablate.provenance.devices": self.devices,
            "ablate.provenance.threads": str(self.threads),
            "ablate.provenance.machines": "\n".join(self.machines) or "none yet",
        }
        tags.update({f"ablate.version.{name}": v for name, v in self.versions.items()})
        return tags


def provenance(
    study: Study, records: Sequence[TrialRecord], argv: Sequence[str] | None = None
) -> Provenance:
    """What produced this report. `argv` defaults to this process's command line: `ablate run`
    writes its report itself, and `ablate report` must name the same recipe (a changed base is
    refused under one study name), so its overrides are the run's. Every password the
    command line or the recipe carries is masked here, before anything renders them."""
    args = [mask_secrets(a) for a in (sys.argv if argv is None else argv)]
    program = Path(args[0]).name if args else "ablate"
    if program in ("__main__.py", "-m", "-c"):
        program = "python -m ablate"
    recipe = study.spec.base.model_dump(mode="json")
    devices = sorted({r.device for r in records if r.outcome is Outcome.COMPLETE and r.device})
    return Provenance(
        command=shlex.join([program, *args[1:]]) if args else "ablate",
        overrides=tuple(_overrides(args[1:])),
        versions={name: _version(dist) for dist, name in _PACKAGES.items()},
        git=_git_state(study.path),
        devices=", ".join(devices) or "none yet",
        threads=int(study.spec.base.train.threads),
        recipe=mask_secrets(yaml.safe_dump(recipe, sort_keys=False, default_flow_style=False)),
        machines=_machines(records),
    )


def markdown(p: Provenance) -> list[str]:
    """The report's "Provenance" section."""
    versions = md_text(", ".join(f"{name} {v}" for name, v in p.versions.items()))
    return [
        "## Provenance",
        "",
        f"- command: {md_code(p.command)}",
        f"- `--set` overrides: {', '.join(md_code(o) for o in p.overrides) or 'none'}",
        f"- study file's repository: {md_text(p.git)}",
        f"- devices: {md_text(p.devices)}; CPU threads per trial: {p.threads}",
        *_machine_lines(p.machines),
        f"- versions: {versions}; python {platform.python_version()} on "
        f"{md_text(platform.platform(terse=True))}",
        "",
        "Resolved base recipe (every trial starts from it; cells override the swept keys):",
        "",
        *md_fence(p.recipe, "yaml"),
        "",
    ]


def _machines(records: Sequence[TrialRecord]) -> tuple[str, ...]:
    complete = [r for r in records if r.outcome is Outcome.COMPLETE]
    counts = Counter(r.result.machine for r in complete if r.result.machine is not None)
    found = [(n, m.describe()) for m, n in counts.most_common()]
    unrecorded = sum(r.result.machine is None for r in complete)
    if unrecorded:
        found.append((unrecorded, "not recorded (trained by an ablate that did not record it)"))
    return tuple(f"{n} trial{'' if n == 1 else 's'}: {text}" for n, text in found)


def _machine_lines(machines: Sequence[str]) -> list[str]:
    """A (cell, seed) gives the same numbers bit for bit only on the same CPU model, kernels,
    threads and versions: the machines say which results can be compared that way."""
    if len(machines) <= 1:
        return [f"- machine: {md_text(machines[0] if machines else 'none yet')}"]
    return [
        f"- machines ({len(machines)}: a (cell, seed) trained on one need not give the same "
        "numbers bit for bit on another):",
        *(f"  - {md_text(m)}" for m in machines),
    ]


def _overrides(args: Sequence[str]) -> list[str]:
    out = []
    for i, arg in enumerate(args):
        if arg in _SET_FLAGS and i + 1 < len(args):
            out.append(args[i + 1])
        elif arg.startswith(tuple(f"{flag}=" for flag in _SET_FLAGS)):
            out.append(arg.split("=", 1)[1])
    return out


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(folder: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _git_state(study_file: Path) -> str:
    """The commit of the study file's repository, and whether it had uncommitted changes to
    tracked files (the study file itself named when it is one of them, or untracked)."""
    folder = study_file.resolve().parent
    commit = _git(folder, "rev-parse", "--short=12", "HEAD")
    if commit is None:
        return "not in a repository"
    changed = _git(folder, "status", "--porcelain", "--untracked-files=no")
    mine = _git(folder, "status", "--porcelain", "--", study_file.resolve().name)
    notes = []
    if changed:
        notes.append("with uncommitted changes")
    if mine:
        state = "untracked" if mine.startswith("??") else "modified"
        notes.append(f"the study file itself is {state}")
    return f"commit {commit}" + (f", {'; '.join(notes)}" if notes else " (clean)")
