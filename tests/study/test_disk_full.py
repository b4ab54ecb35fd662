"""A disk that fills up mid-study (the checkpoint folder, the results folder with its SQLite
stores): the study stops with one line naming the path, exit 2, keeps every trained result, and
once there is room the same command finishes it with every (cell, seed) trained once."""

import contextlib
import errno
import importlib
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from ablate.errors import DiskError
from ablate.study import Locations, Outcome, create_or_load, run_study
from ablate.study_file import load_study
from tests.study.fakes import work_here
from tests.study.test_distributed import _ablate, _finish
from tests.study.test_run_cli import STUDY

fit_module = importlib.import_module("ablate.train.fit")  # the module; `ablate.train.fit` is fit


def test_a_full_disk_under_a_checkpoint_stops_the_study_and_keeps_what_was_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tiny.yaml").write_text(STUDY)
    study = load_study(tmp_path / "tiny.yaml", ["sweep.grid={loss.aux.weight: [0.0]}"])
    where = Locations.resolve(tmp_path / "results", "tiny", None, None)
    saves: list[Path] = []
    real_save = fit_module.save_checkpoint

    def save(path: Path, state: dict[str, Any]) -> None:
        saves.append(path)
        if len(saves) > 1:  # the first trial saves once; the second meets a full disk
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(path, state)

    monkeypatch.setattr(fit_module, "save_checkpoint", save)  # in this process: one worker here
    with pytest.raises(DiskError) as stopped:
        work_here(study, where, fit_module.fit)
    message = str(stopped.value)
    assert f"{saves[-1]}: cannot write it (No space left on device)" in message
    records = create_or_load(study, where.storage_url).records()
    # one trained and kept, the one that met the full disk killed and queued again
    assert Counter(r.outcome for r in records) == Counter([Outcome.COMPLETE, Outcome.KILLED, None])
    monkeypatch.setattr(fit_module, "save_checkpoint", real_save)  # room again
    assert run_study(study, where, None, 1, Console(quiet=True)).failed == []
    records = create_or_load(study, where.storage_url).records()
    done = Counter(r.key for r in records if r.outcome is Outcome.COMPLETE)
    assert done == Counter({("aux.weight=0", 0): 1, ("aux.weight=0", 1): 1})


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 16 MiB of its own; skipped where mounting is not allowed (not root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file, as another job on a shared disk would."""
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 65536)
    return filler


def _complete(results: Path) -> int:
    db = results / "tiny" / "optuna.db"
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        try:
            return int(
                conn.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
            )
        except sqlite3.Error:
            return 0


@pytest.mark.slow
def test_results_on_a_disk_that_fills_up_stop_with_one_line_and_resume_once_freed(
    tmp_path: Path, small_disk: Path
) -> None:
    (tmp_path / "tiny.yaml").write_text(STUDY)
    results = small_disk / "results"
    slow = ["--set", "base.train.epochs=12"]  # trials of seconds: the disk fills mid-study
    args = ["run", "tiny.yaml", "--workers", "1", "--results", str(results), *slow]
    run = _ablate(tmp_path, "full.log", *args)
    deadline = time.monotonic() + 180
    while _complete(results) < 1 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    filler = _fill(small_disk)
    code = _finish(run, tmp_path, "full.log")
    log = (tmp_path / "full.log").read_text()
    assert code == 2, log
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, log
    assert (
        str(small_disk) in errors[0] or "a database of the study cannot be written" in errors[0]
    ), log
    kept = _complete(results)
    assert kept >= 1  # what was trained before the disk filled is still there
    filler.unlink()  # room again
    code = _finish(_ablate(tmp_path, "again.log", *args), tmp_path, "again.log")
    assert code == 0, (tmp_path / "again.log").read_text()
    study = load_study(tmp_path / "tiny.yaml", ["base.train.epochs=12"])
    records = create_or_load(study, f"sqlite:///{results / 'tiny' / 'optuna.db'}").records()
    done = Counter(r.key for r in records if r.outcome is Outcome.COMPLETE)
    assert sorted(done.values()) == [1, 1, 1, 1]  # every (cell, seed) once, none twice
    assert not [r for r in records if r.pending]
