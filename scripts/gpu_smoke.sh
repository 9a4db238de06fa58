#!/usr/bin/env bash
# The GPU smoke check: what to run when a machine with a CUDA device is at hand.
#   1. feature extraction of a random-init HuBERT tiny on the tiny synth corpus, on the GPU;
#   2. a short probe of every task (the 1 h ML-SUPERB variants excepted: same code, more data)
#      with --device cuda, i.e. modules, batches, losses and evaluation on the GPU;
#   3. a short pre-training of hubert_tiny with DDP (torchrun) on every visible GPU.
# It prints each stage's throughput (seconds of audio per second, probe updates per second).
# Without a usable CUDA device it says so in one line and exits 0 (nothing to check).
#
# Usage: scripts/gpu_smoke.sh [WORK_DIR]   (PYTHON=... picks the interpreter; default .venv/bin/python)
# Env: STEPS (probe updates per task, default 50), PT_STEPS (pre-training updates, default 40).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
GPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null || echo 0)
if [ "${GPUS:-0}" = "0" ]; then
  echo "gpu_smoke: no usable CUDA device here (torch.cuda.is_available() is False): nothing to check"
  exit 0
fi
WORK=${1:-$(mktemp -d -t gpu_smoke.XXXXXX)}
STEPS=${STEPS:-50}
PT_STEPS=${PT_STEPS:-40}
mkdir -p "$WORK"
echo "gpu_smoke: $GPUS GPU(s): $("$PY" -c 'import torch; print(torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)')"
echo "gpu_smoke: work folder $WORK"

harness() { "$PY" -c 'from harness.cli import app; app()' "$@"; }

# 0. the corpus (CPU; not timed as GPU work)
[ -d "$WORK/synth" ] || harness data synth --size tiny --out "$WORK/synth" --workers 4 >/dev/null

# 1. extraction alone, timed: every pool of every task's splits, on cuda
"$PY" - "$WORK" <<'EOF'
import sys, time
from pathlib import Path
import torch
from harness.data.corpora import load_corpus
from harness.evaluate import build_task, build_upstream
from harness.features import prepare_sources
work = Path(sys.argv[1])
up = build_upstream("random:hubert_tiny")
corp = load_corpus(str(work / "synth"), cache_dir=work / "cache" / "corpora")
splits = build_task("pr").prepare(corp)
secs = sum(u.duration for p in {id(p): p for ps in splits.pools.values() for p in ps}.values() for u in p)
t0 = time.perf_counter()
prepare_sources(up, splits.as_dict(), splits.pools, work / "extract_only", 50.0, device="cuda", log=lambda *_: None)
torch.cuda.synchronize()
dt = time.perf_counter() - t0
print(f"gpu_smoke: extraction random:hubert_tiny on cuda: {secs:.0f} s of audio in {dt:.1f} s = {secs / dt:.0f} s audio/s")
EOF

# 2. a probe of every task on cuda
TASKS=$("$PY" -c 'from harness.registry import TASKS, load_all; load_all(); print(" ".join(t for t in TASKS.names() if not t.endswith("_1h")))')
for t in $TASKS; do
  harness eval --upstream random:hubert_tiny --task "$t" --corpus "$WORK/synth" --device cuda --steps "$STEPS" \
    --runs "$WORK/runs" --cache "$WORK/cache" >"$WORK/eval_$t.log" 2>&1 || { echo "gpu_smoke: probe $t FAILED"; tail -20 "$WORK/eval_$t.log"; exit 1; }
done
# the int8 cache (pinned int8 buffers, scales applied on the GPU) and bfloat16 extraction, on one task
harness eval --upstream random:hubert_tiny --task sid --corpus "$WORK/synth" --device cuda --steps "$STEPS" \
  --cache-dtype int8 --extract-dtype bfloat16 --runs "$WORK/runs_int8" --cache "$WORK/cache" >"$WORK/eval_int8.log" 2>&1 \
  || { echo "gpu_smoke: int8 + bfloat16 probe FAILED"; tail -20 "$WORK/eval_int8.log"; exit 1; }
"$PY" - "$WORK/runs" <<'EOF'
import json, sys
from pathlib import Path
for f in sorted(Path(sys.argv[1]).rglob("result.json")) + sorted(Path(sys.argv[1] + "_int8").rglob("result.json")):
    r = json.loads(f.read_text())
    t = r["timing"]
    m = r["primary_metric"]
    tag = " (int8 cache, bf16 extraction)" if "_int8" in str(f) else ""
    print(f"gpu_smoke: probe {r['task'] + tag:<16} {t['steps'] / max(t['train_s'], 1e-9):7.1f} updates/s, "
          f"test {m} {r['metrics']['test'][m]:.2f}")
EOF

# 3. pre-training with DDP on every visible GPU
t0=$(date +%s.%N)
"$PY" -m torch.distributed.run --standalone --nproc_per_node "$GPUS" -m harness.pretrain --recipe hubert_tiny \
  --corpus "$WORK/synth" --out "$WORK/pretrain" --iterations 1 --set train.steps="$PT_STEPS" \
  --set train.device=cuda >"$WORK/pretrain.log" 2>&1 || { echo "gpu_smoke: pre-training FAILED"; tail -30 "$WORK/pretrain.log"; exit 1; }
t1=$(date +%s.%N)
"$PY" - "$WORK/pretrain" "$GPUS" "$t0" "$t1" <<'EOF'
import json, sys
from pathlib import Path
logs = sorted(Path(sys.argv[1]).rglob("log.jsonl"))  # harness/pretrain/checkpoint.py LOG
last = {}
for f in logs:
    for line in f.read_text().splitlines():
        if line.strip():
            last = json.loads(line)
rate = last.get("audio_s_per_s")
print(f"gpu_smoke: pre-training hubert_tiny, DDP on {sys.argv[2]} GPU(s): {float(sys.argv[4]) - float(sys.argv[3]):.0f} s "
      f"wall (clustering included), {rate:.0f} s audio/s in training" if rate else
      f"gpu_smoke: pre-training finished in {float(sys.argv[4]) - float(sys.argv[3]):.0f} s (no throughput logged)")
EOF
echo "gpu_smoke: OK"
