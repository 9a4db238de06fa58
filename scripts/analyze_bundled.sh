#!/usr/bin/env bash
# Layer analysis of hubert_small's two iterations and its random-init twin (issue 34), while the v2
# pre-training board's own exports are not committed: iteration 2 is the bundled upstream
# bundled:hubert_small_synth (upstreams/bundled/hubert_small_synth/CARD.md); iteration 1 is
# re-trained here by the same recipe and seed on synth medium (4,500 updates, `harness pretrain
# --iterations 1`; `train.precision: fastest` picks what this machine runs faster, so on a CPU
# without bf16 units it trains in fp32 where the bundle's iteration 1 was bf16: the same recipe,
# not the same weights); the twin is random:hubert_small. Each is analysed on synth small with
# every measure; then a real-size HuBERT Base with random weights (transformers' HubertConfig(),
# saved as an hf: folder) on synth tiny with the default measures, for the time each measure takes
# at Base size (its own run store: not on the board). Each analysis prints its per-layer table and
# its time per measure. The three hubert_small upstreams are also probed on PR and SID (3 seeds)
# so that the board's figures put the weighted-sum weights beside the layer measures; the board
# leaderboards/analysis/ and its store are rendered from runs/analysis-bundled.
set -euo pipefail
cd "$(dirname "$0")/.."
H=".venv/bin/harness"
RUNS=runs/analysis-bundled
.venv/bin/harness data synth --size medium
IT1=runs/analysis-pretrain/hubert_small
"$H" pretrain --recipe hubert_small --corpus data/synth/medium --iterations 1 --out "$IT1"
IT1="$IT1/iter1/upstream"
for up in bundled:hubert_small_synth "$IT1" random:hubert_small; do
  echo "== $up"
  "$H" analyze --upstream "$up" --corpus synth --runs "$RUNS" --cache cache \
    --measure cca_phone,cca_word,mi_phone,mi_speaker,probe_layer
done
"$H" eval --upstream "bundled:hubert_small_synth,$IT1,random:hubert_small" --task pr,sid --seeds 3 \
  --corpus synth --runs "$RUNS" --cache cache
BASE=runs/analysis-models/hf-hubert-base-random
if [ ! -f "$BASE/config.json" ]; then
  .venv/bin/python - "$BASE" <<'PY'
import sys, torch, transformers
torch.manual_seed(0)
transformers.HubertModel(transformers.HubertConfig()).save_pretrained(sys.argv[1])
PY
fi
echo "== hf:$BASE"
"$H" analyze --upstream "hf:$BASE" --corpus synth:tiny --runs runs/analysis-base --cache cache
"$H" leaderboard --runs "$RUNS" --out leaderboards/analysis
rm -rf leaderboards/analysis/store
.venv/bin/python -c "from harness.board_store import copy_store; print(copy_store('$RUNS', 'leaderboards/analysis/store'), 'files in leaderboards/analysis/store')"
