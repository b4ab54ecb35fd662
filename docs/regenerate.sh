#!/usr/bin/env bash
# Regenerates the README's examples and its "Shipped studies" table from real runs.
#
#   bash docs/regenerate.sh                          # every top-level shipped study
#   bash docs/regenerate.sh studies/ds_plain.yaml    # only these (the others keep their record)
#
# Runs each study (studies/*.yaml; cityscapes/ and ade20k/ need real data and a GPU), keeps its
# summary.csv, report.md, trials.csv and claims.csv as the run record under docs/results/<name>/
# (committed, so anyone can recompute it from the trials; the table
# is rebuilt from these records, so it can be checked without re-training), copies the Lovász
# study's plots, health checks, verdicts and table and the search example's plot into docs/, and
# rewrites the table between README's shipped-studies markers with docs/studies_table.py.
# Each study is sized to at most 15 minutes on 2 CPU cores; each resumes if already run, so a
# second run trains nothing. A study whose recipe, cells or metric changed since its results
# were written is refused (exit 2): delete results/<name>/ to run it afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -gt 0 ]; then studies=("$@"); else studies=(studies/*.yaml); fi
for study in "${studies[@]}"; do
  ablate run "$study"
done
if [ -f results/lovasz/report.md ]; then
  cp results/lovasz/plots/diff_vs_baseline.png docs/lovasz_diff_vs_baseline.png
  cp results/lovasz/plots/metric_vs_cell.png docs/lovasz_metric_vs_cell.png
  cp results/lovasz/plots/per_class_diff.png docs/lovasz_per_class_diff.png
  python - <<'PY'
import re
from pathlib import Path

report = Path("results/lovasz/report.md").read_text()
table = re.search(r"\n(\| cell .*?)\n\n", report, re.S).group(1)
health = re.search(r"## Health\n\n(.*?)\n\n## ", report, re.S).group(1)
verdicts = re.search(r"## Verdicts\n\n(.*?)\n\n## ", report, re.S).group(1)
Path("docs/lovasz_table.md").write_text(f"{health}\n\n{verdicts}\n\n{table}\n")
PY
fi
if [ -f results/search_lr_aux/plots/search.png ]; then
  cp results/search_lr_aux/plots/search.png docs/search_lr_aux.png
fi
python docs/studies_table.py --record results "${studies[@]}"
python docs/studies_table.py --write
