#!/usr/bin/env bash
# Regenerates the README's example: runs the shipped Lovász study (about 6 minutes on 2 CPU cores,
# resumes if already run) and copies its plot and ablation table into docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
ablate run studies/lovasz.yaml
cp results/lovasz/plots/metric_vs_cell.png docs/lovasz_metric_vs_cell.png
cp results/lovasz/plots/per_class_diff.png docs/lovasz_per_class_diff.png
python - <<'PY'
import re
from pathlib import Path

report = Path("results/lovasz/report.md").read_text()
table = re.search(r"\n(\| cell .*?)\n\n", report, re.S).group(1)
Path("docs/lovasz_table.md").write_text(table + "\n")
PY
