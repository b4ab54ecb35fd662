#!/usr/bin/env bash
# What only a GPU machine can check, in one script of under 5 minutes:
#
#   1. the gpu-marked tests            pytest -m gpu
#   2. a short AMP fit on cuda:0       bf16 and fp16 (GradScaler), pspnet-ResNet18 at 128×128
#   3. two workers on two devices      ablate run --devices cuda:0,cuda:1 of a 4-trial study;
#                                      nvidia-smi is polled during the run: each worker process
#                                      must appear on exactly one GPU and two GPUs must be used,
#                                      and the trial records must name both devices
#                                      (skipped with a note when fewer than 2 GPUs are visible)
#   4. benchmarks/train_step.py        bf16 + channels_last, ablate's step vs a plain loop
#
#     bash benchmarks/gpu_check.sh            # from the repository root, with ablate installed
#
# Prints PASS / FAIL / SKIP per check and a summary; exits 1 when any check failed, 0 otherwise.
# Without CUDA (this project's CPU machines) it prints that every check is skipped and exits 0.
# Each check runs under `timeout` (90, 60, 90, 60 s: 5 minutes in all) so a hang fails that check
# instead of eating the machine's budget.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, whatever is installed
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
declare -a SUMMARY=()
FAILED=0

note() { SUMMARY+=("$1"); echo "== $1"; }
check() {  # check NAME SECONDS COMMAND... : run it, record PASS or FAIL
    local name=$1 limit=$2
    shift 2
    echo "== $name"
    local start=$SECONDS
    if timeout "$limit" "$@"; then
        note "PASS  $name ($((SECONDS - start)) s)"
    else
        local rc=$?
        [ "$rc" = 124 ] && rc="timed out after ${limit} s"
        note "FAIL  $name (exit $rc, $((SECONDS - start)) s)"
        FAILED=1
    fi
}

GPUS=$($PY -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null || echo 0)
if [ "$GPUS" = 0 ]; then
    echo "gpu_check: no CUDA device visible to torch ($($PY -c 'import torch; print(torch.__version__)' 2>/dev/null))"
    echo "SKIP  gpu tests, AMP fit, 2 workers on 2 devices, train_step benchmark: need CUDA"
    exit 0
fi
echo "gpu_check: $GPUS CUDA device(s)"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

# 1. gpu-marked tests
check "pytest -m gpu" 90 $PY -m pytest -m gpu -q -p no:cacheprovider tests

# 2. AMP fits: bf16 (no scaler) and fp16 (GradScaler) must train and stay finite
cat > "$WORK/amp.py" <<'EOF'
import math, sys, torch
from ablate.spec import Recipe
from ablate.train import autocast_for, fit
dev = torch.device("cuda:0")
for amp in ("bf16", "fp16"):
    recipe = Recipe.model_validate({
        "data": {"name": "shapes", "image_size": [128, 128], "train_size": 64, "val_size": 16},
        "model": {"name": "pspnet", "args": {"backbone": "resnet18", "pretrained": False}},
        "train": {"iters": 20, "batch_size": 8, "amp": amp},
        "eval": {"every": 10},
    })
    dtype, scaler = autocast_for(amp, dev)
    r = fit(recipe, 0, dev)
    loss, miou = r.final["train/loss"], r.final["val/mIoU"]
    print(f"amp {amp}: autocast {dtype}, GradScaler {scaler}, diverged {r.diverged}, "
          f"loss {loss:.3f}, mIoU {miou:.3f}, {r.final['train/images_per_s']:.0f} images/s")
    if r.diverged or not math.isfinite(loss) or not math.isfinite(miou) or len(r.history) != 2:
        sys.exit(f"amp {amp}: the fit did not finish cleanly")
    if amp == "fp16" and not scaler:
        sys.exit("fp16 on CUDA must use a GradScaler")
EOF
check "AMP fit bf16 + fp16 on cuda:0" 60 $PY "$WORK/amp.py"

# 3. two workers, one per device
if [ "$GPUS" -ge 2 ]; then
    cat > "$WORK/two.yaml" <<'EOF'
name: gpu_check_two
description: gpu_check.sh — 2 cells × 2 seeds on two devices
base:
  data: {name: shapes, image_size: [96, 96], train_size: 256, val_size: 32}
  model: {name: pspnet_tiny}
  train: {iters: 150, batch_size: 16, amp: bf16}
  eval: {every: 75}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
  seeds: [0, 1]
EOF
    cat > "$WORK/devices.py" <<'EOF'
import collections, sys
from pathlib import Path
from ablate.study import default_storage_url, load_existing
results, log = Path(sys.argv[1]), Path(sys.argv[2])
records = load_existing("gpu_check_two", default_storage_url(results, "gpu_check_two")).records()
states = collections.Counter(r.state for r in records)
devices = collections.Counter(r.device for r in records)
print(f"trials {dict(states)}; trials per recorded device {dict(devices)}")
gpus_of = collections.defaultdict(set)  # pid -> GPUs it held memory on
for line in log.read_text().splitlines():
    parts = [p.strip() for p in line.split(",")]
    if len(parts) == 2 and parts[1].isdigit():
        gpus_of[int(parts[1])].add(parts[0])
print("nvidia-smi: processes per GPU:",
      {g: sorted(p for p, gs in gpus_of.items() if g in gs) for g in set().union(*gpus_of.values())})
ok = states == {"COMPLETE": 4} and set(devices) == {"cuda:0", "cuda:1"}
if gpus_of:
    ok = ok and len(set().union(*gpus_of.values())) >= 2  # two GPUs were used
    ok = ok and all(len(gs) == 1 for gs in gpus_of.values())  # no worker touched a second GPU
else:  # e.g. a container whose PID namespace hides the processes from nvidia-smi
    print("nvidia-smi listed no compute processes: only the trial records were checked")
sys.exit(0 if ok else "each worker must run on its own device, and all 4 trials complete")
EOF
    two_devices() {
        : > "$WORK/smi.log"
        (while true; do
            nvidia-smi --query-compute-apps=gpu_uuid,pid --format=csv,noheader >> "$WORK/smi.log" 2>/dev/null
            sleep 0.5
        done) &
        local poller=$!
        $PY -m ablate run "$WORK/two.yaml" --devices cuda:0,cuda:1 --results "$WORK/results" >"$WORK/run.log" 2>&1
        local rc=$?
        kill "$poller" 2>/dev/null
        wait "$poller" 2>/dev/null
        tail -n 5 "$WORK/run.log"
        [ "$rc" = 0 ] || { echo "ablate run exited $rc"; return 1; }
        $PY "$WORK/devices.py" "$WORK/results" "$WORK/smi.log"
    }
    check "2 workers on cuda:0, cuda:1" 90 bash -c "$(declare -f two_devices); WORK=$WORK PY=$PY; two_devices"
else
    note "SKIP  2 workers on 2 devices: only $GPUS GPU visible"
fi

# 4. the training-step benchmark (bf16 + channels_last on cuda:0)
check "benchmarks/train_step.py --device cuda" 60 $PY benchmarks/train_step.py --device cuda

echo
echo "gpu_check summary:"
printf '  %s\n' "${SUMMARY[@]}"
exit $FAILED
