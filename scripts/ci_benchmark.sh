#!/usr/bin/env bash
# The CI benchmark, run unchanged by a developer and by .github/workflows/benchmark.yml:
#   scripts/ci_benchmark.sh                         set up, benchmark, write board-ci/ (GITHUB.md, pages, heatmaps)
#   scripts/ci_benchmark.sh --base BASE_RUN_STORE   ... and fail (exit 1) when a primary metric regresses
# Other options: harness ci --help. Finished stages are reused from runs-ci/, cache/ and data/synth/.
set -euo pipefail
cd "$(dirname "$0")/.."
./run setup
exec .venv/bin/harness ci "$@"
