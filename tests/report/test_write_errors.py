"""A report the disk will not take (read-only folder, full disk) is one line naming the file,
exit code 2, and the previous report stays whole: every file is replaced whole or not at all."""

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from ablate import files
from ablate.cli import app
from ablate.errors import UserError
from ablate.report import write_report
from ablate.study import Locations, start_study
from ablate.study_file import load_study
from tests.report.test_build import _storage, _study

STUDY = """
name: tiny
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 4, val_size: 4}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
  seeds: [0, 1]
baseline: {loss.aux.weight: 0.0}
"""


@pytest.fixture()
def started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A study as `ablate run` leaves it before training (storage, MLflow runs), with a
    first report written by `ablate report`: its results folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(STUDY)
    where = Locations.resolve(Path("results"), "tiny", None, None)
    start_study(load_study(tmp_path / "tiny.yaml"), where, Console(quiet=True))
    first = CliRunner().invoke(app, ["report", "tiny"])
    assert first.exit_code == 0, first.output
    return tmp_path / "results" / "tiny"


def _disk_full_for(suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes of files named *suffix fail as a full disk fails them: half the bytes land in
    the new file, then ENOSPC."""
    real_open = open

    class Full:
        def __init__(self, file: Any) -> None:
            self.file = file

        def __enter__(self) -> "Full":
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> int:
            self.file.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        file = real_open(path, mode, *args, **kwargs)
        target = Path(path).name.rsplit(".", 2)[0].lstrip(".")  # .report.md.<hex>.tmp
        return Full(file) if "w" in mode and target.endswith(suffix) else file

    monkeypatch.setattr(files, "open", full_open, raising=False)


def test_a_full_disk_is_one_line_naming_the_file_and_the_old_report_stays(
    started: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (started / "report.md").read_bytes()
    _disk_full_for("report.md", monkeypatch)
    result = CliRunner().invoke(app, ["report", "tiny"])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: results/tiny/report.md: cannot write it (No space left on device); free space "
        "and run `ablate report tiny`\n"
    )
    assert (started / "report.md").read_bytes() == before
    assert not [p for p in started.rglob("*.tmp")]  # the half-written file is gone


def test_a_read_only_results_folder_is_one_line_and_exit_2(started: Path) -> None:
    before = (started / "report.md").read_bytes()
    started.chmod(0o500)
    try:
        try:
            (started / "probe").touch()
        except PermissionError:
            pass
        else:  # root (with CAP_DAC_OVERRIDE): the full-disk test covers this one's path
            pytest.skip("this user writes into a read-only folder (root)")
        result = CliRunner().invoke(app, ["report", "tiny"])
    finally:
        started.chmod(0o700)
    assert result.exit_code == 2, result.output
    line = result.stderr
    assert line.startswith("error: results/tiny/") and line.count("\n") == 1
    assert "cannot write it (Permission denied); make the folder writable and run `ablate " in line
    assert (started / "report.md").read_bytes() == before


def test_a_plot_the_disk_refuses_keeps_the_previous_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _study(tmp_path)
    values = {(c.name, s): 0.5 + 0.01 * s for c in study.cells for s in (0, 1, 2)}
    queue = _storage(study, values)
    results = tmp_path / "results"
    write_report(study, queue, results)
    plots = results / "two_keys" / "plots"
    before = {p: p.read_bytes() for p in plots.glob("*.png")}
    _disk_full_for(".png", monkeypatch)
    with pytest.raises(UserError, match=r"\.png: cannot write it \(No space left on device\)") as e:
        write_report(study, queue, results)
    refused = Path(str(e.value).split(": cannot write it")[0])
    assert refused in before and {p: p.read_bytes() for p in plots.glob("*.png")} == before
    assert not list(results.rglob("*.tmp"))
