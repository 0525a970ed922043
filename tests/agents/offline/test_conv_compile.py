"""The conv candidates (offline_preview on) build with nvcc (sm_90a) against the CUTLASS headers, without register
spills, their kernels are found by name in the candidate's library (how the harness tells them from library
kernels), and they import. One build per fixture of tests/fixtures/conv (2-D, 3-D, 1-D, bf16 dilated, transposed
2-D strided, transposed 3-D dilated, padded channels, grouped, zero-inserted transposed): about 80 s for the 14
on the 2-core dev box."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernelwright.tools.compile.nvcc import CompileResult, NvccCompiler
from kernelwright.tools.compile.raw_kernel import _ERROR_HELPER
from kernelwright.tools.problem.files import check_source, import_file
from kernelwright.tools.verify.kernel_trace import library_symbols
from support.conv import fixture_conv_problems, propose_conv
from support.offline import BUILD_ARCH, build_options_of, cuda_of, kernel_names

pytestmark = [pytest.mark.nvcc, pytest.mark.timeout(900)]


def test_every_conv_fixture_candidate_compiles_without_spills_and_imports(arch_cache: Path, tmp_path: Path) -> None:
    problems = fixture_conv_problems()
    candidates = [propose_conv(p)[0] for p in problems]
    sources = [c.source for c in candidates]
    compiler = NvccCompiler(cache_dir=arch_cache, jobs=max(2, os.cpu_count() or 2))
    results = compiler.compile_many([(cuda_of(s) + _ERROR_HELPER, build_options_of(s, BUILD_ARCH)) for s in sources])
    for problem, cand, result in zip(problems, candidates, results):
        assert isinstance(result, CompileResult), f"{problem.stem}: {result}"
        ours = [r for r in result.resources if "kw_conv" in r.name]
        assert ours, problem.stem
        assert not [r.name[:80] for r in ours if r.spill_store_bytes], problem.stem
        kernels = kernel_names(cand.source)
        assert kernels and kernels <= library_symbols([str(result.artifact)]), (problem.stem, kernels)
    module = import_file(check_source(candidates[0].write(tmp_path / "candidate.py"), "candidate"), "kw_conv_candidate")
    assert [name for name in vars(module._kw_lib) if name.startswith("kw_conv")]


def test_the_plain_tf32_convs_compile_without_spills(arch_cache: Path) -> None:
    """Under a TF32-admitting profile (kernelbench) an fp32 conv runs CUTLASS's plain TF32 kernel: 2-D, 3-D and a
    transposed one build for sm_90a and hold their accumulators without spills."""
    fixtures = {p.stem: p for p in fixture_conv_problems()}
    sources = [propose_conv(fixtures[name], allow_tf32=True)[0].source
               for name in ("conv2d_bias", "conv3d_fp32", "conv_transpose2d_strided")]
    compiler = NvccCompiler(cache_dir=arch_cache, jobs=max(2, os.cpu_count() or 2))
    results = compiler.compile_many([(cuda_of(s) + _ERROR_HELPER, build_options_of(s, BUILD_ARCH)) for s in sources])
    assert len(results) == len(sources)
    for result in results:
        assert isinstance(result, CompileResult), result
        ours = [r for r in result.resources if "kw_conv" in r.name and "_tf32_" in r.name]
        assert ours and not [r.name[:80] for r in ours if r.spill_store_bytes]
