"""The conv candidates (offline_preview on) build with nvcc (sm_90a) against the CUTLASS headers, without register
spills, their kernels are found by name in the candidate's library (how the harness tells them from library
kernels), and they import. One build per fixture of tests/fixtures/conv (2-D, 3-D, 1-D, bf16 dilated, transposed
2-D strided, transposed 3-D dilated, padded channels, grouped, zero-inserted transposed): about 80 s for the 14
on the 2-core dev box."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernelwright.tools.compile.header_libraries import build_options
from kernelwright.tools.compile.nvcc import CompileResult, NvccCompiler, NvccOptions
from kernelwright.tools.compile.raw_kernel import _ERROR_HELPER
from kernelwright.tools.problem.files import check_source, import_file
from kernelwright.tools.verify.kernel_trace import library_symbols
from support.conv import fixture_conv_problems, propose_conv
from support.gemm import cuda_of, headers_of

ARCH = "sm_90a"
pytestmark = [pytest.mark.nvcc, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("conv-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("KERNELWRIGHT_CACHE_DIR", str(root))  # imported candidates' load_cuda builds into the same cache
    mp.setenv("KERNELWRIGHT_ARCH", ARCH)
    yield root / "build"
    mp.undo()


def test_every_conv_fixture_candidate_compiles_without_spills_and_imports(cache: Path, tmp_path: Path) -> None:
    problems = fixture_conv_problems()
    candidates = [propose_conv(p)[0] for p in problems]
    sources = [c.source for c in candidates]
    includes, flags = build_options(headers_of(sources[0]))
    options = NvccOptions(arch=ARCH, include_dirs=includes, extra_flags=flags)
    compiler = NvccCompiler(cache_dir=cache, jobs=max(2, os.cpu_count() or 2))
    results = compiler.compile_many([(cuda_of(s) + _ERROR_HELPER, options) for s in sources])
    for problem, cand, result in zip(problems, candidates, results):
        assert isinstance(result, CompileResult), f"{problem.stem}: {result}"
        ours = [r for r in result.resources if "kw_conv" in r.name]
        assert ours, problem.stem
        assert not [r.name[:80] for r in ours if r.spill_store_bytes], problem.stem
        kernels = set(re.findall(r"__global__ void (?:__launch_bounds__\(.*?\) )?(kw_\w+)\(", cuda_of(cand.source)))
        assert kernels and kernels <= library_symbols([str(result.artifact)]), (problem.stem, kernels)
    module = import_file(check_source(candidates[0].write(tmp_path / "candidate.py"), "candidate"), "kw_conv_candidate")
    assert [name for name in vars(module._kw_lib) if name.startswith("kw_conv")]
