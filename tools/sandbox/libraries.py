"""Shared libraries a candidate brought into its worker: the kernels it launches from them are its own."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import torch

from kernelwright.tools.compile.nvcc import default_cache_dir


def loaded_libraries() -> set[str]:
    try:
        text = Path("/proc/self/maps").read_text()
    except OSError:
        return set()
    return {line.split()[-1] for line in text.splitlines() if ".so" in line and line.split()[-1].startswith("/")}


def candidate_libraries(before: set[str]) -> set[str]:
    """Shared libraries the candidate brought in: new since its import began, or built into a kernel cache
    (a reused worker has a repeated candidate's library loaded already)."""
    caches = (str(default_cache_dir()), os.path.join(os.path.expanduser("~"), ".cache", "torch_extensions"),
              os.environ.get("TORCH_EXTENSIONS_DIR") or "//none")
    python_dirs = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})
    skip = (os.path.dirname(torch.__file__), "/usr/local/cuda", "/usr/lib", "/lib", *python_dirs)
    loaded = loaded_libraries()
    new = {lib for lib in loaded - before if not lib.startswith(skip) and "/nvidia/" not in lib}
    return new | {lib for lib in loaded if lib.startswith(caches)}
