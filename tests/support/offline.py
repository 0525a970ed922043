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


def assert_builds_for_sm_90a(source: str, cache_dir: Path) -> None:
    """A candidate file's CUDA (with load_cuda's error helper and its header libraries) built by real nvcc for
    sm_90a; the build's error otherwise."""
    from kernelwright.tools.compile.nvcc import NvccCompiler
    from kernelwright.tools.compile.raw_kernel import _ERROR_HELPER

    (result,) = NvccCompiler(cache_dir=cache_dir, jobs=1).compile_many(
        [(cuda_of(source) + _ERROR_HELPER, build_options_of(source, BUILD_ARCH))])
    assert not isinstance(result, Exception), result
    assert result.artifact.exists()


def harness_failures(problem: Path, sources: dict[str, str], tmp_path: Path, build_cache: Path,
                     precision: str = "strict") -> list[tuple[Any, ...]]:
    """Each candidate source (by label) of `problem` through the real harness on a GPU, with short timing, under
    the precision profile `precision`; prints each verdict and speedup over eager (run pytest with -s to see them)
    and returns (problem, label, reason, message) for those that did not pass."""
    from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
    from kernelwright.tools.measure.timing import BenchSettings
    from kernelwright.tools.sandbox.pool import WorkerOptions

    settings = EvalSettings(call_timeout_s=60.0, compile_baseline=False, precision=precision,
                            bench=BenchSettings(rep_ms=50.0, min_trials=30, max_total_ms=2000.0))
    failed = []
    with Evaluator(problem, settings, WorkerOptions(env={"KERNELWRIGHT_CACHE_DIR": str(build_cache)})) as ev:
        for label, source in sources.items():
            path = tmp_path / f"{problem.stem}_{label}.py".replace(" ", "_")
            path.write_text(source)
            report = ev.evaluate(path)
            print(f"{problem.stem} {label}: {report.status} {report.reason} {report.speedup_vs_eager}")
            if report.status != "passed":
                failed.append((problem.stem, label, report.reason, report.message))
    return failed
