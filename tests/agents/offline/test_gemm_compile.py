"""The GEMM candidates build with nvcc (sm_90a) against the CUTLASS headers, without register spills, and import
(load_cuda binds their launchers from the cache). A representative few in the default run; every level-1
GEMM problem's candidate, every fixture's, and every tile of the tuner's space in the slow ones.

Measured on the 2-core dev box with nvcc 13.0: one CUTLASS GEMM configuration compiles in 8-17 s (fp32
3xTF32 and bf16 alike), a matrix-vector kernel in about 1 s; the content-addressed cache then serves every
candidate of the same configuration (sizes are launcher arguments).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernelwright.agents.offline.codegen_gemm import MATH
from kernelwright.tools.compile.nvcc import CompileResult, NvccCompiler
from kernelwright.tools.compile.raw_kernel import _ERROR_HELPER
from kernelwright.tools.problem.files import check_source, import_file
from kernelwright.tools.verify.kernel_trace import library_symbols
from support.gemm import (
    LEVEL1,
    fixture_gemm_problems,
    level1_gemm_problems,
    propose_lazily,
    traced_lazily,
)
from support.offline import BUILD_ARCH, build_options_of, cuda_of, kernel_names

pytestmark = [pytest.mark.nvcc]
REPRESENTATIVE = ("square_fp32", "bf16_matmul", "vector_matrix")  # fp32 3xTF32, bf16, matrix-vector


def _build(sources: list[str], cache: Path) -> list[CompileResult]:
    compiler = NvccCompiler(cache_dir=cache, jobs=max(2, os.cpu_count() or 2))
    results = compiler.compile_many([(cuda_of(s) + _ERROR_HELPER, build_options_of(s, BUILD_ARCH)) for s in sources])
    for source, result in zip(sources, results):
        assert isinstance(result, CompileResult), (f"{source.splitlines()[0]}\n{result}\n"
                                                   f"{getattr(result, 'stderr', '')[-3000:]}")
    return [r for r in results if isinstance(r, CompileResult)]


def _assert_no_spills(result: CompileResult) -> None:
    ours = [r for r in result.resources if "kw_gem" in r.name]
    assert ours, [r.name[:80] for r in result.resources]
    spilled = [(r.name[:80], r.spill_store_bytes) for r in ours if r.spill_store_bytes]
    assert not spilled, spilled



def test_representative_gemm_candidates_compile_without_spills_and_import(arch_cache: Path, tmp_path: Path) -> None:
    problems = [p for p in fixture_gemm_problems() if p.stem in REPRESENTATIVE]
    assert [p.stem for p in problems] == sorted(REPRESENTATIVE)
    candidates = [propose_lazily(p)[0] for p in problems]
    for cand, result in zip(candidates, _build([c.source for c in candidates], arch_cache)):
        _assert_no_spills(result)
        # the harness counts a kernel as the candidate's own when `nm` finds its name in the candidate's library
        kernels = kernel_names(cand.source)
        assert kernels and kernels <= library_symbols([str(result.artifact)]), kernels
    for problem, cand in zip(problems, candidates):
        module = import_file(check_source(cand.write(tmp_path / f"{problem.stem}.py"), "candidate"), f"kw_gemm_candidate_{problem.stem}")
        launchers = [name for name in vars(module._kw_lib) if name.startswith("kw_gem")]
        assert launchers, problem.stem
        assert module.ModelNew is not None


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_gemm_candidate_compiles_without_spills(arch_cache: Path) -> None:
    problems = level1_gemm_problems() + fixture_gemm_problems()
    if not level1_gemm_problems():
        pytest.skip(f"the KernelBench dev split is not at {LEVEL1}")
    sources = [c.source for p in problems for c in propose_lazily(p)]
    for result in _build(sources, arch_cache):
        if any("kw_gem" in r.name for r in result.resources):
            _assert_no_spills(result)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("problem_name", ["square_fp32", "bf16_matmul"])
def test_every_tile_of_the_tuners_space_compiles_without_spills(problem_name: str, arch_cache: Path) -> None:
    from kernelwright.agents.offline.propose import tuning_target

    problem = next(p for p in fixture_gemm_problems() if p.stem == problem_name)
    target = tuning_target(traced_lazily(problem), "fused")
    assert target is not None
    tiles = next(d.choices for d in target.space.dims if d.name.endswith(".TILE"))
    assert tiles == MATH["float32" if problem_name == "square_fp32" else "bfloat16"].tiles
    sources = [target.render({**target.space.defaults(), "h0.TILE": tile}) for tile in tiles]
    for result in _build(sources, arch_cache):
        _assert_no_spills(result)


@pytest.mark.parametrize("main", ["sm90", "sm90c", "sm90w"])
def test_the_sm90_split_gemm_builds_without_spills(main: str, arch_cache: Path) -> None:
    """The Hopper 3xTF32-as-one-TF32-GEMM kernel (agents/offline/gemm_sm90_split.py) in each configuration, as a
    candidate with MAIN set to it carries it: CUTLASS 3.x's collective builders instantiate a TF32 wgmma kernel for
    sm_90a; it and the split copy hold their registers, and both are found by their plain names in the library (what
    the kernel policy counts as the candidate's own)."""
    from kernelwright.agents.offline.gemm_sm90_split import SM90_CONFIGS
    from kernelwright.agents.offline.propose import tuning_target

    target = tuning_target(traced_lazily(next(p for p in fixture_gemm_problems() if p.stem == "square_fp32")), "fused")
    assert target is not None
    (result,) = _build([target.render({"h0.MAIN": main})], arch_cache)
    suffix = SM90_CONFIGS[main].suffix
    kernels = {f"kw_sm90{suffix}_split_operand", f"kw_sm90{suffix}_split_tf32_gemm"}  # the split copy, the GEMM
    names = {r.name for r in result.resources}
    assert kernels <= names, names
    assert not [r.name[:80] for r in result.resources if r.spill_store_bytes]
    assert kernels <= library_symbols([str(result.artifact)])
