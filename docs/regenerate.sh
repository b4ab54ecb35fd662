#!/usr/bin/env bash
# Regenerates the README's examples: runs the shipped Lovász study (about 6 minutes on 2 CPU
# cores) and the search example (about 6-10), each resuming if already run, and copies their
# plots and the Lovász health checks, verdicts and ablation table into docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
ablate run studies/lovasz.yaml
cp results/lovasz/plots/diff_vs_baseline.png docs/lovasz_diff_vs_baseline.png
cp results/lovasz/plots/metric_vs_cell.png docs/lovasz_metric_vs_cell.png
cp results/lovasz/plots/per_class_diff.png docs/lovasz_per_class_diff.png
ablate run studies/search_lr_aux.yaml
cp results/search_lr_aux/plots/search.png docs/search_lr_aux.png
python - <<'PY'
import re
from pathlib import Path

report = Path("results/lovasz/report.md").read_text()
table = re.search(r"\n(\| cell .*?)\n\n", report, re.S).group(1)
health = re.search(r"## Health\n\n(.*?)\n\n## ", report, re.S).group(1)
verdicts = re.search(r"## Verdicts\n\n(.*?)\n\n## ", report, re.S).group(1)
Path("docs/lovasz_table.md").write_text(f"{health}\n\n{verdicts}\n\n{table}\n")
PY
