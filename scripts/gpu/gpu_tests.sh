#!/usr/bin/env bash
# On the GPU machine, from the repository root (carry: .whl):
#   bash scripts/gpu/gpu_tests.sh SECONDS [PYTEST_ARGS...]
# Every GPU-marked test except the harness's own (harness_checks.sh runs those), within SECONDS.
# KERNELBENCH_DIR=runs/kb points tests that read KernelBench at the carried copy.
# Modules that need chromadb (not carried: its wheels are too big) fail to collect there and are passed over.
# -s: a test's printed figures (speedups) reach the log as it runs, not only in the summary a time limit can cut.
# Extra arguments go to pytest (e.g. a test file to rerun just that one). The log comes back as $OUT/gpu_tests_all.log.
set -uo pipefail
source scripts/gpu/env.sh
SECONDS_LIMIT=${1:-300}; shift || true
TARGETS=("$@"); [ ${#TARGETS[@]} -eq 0 ] && TARGETS=(tests --ignore=tests/tools/test_gpu_harness.py)
[ -d runs/kb ] && export KERNELBENCH_DIR=${KERNELBENCH_DIR:-$PWD/runs/kb}
timeout "$SECONDS_LIMIT" python3 -P -m pytest -v -s -rA -p no:cacheprovider --continue-on-collection-errors -m gpu "${TARGETS[@]}" 2>&1 \
  | grep --line-buffered -v "\[debug\|\[info " > "$OUT/gpu_tests_all.log"
grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" "$OUT/gpu_tests_all.log" | tail -90
