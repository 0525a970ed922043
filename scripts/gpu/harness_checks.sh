#!/usr/bin/env bash
# On the GPU machine, from the repository root (carry: .whl runs/kb runs/l1_prep):
#   bash scripts/gpu/harness_checks.sh TESTS_S BENCH_S [BENCH_ARGS...]
# 1. the harness's GPU tests (every cheating fixture, the honest ones, hang detection) within TESTS_S seconds;
# 2. the harness benchmark over KernelBench level 1 (resumable) within BENCH_S seconds.
# Logs and the benchmark's results come back under $OUT (bench_l1.tgz: unpack it in the repo root to resume).
set -uo pipefail
source scripts/gpu/env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
TESTS_S=${1:-300}; BENCH_S=${2:-0}; shift 2 || true
if [ "$TESTS_S" -gt 0 ]; then
  timeout "$TESTS_S" python3 -P -m pytest -q -rA -p no:cacheprovider tests/tools/test_gpu_harness.py -s "$@" 2>&1 \
    | grep --line-buffered -v "\[debug\|\[info " > "$OUT/gpu_tests.log"
  grep -E "passed|failed|FAILED|ERROR|hang caught|Error" "$OUT/gpu_tests.log" | tail -45
fi
if [ "$BENCH_S" -gt 0 ]; then
  python3 -P -m kernelwright.eval.bench.harness --problems runs/kb/level1 --candidates runs/l1_prep/candidates \
    --out runs/bench_l1 --time-budget-s "$BENCH_S" 2>&1 | grep --line-buffered -v "\[debug\|\[info " > "$OUT/bench_l1.log"
  tar czf "$OUT/bench_l1.tgz" runs/bench_l1
  cp runs/bench_l1/summary.md "$OUT/" 2>/dev/null
  tail -25 "$OUT/bench_l1.log"
fi
