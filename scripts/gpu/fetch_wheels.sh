#!/usr/bin/env bash
# Run HERE (the development machine), from the repository root: download the wheels the GPU machine lacks
# into .whl/ (ignored by git; carried to the device with `carry: [".whl"]`).
#   harness  (default): what kernelwright.tools and its GPU tests need beyond the device image (structlog)
#   full              : plus the agent stack (langgraph, langchain, chromadb, pydantic, ...) for graph runs
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
get() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" -d .whl "$@"; }
get structlog
if [ "${1:-harness}" = full ]; then
  get pydantic pydantic-core annotated-types typing-inspection langgraph langgraph-checkpoint langgraph-sdk \
      langgraph-prebuilt langgraph-checkpoint-sqlite langchain-core langchain-openai openai jsonpatch jsonpointer \
      langsmith orjson ormsgpack tenacity sqlite-vec aiosqlite distro jiter tiktoken platformdirs sniffio uuid-utils langchain-protocol websockets zstandard requests-toolbelt xxhash \
      httpx2 httpcore2 truststore h11 anyio idna  # openai 3.x speaks HTTP through httpx2
  get einops nvidia-cutlass  # KernelBench's Mamba problems import einops; CUTLASS headers for the GEMM kernels
fi
du -sh .whl
