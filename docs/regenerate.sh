#!/usr/bin/env bash
# Regenerates the README's examples and its "Shipped studies" table from real runs: runs the
# shipped Lovász study and the search example and copies their plots and the Lovász health
# checks, verdicts and ablation table into docs/; then runs every other top-level shipped study
# (studies/*.yaml; cityscapes/ and ade20k/ need real data and a GPU) and rewrites the table
# between README's shipped-studies markers with docs/studies_table.py.
# Each study is sized to at most 15 minutes on 2 CPU cores, so a first run takes up to 15 minutes
# per shipped study (2 hours for eight); each resumes if already run, so a second run trains
# nothing. A study whose recipe, cells or metric changed since its results were written is
# refused (exit 2): delete results/<name>/ to run it afresh.
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
for study in studies/*.yaml; do
  ablate run "$study"
done
python docs/studies_table.py --write
