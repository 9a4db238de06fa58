#!/usr/bin/env bash
# Layer analysis of the pre-training board's upstreams (issue 34): hubert_small's two iterations
# and its random-init twin on synth small, every measure, into the board's run store
# (runs/board-pretrain, so `harness leaderboard` puts them in its Layer analysis section); then a real-size
# HuBERT Base with random weights (transformers' HubertConfig(), saved as an hf: folder) on synth
# tiny with the default measures, for the time each measure takes at Base size. Run it in the
# clone that ran `./run demo --board pretrain` (it reads runs/board-pretrain and reuses the
# feature cache). Each analysis prints its per-layer table and its time per measure.
set -euo pipefail
cd "$(dirname "$0")/.."
H=".venv/bin/harness"
BOARD=runs/board-pretrain/pretrain/hubert_small
for up in "$BOARD/iter1/upstream" "$BOARD/iter2/upstream" random:hubert_small; do
  echo "== $up"
  "$H" analyze --upstream "$up" --corpus data/synth/small --runs runs/board-pretrain --cache cache \
    --measure cca_phone,cca_word,mi_phone,mi_speaker,probe_layer
done
BASE=runs/analysis/hf-hubert-base-random
if [ ! -f "$BASE/config.json" ]; then
  .venv/bin/python - "$BASE" <<'PY'
import sys, torch, transformers
torch.manual_seed(0)
transformers.HubertModel(transformers.HubertConfig()).save_pretrained(sys.argv[1])
PY
fi
echo "== hf:$BASE"
"$H" analyze --upstream "hf:$BASE" --corpus synth:tiny --runs runs/analysis --cache cache
