#!/usr/bin/env bash
# Type-check the package with mypy (settings in pyproject.toml [tool.mypy]). The top-level folders become
# kernelwright.<folder> only through setuptools' package-dir, so mypy gets that layout as a folder of links.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# a stable place, so mypy's cache stays valid between runs
layout=$root/.mypy_cache/package-layout
rm -rf "$layout"
mkdir -p "$layout/kernelwright"
for f in kernelwright/*; do ln -s "$root/$f" "$layout/kernelwright/"; done
for d in tools agents graphs prompts memory eval; do ln -s "$root/$d" "$layout/kernelwright/$d"; done
# report paths as they are in the repository (kernelwright/tools/x.py -> tools/x.py)
MYPYPATH="$layout" "${MYPY:-.venv/bin/mypy}" --config-file "$root/pyproject.toml" -p kernelwright "$@" \
  | sed -E "s#^\.mypy_cache/package-layout/kernelwright/(tools|agents|graphs|prompts|memory|eval)/#\\1/#; s#^\.mypy_cache/package-layout/##"
