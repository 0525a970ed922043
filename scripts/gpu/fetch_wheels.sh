#!/usr/bin/env bash
# Run HERE (the development machine), from the repository root: download the wheels the GPU machine lacks
# into .whl/ (ignored by git; carried to the device with `carry: [".whl"]`).
#   harness  (default): what kernelwright.tools and its GPU tests need beyond the device image (structlog)
#   full              : plus the agent stack (langgraph, langchain, pydantic, ...) for graph runs (not chromadb: too big;
#                       the archive stays off there)
#   ray               : full without CUTLASS's headers, plus Ray Core (the wheel slimmed by slim_ray_wheel.py) and its
#                       dependencies, for the Ray executor's GPU test; ~62 MB, just under the 64 MiB carry
#   all               : ray plus CUTLASS's headers, less zstandard (optional to httpx and langsmith): ~64 MB, so
#                       carried with runs/kb (0.3 MB) it just fits beside the working tree (4 MB); one call can then
#                       run the Ray benchmark and CUTLASS GEMMs
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
get() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" -d .whl "$@"; }
get structlog
if [ "${1:-harness}" != harness ]; then
  get pydantic pydantic-core annotated-types typing-inspection langgraph langgraph-checkpoint langgraph-sdk \
      langgraph-prebuilt langgraph-checkpoint-sqlite langchain-core langchain-openai openai jsonpatch jsonpointer \
      langsmith orjson ormsgpack tenacity sqlite-vec aiosqlite distro jiter tiktoken platformdirs sniffio uuid-utils langchain-protocol websockets zstandard requests-toolbelt xxhash \
      httpx2 httpcore2 truststore h11 anyio idna  # openai 3.x speaks HTTP through httpx2
  get einops  # KernelBench's Mamba problems import einops
fi
if [ "${1:-harness}" = full ] || [ "${1:-harness}" = all ]; then
  [ "$1" = full ] && rm -f .whl/ray-*.whl  # the two sets together would not fit the carry
  get nvidia-cutlass  # CUTLASS headers for the GEMM kernels
fi
if [ "${1:-harness}" = ray ] || [ "${1:-harness}" = all ]; then
  [ "$1" = ray ] && rm -f .whl/nvidia_cutlass-*.whl
  get ray msgpack pyyaml jsonschema jsonschema-specifications referencing rpds-py attrs requests urllib3 certifi \
      charset-normalizer
  python3 scripts/gpu/slim_ray_wheel.py .whl/ray-*.whl
fi
[ "${1:-harness}" = all ] && rm -f .whl/zstandard-*.whl
du -sh .whl
