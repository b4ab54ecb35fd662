"""`ablate --help` and `status` import neither torch nor MLflow, and `validate` no MLflow: each
costs a second or more, and none of these commands trains or logs anything. `validate` does
import torch: it builds each model and runs it on a batch, the pre-flight check `run` makes,
so that a study it calls ok is not refused by `run`."""

import subprocess
import sys
from pathlib import Path

from ablate.study import create_or_load, default_storage_url
from ablate.study_file import load_study

STUDY = Path(__file__).parents[1] / "studies" / "aux_weight.yaml"

# runs the CLI in-process, then reports which heavy modules it pulled in
PROBE = """
import sys
from ablate.cli import main
sys.argv = ["ablate", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    assert not exc.code, f"exit {exc.code}"
finally:
    print("heavy:", sorted(m for m in ("torch", "mlflow") if m in sys.modules))
"""


def _heavy_modules(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def test_help_imports_neither_torch_nor_mlflow() -> None:
    assert _heavy_modules("--help") == "heavy: []"


def test_validate_imports_torch_for_its_preflight_but_not_mlflow() -> None:
    assert _heavy_modules("validate", str(STUDY)) == "heavy: ['torch']"


def test_status_imports_neither_torch_nor_mlflow(tmp_path: Path) -> None:
    study = load_study(STUDY)
    results = tmp_path / "results"
    (results / study.spec.name).mkdir(parents=True)
    queue = create_or_load(study, default_storage_url(results, study.spec.name))
    queue.sync(study.design.pairs(queue))
    assert _heavy_modules("status", study.spec.name, "--results", str(results)) == "heavy: []"
