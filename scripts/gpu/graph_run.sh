#!/usr/bin/env bash
# On the GPU machine, from the repository root (carry: .whl with `fetch_wheels.sh full`):
#   bash scripts/gpu/graph_run.sh PROBLEM [RUN ARGS...]
# One offline agent-graph run (no archive: chromadb is not carried) into $OUT/runs, for the report and trace
# to be rendered back on the development machine (`kernelwright report RUN_DIR`).
set -uo pipefail
source scripts/gpu/env.sh
problem=$1; shift
python3 -P -m kernelwright.cli run "$problem" --no-archive --runs-dir "$OUT/runs" "$@" 2>&1 | tail -30
