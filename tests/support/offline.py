"""Shared pieces of the offline-translator tests: the suite (repo's eval/suite, or KERNELWRIGHT_SUITE_DIR), the
fixture problems, and the parts of a candidate file the tests read and build."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

from support.paths import FIXTURES, ROOT

BUILD_ARCH = "sm_90a"  # what the nvcc-only tests build for (no GPU to ask)


def suite_dir() -> Path:
    return Path(os.environ.get("KERNELWRIGHT_SUITE_DIR") or ROOT / "eval" / "suite")


def suite_problems() -> list[Path]:
    return sorted(p for p in suite_dir().glob("*.py") if p.name[:1].isdigit())


def fixture_problems() -> list[Path]:
    """Translatable fixtures: the offline feature problems, the harness fixtures and the example."""
    skip = {"data_dependent.py", "only_sort.py"}  # untraceable / nothing to generate: tested separately
    paths = sorted((FIXTURES / "offline").glob("*.py")) + sorted((FIXTURES / "problems").glob("*.py"))
    return [p for p in paths if p.name not in skip] + [ROOT / "examples" / "relu" / "problem.py"]


def cuda_of(source: str) -> str:
    """The CUDA a candidate file builds."""
    match = re.search(r'_KW_CUDA_SRC = r"""(.*?)"""', source, re.S)
    assert match, "candidate has no _KW_CUDA_SRC"
    return match.group(1)


def headers_of(source: str) -> tuple[str, ...]:
    """The header-only libraries the candidate's load_cuda call names ("cutlass"), in order."""
    match = re.search(r"\}, headers=(\(.*?\))\)", source)
    return tuple(ast.literal_eval(match.group(1))) if match else ()


def build_options_of(source: str, arch: str) -> Any:
    """The NvccOptions load_cuda builds the candidate with (its header libraries included), for `arch`: a test's
    build of the candidate's CUDA is then the one its import finds in the cache."""
    from kernelwright.tools.compile.header_libraries import build_options
    from kernelwright.tools.compile.nvcc import NvccOptions

    includes, flags = build_options(headers_of(source))
    return NvccOptions(arch=arch, include_dirs=includes, extra_flags=flags)


def default_and_corner_sources(path: Path, traced: Any, plans: Any) -> dict[str, str]:
    """The fused candidate's CUDA (with the error helper load_cuda adds) at default tunables and at the far corner
    of the pool space (the smallest BLOCK, the most outputs a thread), keyed "<problem>/<label>"."""
    from kernelwright.agents.offline.propose import render
    from kernelwright.agents.offline.space import plan_space
    from kernelwright.tools.compile.raw_kernel import _ERROR_HELPER

    space = plan_space(plans[0])
    corner = {**space.defaults(), **{d.name: d.choices[0 if d.name.endswith(".BLOCK") else -1]
                                     for d in space.dims if d.name.endswith((".BLOCK", ".OPT"))}}
    return {f"{path.stem}/{label}": cuda_of(render(traced, plans, params, "fused")) + _ERROR_HELPER
            for label, params in (("default", space.defaults()), ("corner", corner))}


def failed_builds(sources: dict[str, str], cache_dir: Path, arch: str = "sm_90a") -> dict[str, str]:
    """Build every CUDA source with real nvcc (two jobs); {key: the tail of nvcc's output} for those that failed."""
    from kernelwright.tools.compile.nvcc import NvccCompiler, NvccOptions

    results = NvccCompiler(cache_dir=cache_dir, jobs=2).compile_many([(src, NvccOptions(arch=arch))
                                                                     for src in sources.values()])
    return {key: getattr(r, "stderr", "")[-2000:] for key, r in zip(sources, results) if not hasattr(r, "artifact")}


def kernel_names(source: str) -> set[str]:
    """The kw_ kernels (__global__ functions) a candidate's CUDA defines."""
    return set(re.findall(r"__global__ void (?:__launch_bounds__\(.*?\) )?(kw_\w+)\(", cuda_of(source)))
