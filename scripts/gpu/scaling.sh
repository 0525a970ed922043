#!/usr/bin/env bash
# On the GPU machine, from the repository root (carry: .whl with the `fetch_wheels.sh ray` set, and runs/kb, a copy of
# ../shared/kernelbench; runs/scaling too to go on with an earlier call):
#   bash scripts/gpu/scaling.sh SECONDS PATH [SCALING_ARGS...]     e.g. bash scripts/gpu/scaling.sh 540 runs/kb/level2
# `python -m kernelwright.eval.bench.scaling PATH --max-problems 6 --executors local,ray --generations 1
#  --population 32 --out runs/scaling --resume` for at most SECONDS: the bench over the first 6 problems and an agent run
# (population 32, offline translator) on the first, each with the local executor and with Ray, on 1 GPU and every power
# of two up to the visible GPUs (--gpu-counts 1,2 to choose). Stopped with SIGINT: finished configurations are kept,
# and the next call goes on. runs/scaling comes back as $OUT/scaling.tgz (unpack it in the repo root here and carry it
# again to go on); scaling.md and scaling.json (the table, the cards, the verdict check) also lie in $OUT.
# On one GPU the dimension to measure is lanes per GPU (the bench with the local executor only; later args win):
#   bash scripts/gpu/scaling.sh 540 runs/kb/level2 --gpu-counts 1 --lanes-per-gpu 1,2 --executors local --workloads bench
set -uo pipefail
source scripts/gpu/env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
LIMIT=${1:?seconds}; TARGET=${2:?problem folder or file}; shift 2
timeout --signal=INT --kill-after=90 "$LIMIT" python3 -P -m kernelwright.eval.bench.scaling "$TARGET" --max-problems 6 \
  --executors local,ray --generations 1 --population 32 --out runs/scaling --resume "$@" 2>&1 \
  | grep --line-buffered -v "\[debug\|\[info " > "$OUT/scaling.log"
status=${PIPESTATUS[0]}
tar czf "$OUT/scaling.tgz" runs/scaling
cp runs/scaling/scaling.md runs/scaling/scaling.json "$OUT/" 2>/dev/null
tail -40 "$OUT/scaling.log"
echo "scaling exit status: $status (0 done and agreeing, 1 verdicts disagree, 2 bad input, 4 a configuration failed, 130 stopped)"
