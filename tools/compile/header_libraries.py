"""Header-only CUDA libraries a candidate's source may include, and where their headers are.

A raw-form candidate names the libraries it includes (`load_cuda(src, launchers, headers=("cutlass",))`);
this module is the one owner of where each library's headers live and which nvcc flags its templates need,
so the compile cache, the harness's workers and the tests all build with the same include path.

CUTLASS comes from the `nvidia-cutlass` wheel (a dependency of kernelwright): its C++ headers (cutlass/, cute/)
ship inside the wheel's `cutlass_library` package, under source/include. The package is only located, never
imported (importing it pulls in its Python generator and CUDA bindings, which a build does not need).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from kernelwright.tools.errors import ToolUnavailable


@dataclass(frozen=True, slots=True)
class HeaderLibrary:
    name: str
    include_dirs: tuple[str, ...]
    nvcc_flags: tuple[str, ...]


# CUTLASS's templates call constexpr host functions from device code (cute, numeric_types): nvcc needs this flag.
CUTLASS_NVCC_FLAGS = ("--expt-relaxed-constexpr",)
CUTLASS_WHEEL = "nvidia-cutlass"
_CUTLASS_PACKAGE = "cutlass_library"  # the wheel's top-level package that carries the headers


def header_library(name: str) -> HeaderLibrary:
    """The include dirs and nvcc flags of one library; ToolUnavailable when it is not installed, ValueError when
    the name is not a library this module knows."""
    if name == "cutlass":
        return HeaderLibrary("cutlass", (str(cutlass_include_dir()),), CUTLASS_NVCC_FLAGS)
    raise ValueError(f"unknown header library {name!r}; known: {', '.join(KNOWN_LIBRARIES)}")


KNOWN_LIBRARIES = ("cutlass",)


def build_options(names: tuple[str, ...] | list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(include dirs, nvcc flags) for the named libraries, in order and without repeats."""
    includes: dict[str, None] = {}
    flags: dict[str, None] = {}
    for name in names:
        lib = header_library(name)
        includes.update(dict.fromkeys(lib.include_dirs))
        flags.update(dict.fromkeys(lib.nvcc_flags))
    return tuple(includes), tuple(flags)


@functools.lru_cache(maxsize=1)
def cutlass_include_dir() -> Path:
    """The folder holding cutlass/ and cute/ (from the installed nvidia-cutlass wheel)."""
    spec = importlib.util.find_spec(_CUTLASS_PACKAGE)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        include = Path(root) / "source" / "include"
        if (include / "cutlass" / "cutlass.h").is_file():
            return include
    found = f"found {_CUTLASS_PACKAGE} at {', '.join(roots)} but without source/include/cutlass/cutlass.h" if roots \
        else f"the Python package {_CUTLASS_PACKAGE} is not installed"
    raise ToolUnavailable(f"CUTLASS headers not found ({found}); install them with `pip install {CUTLASS_WHEEL}` "
                          f"(a dependency of kernelwright: `pip install -e .` in the checkout installs it)",
                          where="cutlass headers")
