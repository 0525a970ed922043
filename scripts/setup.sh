#!/usr/bin/env bash
# Create .venv and install kernelwright into it (editable, with test tools). Idempotent.
# torch: reuses a system torch if one is importable (GPU boxes ship a CUDA build);
# otherwise installs the CPU wheel on machines without an NVIDIA GPU and the default
# (CUDA) build where nvidia-smi sees one. A bare `torch` requirement would pull GBs.
# pip runs with --no-warn-conflicts: the venv sees the system's packages, and pip would report
# conflicts among those (not ours) as an ERROR after a good install. scripts/check_install.py
# checks our own dependency tree instead; a failed install or an unmet requirement of ours fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv --system-site-packages .venv
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "$VPY" -m pip install -q --no-warn-conflicts torch
  else
    "$VPY" -m pip install -q --no-warn-conflicts torch==2.13.0
  fi
fi
if ! "$VPY" -c "import kernelwright.tools, pytest, xdist, structlog, typer, pydantic, langchain_openai, langgraph, langgraph.checkpoint.sqlite, selenium, mypy, ruff, ray" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.kernelwright-installed ]; then
  "$VPY" -m pip install -q --no-warn-conflicts -e '.[dev,ray]'
  "$VPY" scripts/check_install.py 'kernelwright[dev,ray]'
  touch .venv/.kernelwright-installed
fi
