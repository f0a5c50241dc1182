#!/usr/bin/env bash
# The GPU check (issue 22), one script for one CUDA machine. Sections, run in this order (default: all):
#   warm-fla   compiles and autotunes fla's Triton kernels once for the head sizes used below (on a fresh machine
#              this took over 3 minutes on an H200; later processes read Triton's cache in ~/.triton)
#   pytest     pytest -m gpu: fused trials, study trainables and fla's kernel on CUDA
#   attention  bench/attention.py at B = 4, H = 8, d = 64, bf16 and float32, T = 1k-64k, with fla's Triton kernel
#   fused      bench/fused_trials.py --device cuda: 264 digits runs, fused and alone, each trial 1/8 of the GPU
#   smoke      every study's smoke budget through Ray with --gpus-per-trial 0.125, then its verdicts
# Usage: OUT=/some/dir bash bench/gpu.sh [SECTION ...]   (wheels from .whl/ or $WHEELS: ../shared/GPU.md)
# Logs, the attention and fused tables and gpu_verdicts.csv land in $OUT; each section has its own time limit.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
WHEELS=${WHEELS:-.whl}
SECTIONS=${*:-warm-fla pytest attention fused smoke}
SITE=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl || exit 1
export PYTHONPATH=$PWD:$SITE PYTHONUNBUFFERED=1 RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
failed=0
wants() { [[ " $SECTIONS " == *" $1 "* ]]; }
section() { echo; echo "=== $1 ($(date +%T))"; }
check() { local rc=$?; [ $rc -eq 0 ] || { echo "=== FAILED ($rc): $1"; failed=1; }; }

section "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"

if wants warm-fla; then
  section "warm-fla: one forward + backward per head size and dtype, timed"
  timeout 420 python3 - <<'PY'
import time

import torch

from core.attention import fla_linear_elu

for d in (16, 32, 64):
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = (torch.randn(2, 2, 256, d, device="cuda", dtype=dtype, requires_grad=True) for _ in range(3))
        t0 = time.perf_counter()
        fla_linear_elu(q, k, v).float().sum().backward()
        torch.cuda.synchronize()
        print(f"d = {d}, {dtype}: first call {time.perf_counter() - t0:.1f} s", flush=True)
PY
  check "warm-fla"
fi

if wants pytest; then
  section "pytest -m gpu"
  timeout 240 python3 -m pytest -q -m gpu -o addopts="--strict-markers" -p no:cacheprovider tests/core tests/studies
  check "pytest -m gpu"
fi

if wants attention; then
  section "attention: bench/attention.py, B = 4, H = 8, d = 64"
  timeout 180 python3 bench/attention.py --batch 4 --heads 8 --min-n 1024 --max-n 65536 --dtypes bfloat16,float32 \
    --reps 3 --softmax-max-bytes 8e9 | tee "$OUT/attention.txt"
  check "attention bench"
fi

if wants fused; then
  section "fused trials through the runner: bench/fused_trials.py --device cuda"
  timeout 240 python3 bench/fused_trials.py --device cuda --sweeps digits --seeds 11 --epochs 20 --cpus 16 \
    | grep -v "done, .* running\|reporting, " | tee "$OUT/fused.txt"
  check "fused bench"
fi

if wants smoke; then
  section "every study's smoke budget at 1/8 GPU a trial, one after another"
  RESULTS=$(mktemp -d) LOGS=$(mktemp -d)
  for study in lr_finiteness attention_scaling fast_mlm question_generation pg_vs_zo flooding weissi embedding_dim; do
    t0=$SECONDS
    timeout 180 python3 -m studies run "$study" --budget smoke --gpus-per-trial 0.125 --results "$RESULTS" \
      >"$LOGS/$study.log" 2>&1
    rc=$?
    [ $rc -eq 0 ] || failed=1
    echo "$study smoke: exit $rc, $((SECONDS - t0)) s wall; $(tail -1 "$LOGS/$study.log")"
  done
  for f in "$LOGS"/*.log; do echo "--- $f"; grep -v "done, .* running\|reporting, " "$f" | tail -25; done >"$OUT/smoke_logs.txt"
  timeout 300 python3 -m analysis --results "$RESULTS" --out "$RESULTS/report" >/dev/null
  check "analysis"
  python3 - "$RESULTS/report" "$OUT/gpu_verdicts.csv" <<'PY'
import sys
from pathlib import Path

import pandas as pd

frames = [pd.read_parquet(p).assign(study=p.parent.name) for p in sorted(Path(sys.argv[1]).glob("*/verdicts.parquet"))]
table = pd.concat(frames)[["study", "budget", "claim_id", "verdict"]]
table.to_csv(sys.argv[2], index=False)
print(table.to_string(index=False))
PY
fi
echo; echo "=== done ($(date +%T)); failed sections: $failed"
exit $failed
