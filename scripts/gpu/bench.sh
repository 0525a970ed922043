#!/usr/bin/env bash
# On the GPU machine, from the repository root (carry: .whl runs/kb runs/bench_kb):
#   bash scripts/gpu/bench.sh SECONDS PATH [BENCH_ARGS...]      e.g. bash scripts/gpu/bench.sh 540 runs/kb/level2
# `kernelwright bench PATH --out runs/bench_kb --resume` for at most SECONDS (stopped with SIGINT, so the problem in
# flight gets no row and the next call redoes it). runs/bench_kb comes back as $OUT/bench_kb.tgz: unpack it in the
# repo root here and carry it again to go on. runs/kb is a copy of ../shared/kernelbench (levels 1-3).
# The H100 table in progress is kept in eval/measured/bench_kb_h100 (bench.json, results/, summary): to go on with
# it, `cp -r eval/measured/bench_kb_h100 runs/bench_kb` before the call, pass the same flags (bench.json records them:
# --generations 1, and KERNELWRIGHT_HARNESS__PROFILE=false KERNELWRIGHT_AGENTS__OFFLINE_PREVIEW=false
# KERNELWRIGHT_AGENTS__OFFLINE_FILL=0 before the command: that folder predates both defaults), and copy bench.json,
# results/ and summary.* back after unpacking.
# BENCH_DIR=runs/bench_kb1 before the command picks another folder (one per table: a folder's bench.json fixes its
# settings, e.g. level 1 runs with the offline_preview families that level 3's table ran without).
# Level 1 goes on in runs/bench_kb1f (offline_fill on; eval/measured/bench_kb1f_h100), with the problems that neither
# level-1 folder holds: copy the folder to runs/bench_kb1f, then, on either machine,
#   ls runs/kb/level1/*.py | grep -v -F -f <(ls eval/measured/bench_kb1*_h100/results/*/*.json | xargs -n1 basename | sed 's|^|/|; s|json$|py|')
# lists them (pass them after the first path argument, as the folder's bench.json records).
# --lanes-per-gpu 2 (not a search setting: a resume may add it) ran level 2 at ~24 s a problem on an H100, where one
# lane took ~45 s (session 19). The `--precision kernelbench` tables (KernelBench's tolerance, TF32 allowed as in
# PyTorch's defaults) go in folders of their own, e.g. BENCH_DIR=runs/bench_kbk with `--precision kernelbench`
# (a folder's profile is fixed by its bench.json; --resume refuses another). Level 3 under that profile goes on in
# runs/bench_kbk (eval/measured/bench_kbk_h100, 23 of 40 in session 20, three lanes). CUDA graphs
# (KERNELWRIGHT_AGENTS__OFFLINE_GRAPHS=1, a compared setting) need a folder of their own too, e.g. runs/bench_kbkg;
# so do kept channels-last convolution outputs (KERNELWRIGHT_AGENTS__OFFLINE_CHANNELS_LAST_KEPT=1, runs/bench_kbkcl).
# Level 2 under the kernelbench profile goes on in runs/bench_kbk2 (eval/measured/bench_kbk2_h100, 28 of 80 in
# session 21, three lanes); level 3's (runs/bench_kbk) is complete.
# Whether lanes disturb launch-bound timings: python3 -P -m kernelwright.eval.bench.launch_noise
# runs/kb/level3/9_ResNet18.py --out $OUT/noise.json (after `source scripts/gpu/env.sh`; about a minute).
set -uo pipefail
source scripts/gpu/env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
LIMIT=${1:?seconds}; TARGET=${2:?problem folder or file}; shift 2
DIR=${BENCH_DIR:-runs/bench_kb}; NAME=$(basename "$DIR")
timeout --signal=INT --kill-after=30 "$LIMIT" python3 -P -m kernelwright.cli bench "$TARGET" --out "$DIR" \
  --resume "$@" 2>&1 | grep --line-buffered -v "\[debug\|\[info " > "$OUT/$NAME.log"
tar czf "$OUT/$NAME.tgz" "$DIR"
cp "$DIR/summary.md" "$OUT/" 2>/dev/null
tail -30 "$OUT/$NAME.log"
