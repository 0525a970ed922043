"""The candidates' own GEMMs on a GPU.

In process, against a float64 reference, at the harness's per-element tolerances (inputs in [0, 1), as
KernelBench's GEMM problems draw them, so no output is a cancellation near zero): every operand order
(transposes are layouts), odd sizes (4-byte loads), batched and broadcast products, serial split-K,
triangles with diagonal offsets, the matrix-vector kernel's vector and scalar paths, bf16 and fp16, and the
fixtures of tests/fixtures/gemm at full size.

Through the real harness (verification, integrity checks, timing): square fp32, batched, transposed, tall-skinny,
triangular and bf16 problems pass with kernels of the candidate's own and no library kernel. The square fp32 GEMM
(4096^3) must be at least 1.3x faster than eager fp32 (cuBLAS without TF32): 3xTF32 on the SM80-style tensor-core
path is expected near 2x on an H100; 1.3x is the floor below which something is wrong (a spilling tile, a
fallback), not the target (the issue's target, 1.5x over eager on every fp32 GEMM problem, is a benchmark figure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from kernelwright.agents.offline import propose
from kernelwright.agents.offline.tune import tune
from kernelwright.tools.harness.evaluate import Evaluator
from kernelwright.tools.sandbox.pool import WorkerOptions
from support.gemm import CASES, LEVEL1, GemmCase, case_problem, fixture_gemm_problems
from support.gpu_checks import FAST_HARNESS, assert_close_to_float64, passes_on_its_own_kernel, run_against_float64

pytestmark = [pytest.mark.gpu, pytest.mark.nvcc, pytest.mark.slow, pytest.mark.timeout(1800)]
SQUARE_FP32_MIN_SPEEDUP = 1.3


def _run_both(problem: Path, params: dict[str, Any], tmp_path: Path) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(the candidate's output, the float64 reference, the candidate source) on the problem's own inputs."""
    (cand,) = [c for c in propose(problem, params=params) if c.variant == "fused"]
    (out,), ref = run_against_float64(problem, cand.write(tmp_path / "candidate.py"),
                                      f"gemm_{problem.stem}_{abs(hash(str(params)))}")
    return out, ref, cand.source


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gemm_kernels_match_float64(case: GemmCase, cache_env: Path, tmp_path: Path) -> None:
    out, ref, source = _run_both(case_problem(case, tmp_path), case.params, tmp_path)
    assert "_kw_lib.kw_gem" in source
    assert_close_to_float64(out, ref)


@pytest.mark.parametrize("problem", fixture_gemm_problems(), ids=lambda p: p.stem)
def test_fixture_gemms_at_full_size_match_float64(problem: Path, cache_env: Path, tmp_path: Path) -> None:
    out, ref, _ = _run_both(problem, {}, tmp_path)
    assert_close_to_float64(out, ref)


FIXTURES_GEMM = {p.stem: p for p in fixture_gemm_problems()}
HARNESS = [FIXTURES_GEMM["square_fp32"], FIXTURES_GEMM["bf16_matmul"]]
HARNESS += [p for p in (LEVEL1 / n for n in ("3_Batched_matrix_multiplication.py", "17_Matmul_with_transposed_B.py",
                                             "18_Matmul_with_transposed_both.py",
                                             "9_Tall_skinny_matrix_multiplication_.py",
                                             "14_Matmul_for_upper_triangular_matrices.py")) if p.exists()]


@pytest.mark.parametrize("problem", HARNESS, ids=lambda p: p.stem)
def test_gemm_candidates_pass_the_harness_on_their_own_kernels(problem: Path, worker_options: WorkerOptions,
                                                               tmp_path: Path) -> None:
    (cand,) = propose(problem)
    report = passes_on_its_own_kernel(problem, cand.write(tmp_path / "fused.py"), worker_options, "kw_gem",
                                      f"{problem.stem} (fp32 eager: cuBLAS without TF32)")  # no cuBLAS: ours
    assert report.speedup_vs_eager is not None and report.speedup_vs_eager > 0
    if problem.stem == "square_fp32":
        assert report.speedup_vs_eager >= SQUARE_FP32_MIN_SPEEDUP, report.speedup_vs_eager


def test_tuning_a_gemm_searches_tiles_and_returns_a_verified_best(worker_options: WorkerOptions, tmp_path: Path) -> None:
    problem = FIXTURES_GEMM["large_k"]
    with Evaluator(problem, FAST_HARNESS, worker_options) as ev:
        result = tune(problem, lambda p: ev.evaluate(p).to_dict(), budget=5, out_dir=tmp_path, seed=3)
    assert result.best is not None and result.best.passed, [t.to_dict() for t in result.history]
    tried = {t.params.get("h0.TILE") for t in result.history} | {t.params.get("h0.SPLITK") for t in result.history}
    assert len(tried) > 2, [t.params for t in result.history]
    assert all(t.status == "passed" for t in result.history), [(t.params, t.status, t.reason) for t in result.history]
