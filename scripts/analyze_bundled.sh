#!/usr/bin/env bash
# Layer analysis of the bundled upstream (issue 34), while the v2 pre-training board's own exports
# are not committed: bundled:hubert_small_synth (iteration 2 of hubert_small, upstreams/bundled/
# hubert_small_synth/CARD.md), an iteration 1 of the same recipe pre-trained here (synth medium,
# 4,500 updates; a run of its own, not the one the bundle's iteration 2 took its labels from) and
# the random-init twin random:hubert_small, on synth small with every measure; then a real-size
# HuBERT Base with random weights (transformers' HubertConfig(), saved as an hf: folder) on synth
# tiny with the default measures, for the time each measure takes at Base size. Each analysis prints its per-layer table and its time per measure; the board
# leaderboards/analysis/ is rendered from their run folders (runs/analysis-bundled).
set -euo pipefail
cd "$(dirname "$0")/.."
H=".venv/bin/harness"
RUNS=runs/analysis-bundled
IT1=runs/pretrain/hubert_small
"$H" data synth --size medium
"$H" pretrain --recipe hubert_small --corpus data/synth/medium --iterations 1 --out "$IT1"
for up in "$IT1/iter1/upstream" bundled:hubert_small_synth random:hubert_small; do
  echo "== $up"
  "$H" analyze --upstream "$up" --corpus synth --runs "$RUNS" --cache cache \
    --measure cca_phone,cca_word,mi_phone,mi_speaker,probe_layer
done
BASE=runs/analysis-models/hf-hubert-base-random
if [ ! -f "$BASE/config.json" ]; then
  .venv/bin/python - "$BASE" <<'PY'
import sys, torch, transformers
torch.manual_seed(0)
transformers.HubertModel(transformers.HubertConfig()).save_pretrained(sys.argv[1])
PY
fi
echo "== hf:$BASE"
"$H" analyze --upstream "hf:$BASE" --corpus synth:tiny --runs "$RUNS" --cache cache
"$H" leaderboard --runs "$RUNS" --out leaderboards/analysis
