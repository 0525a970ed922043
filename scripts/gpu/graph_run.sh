#!/usr/bin/env bash
# On the GPU machine, from the repository root (carry: .whl with `fetch_wheels.sh full`):
#   bash scripts/gpu/graph_run.sh PROBLEM [RUN ARGS...]
# One offline agent-graph run (no archive: chromadb is not carried). Its run directory comes back as
# $OUT/run.tgz (the device returns no deeper folders than a few levels); unpack it here and render it with
# `kernelwright report runs/RUN_ID`.
set -uo pipefail
source scripts/gpu/env.sh
problem=$1; shift
mkdir -p /tmp/kw-runs
python3 -P -m kernelwright.cli run "$problem" --no-archive --runs-dir /tmp/kw-runs "$@" 2>&1 | tail -30
tar czf "$OUT/run.tgz" -C /tmp kw-runs
