"""Pure matrix-multiplication problems get GEMMs of the candidate's own (CPU side): every KernelBench level-1
problem 1-18 of the dev split gets a candidate whose forward launches its own kernels and calls no ATen GEMM,
the plan those kernels are written from agrees with the Model (the interpreter computes each GEMM from the
very numbers the launcher is given), the tuner searches the tile shapes, and fused chains are left alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from kernelwright.agents.offline import OfflineUnsupported, propose
from kernelwright.agents.offline.check import check_traced
from kernelwright.agents.offline.codegen_gemm import MATH, STAGE_CHOICES, Tile
from kernelwright.agents.offline.gemm_plan import gemm_launch, gemm_plan, matrix_layout
from kernelwright.agents.offline.ir import ElementwiseStep, GemmStep, HostStep, Layout
from kernelwright.agents.offline.planner import build_plan
from kernelwright.agents.offline.propose import plans_for, render, tuning_target
from kernelwright.agents.offline.space import plan_space
from kernelwright.agents.offline.trace import trace_problem
from support.gemm import (
    CASES,
    LEVEL1,
    GemmCase,
    case_problem,
    fixture_gemm_problems,
    level1_gemm_problems,
    propose_lazily,
    small_sizes,
    traced_forward,
    traced_lazily,
)
from support.offline import cuda_of, headers_of, suite_dir

LEVEL1_GEMMS = level1_gemm_problems()
needs_level1 = pytest.mark.skipif(not LEVEL1_GEMMS, reason=f"the KernelBench dev split is not at {LEVEL1}")
# What a forward must not call on its traced path: ATen's GEMMs, in any spelling the translator could write.
ATEN_GEMM = re.compile(r"torch\.ops\.aten\.(mm|bmm|matmul|addmm|baddbmm|addbmm|linear|einsum|mv|dot)\b"
                       r"|torch\.(mm|bmm|matmul|einsum|mv|dot)\(|\.matmul\(|functional\.linear\(|_kw_\w+_tf32x3\(| @ ")
ELEMENTWISE_ALREADY = {"5_Matrix_scalar_multiplication", "12_Matmul_with_diagonal_matrices_"}  # A * s, diag(a) @ B


@needs_level1
def test_the_dev_split_has_the_expected_gemm_problems() -> None:
    # 1, 6, 11 and 16 are in the withheld test split; if the split changes, the lists below are checked again
    assert [int(p.name.split("_")[0]) for p in LEVEL1_GEMMS] == [2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 14, 15, 17, 18]


@needs_level1
@pytest.mark.parametrize("problem", LEVEL1_GEMMS, ids=lambda p: p.stem)
def test_every_level1_gemm_problem_gets_a_candidate_that_runs_no_aten_gemm(problem: Path) -> None:
    traced = traced_lazily(problem)
    plan = plans_for(traced)["fused"][0]
    candidates = propose(problem, traced=traced)
    assert candidates, problem
    assert not [s for s in plan.steps if isinstance(s, HostStep)], [s.target for s in plan.steps]
    if problem.stem in ELEMENTWISE_ALREADY:
        assert all(isinstance(s, ElementwiseStep) for s in plan.steps)
    else:
        assert [type(s) for s in plan.steps] == [GemmStep], plan.steps
    for cand in candidates:
        forward = traced_forward(cand.source)
        assert not ATEN_GEMM.search(forward), (cand.variant, ATEN_GEMM.search(forward))
        assert re.search(r"_kw_lib\.kw_\w+\(", forward), forward
        assert cand.kept_aten_ops == ()


@needs_level1
@pytest.mark.parametrize("number, kernel", [(2, "kw_gemm_f32x3_rr_"), (17, "kw_gemm_f32x3_rc_"), (18, "kw_gemm_f32x3_cc_"),
                                            (3, "kw_gemm_f32x3_rr_"), (4, "kw_gemv_f32"), (8, "kw_gemm_f32x3_rr_a111_")])
def test_fp32_gemms_run_3xtf32_tensor_cores_with_transposes_as_layouts(number: int, kernel: str) -> None:
    problem = next(p for p in LEVEL1_GEMMS if p.name.startswith(f"{number}_"))
    (cand,) = propose_lazily(problem)
    cuda = cuda_of(cand.source)
    assert f"_kw_lib.{kernel}" in traced_forward(cand.source)
    assert "contiguous()" not in traced_forward(cand.source).split("_kw_dev =", 1)[1]  # no copies after the inputs
    if kernel.startswith("kw_gemm"):
        assert "cutlass::gemm::device::GemmUniversal<" in cuda and "cutlass::arch::OpMultiplyAddFastF32" in cuda
        assert headers_of(cand.source) == ("cutlass",)
    else:  # matrix-vector: a memory-bound kernel of its own, no CUTLASS to build
        assert "cutlass" not in cuda and headers_of(cand.source) == ()


@needs_level1
@pytest.mark.parametrize("number, triangle", [(14, "upper"), (15, "lower")])
def test_triangular_products_are_one_gemm_that_skips_the_zero_tiles(number: int, triangle: str) -> None:
    problem = next(p for p in LEVEL1_GEMMS if p.name.startswith(f"{number}_"))
    plan = plans_for(traced_lazily(problem))["fused"][0]
    (step,) = plan.steps
    assert isinstance(step, GemmStep) and (step.triangle, step.diagonal) == (triangle, 0)
    assert plan.kept_aten_ops == ()  # the aranges of torch's triu/tril decomposition are gone
    assert "kw_gemm_tile_outside" in cuda_of(propose(problem, traced=traced_lazily(problem))[0].source)


@pytest.mark.parametrize("problem", LEVEL1_GEMMS + fixture_gemm_problems(), ids=lambda p: p.stem)
def test_the_gemm_plan_agrees_with_the_model_at_small_sizes(problem: Path) -> None:
    overrides = small_sizes(problem)
    traced = trace_problem(problem, overrides=overrides)
    plan = build_plan(traced.program)
    gemm = gemm_plan(plan)
    if problem.stem in ELEMENTWISE_ALREADY:
        assert gemm is None  # nothing to rewrite: the elementwise plan stands
        return
    assert gemm is not None, plan.steps
    check = check_traced(traced, {"gemm": gemm}, overrides)
    assert check.passed, check.failures()


def test_fixtures_cover_the_withheld_categories_and_each_becomes_its_kernel() -> None:
    kinds = {}
    for problem in fixture_gemm_problems():
        plan = plans_for(traced_lazily(problem))["fused"][0]
        (step,) = plan.steps
        assert isinstance(step, GemmStep), problem
        launch = gemm_launch(step, plan.buffers)
        assert launch is not None
        kinds[problem.stem] = (launch.dtype, launch.a.order, launch.b.order, launch.batch, launch.gemv)
    assert kinds["transposed_a"][1:3] == ("col", "row")
    assert kinds["linear_nobias"][1:3] == ("row", "col")  # the weight read transposed, in place
    assert kinds["vector_matrix"][4] and kinds["large_k"][3] == 1
    assert kinds["tensor4d_matrix"][3] == 1  # (b, i, j) folded into M: one large GEMM
    assert kinds["fp16_bmm"][:1] == ("float16",) and kinds["fp16_bmm"][3] == 32
    assert kinds["bf16_matmul"][0] == "bfloat16"


def test_the_tuner_searches_tile_shapes_stages_and_split_k() -> None:
    problem = next(p for p in fixture_gemm_problems() if p.stem == "large_k")
    traced = traced_lazily(problem)
    target = tuning_target(traced, "fused")
    assert target is not None
    dims = {d.name: d for d in target.space.dims}
    assert dims["h0.TILE"].choices == MATH["float32"].tiles and dims["h0.TILE"].default == MATH["float32"].tiles[0]
    assert dims["h0.STAGES"].choices == STAGE_CHOICES
    # 256 x 256 output: 8 tiles of 128x64 for 132 SMs, so the default splits K 32 ways
    assert dims["h0.SPLITK"].default == 32 and 1 in dims["h0.SPLITK"].choices
    sources = {tile: target.render({**target.space.defaults(), "h0.TILE": tile}) for tile in dims["h0.TILE"].choices}
    assert len(set(sources.values())) == len(sources)  # every tile is a different kernel
    for tile, source in sources.items():
        assert f"_{tile}_s3(" in traced_forward(source)
        t = Tile.parse(tile)
        assert f"cutlass::gemm::GemmShape<{t.m}, {t.n}, {t.k}>, cutlass::gemm::GemmShape<{t.warp_m}, {t.warp_n}, {t.k}>" in cuda_of(source)
    split = render(traced, target.plans, {**target.space.defaults(), "h0.SPLITK": 4}, "fused")
    assert re.search(r", 4, 0, 0, 32, _kw_scratch\)", traced_forward(split)), traced_forward(split)  # 8 tile semaphores


@needs_level1
def test_a_batched_gemm_has_no_split_k_and_a_matrix_vector_product_tunes_its_threads() -> None:
    batched = plan_space(plans_for(traced_lazily(LEVEL1 / "3_Batched_matrix_multiplication.py"))["fused"][0])
    assert {d.name for d in batched.dims} == {"h0.MAIN", "h0.TILE", "h0.STAGES"}
    gemv = plan_space(plans_for(traced_lazily(LEVEL1 / "4_Matrix_vector_multiplication_.py"))["fused"][0])
    assert [(d.name, d.default) for d in gemv.dims] == [("h0.TPR", 512)]


def test_the_hopper_split_is_offered_only_to_compute_bound_gemms() -> None:
    """codegen_gemm.sm90_split_may_pay: at SM90_MIN_FLOPS_PER_BYTE flops per byte of A, B and C or more. The split
    copies both operands, tripled, to scratch: a memory-bound GEMM only pays for the copies."""
    from dataclasses import replace

    from kernelwright.agents.offline.codegen_gemm import SM90_MIN_FLOPS_PER_BYTE, sm90_split_may_pay

    square = next(p for p in fixture_gemm_problems() if p.stem == "square_fp32")
    (plan,) = plans_for([trace_problem(square)])["fused"]
    (step,) = plan.steps
    launch = gemm_launch(step, plan.buffers)
    assert launch is not None and launch.flops / (4 * 3 * 4096 ** 2) > SM90_MIN_FLOPS_PER_BYTE
    assert sm90_split_may_pay(launch)  # 4096^3: 683 flops a byte
    assert sm90_split_may_pay(replace(launch, m=512, n=2048, k=1024, batch=128))  # level1/3: 146
    assert not sm90_split_may_pay(replace(launch, m=32768, n=32768, k=64))  # level1/7, small K: 32
    assert not sm90_split_may_pay(replace(launch, m=32768, n=32768, k=32))  # level1/9, tall-skinny: 16
    assert not sm90_split_may_pay(replace(launch, m=128, n=1 << 20, k=64, batch=16))  # level1/87 as a GEMM: 21


@needs_level1
def test_memory_bound_level1_gemms_get_no_main_tunable() -> None:
    for name in ("7_Matmul_with_small_K_dimension_.py", "9_Tall_skinny_matrix_multiplication_.py"):
        space = plan_space(plans_for(traced_lazily(LEVEL1 / name))["fused"][0])
        assert "h0.MAIN" not in {d.name for d in space.dims}, name


def test_an_fp32_gemm_may_take_the_hopper_split_first_and_only_where_it_fits() -> None:
    """MAIN (codegen_gemm.MAIN_CHOICES): the SM80 3xTF32 kernel by default, the Hopper split (gemm_sm90_split) as
    the first tunable, so the fill's first neighbour tries it; bf16, TF32-admitting profiles and triangles have none."""
    from kernelwright.agents.offline.gemm_sm90_split import SM90_SPLIT_LAUNCHER, padded_k3, scratch_bytes
    from kernelwright.agents.offline.space import TuneSpace

    square = next(p for p in fixture_gemm_problems() if p.stem == "square_fp32")
    target = tuning_target(traced_lazily(square), "fused")
    assert target is not None
    assert (target.space.dims[0].name, target.space.dims[0].choices, target.space.dims[0].default) == (
        "h0.MAIN", ("sm80", "sm90w", "sm90c", "sm90"), "sm80")
    assert TuneSpace.neighbours_up_first(target.space, target.space.defaults())[0]["h0.MAIN"] == "sm90w"
    default, hopper = target.render(target.space.defaults()), target.render({"h0.MAIN": "sm90"})
    assert "kw_gemm_f32x3" in cuda_of(default) and SM90_SPLIT_LAUNCHER not in cuda_of(default)
    assert f"extern \"C\" int {SM90_SPLIT_LAUNCHER}(" in cuda_of(hopper) and "kw_gemm_f32x3" not in cuda_of(hopper)
    call = re.search(rf"{SM90_SPLIT_LAUNCHER}\((.*?)\)", traced_forward(hopper))
    assert call, traced_forward(hopper)
    # A (4096, 4096) @ B (4096, 4096), both row-major: strides (4096, 1) and (4096, 1), C's ldc 4096, the scratch
    assert ", 4096, 4096, 4096, 1, 4096, 1, " in call.group(1)
    assert f", 4096, 0, 1024, 3072, {scratch_bytes(4096, 4096, 4096)}, _kw_scratch" in call.group(1)  # ldc, kc, row
    assert padded_k3(4095) == 12288 and padded_k3(4096) == 12288 and padded_k3(1) == 4
    # the launcher's spec, the call's arguments (the scratch pointer last) and the C signature agree in count
    spec = re.search(rf"'{SM90_SPLIT_LAUNCHER}': '([^']*)'", hopper)
    signature = re.search(rf'extern "C" int {SM90_SPLIT_LAUNCHER}\((.*?)\)\s*{{', hopper, re.S)
    assert spec and signature
    params = [p for p in signature.group(1).split(",") if "cudaStream_t" not in p]
    assert len(spec.group(1).split(",")) == len(call.group(1).split(",")) == len(params) == 21
    for name, tf32 in (("bf16_matmul", False), ("square_fp32", True), ("lower_band", False)):
        problem = next(p for p in fixture_gemm_problems() if p.stem == name)
        plans = plans_for(traced_lazily(problem), allow_tf32=tf32)["fused"]
        assert not [d for d in plan_space(plans[0]).dims if d.name.endswith(".MAIN")], name


def test_one_gemm_configuration_is_one_source_whatever_the_sizes(tmp_path: Path) -> None:
    """Sizes are launcher arguments: two problems of one configuration share their CUDA, so the compile cache
    builds it once."""
    text = (Path(__file__).parents[2] / "fixtures" / "gemm" / "square_fp32.py").read_text()
    small, other = tmp_path / "small.py", tmp_path / "other.py"
    small.write_text(text.replace("N = 4096", "N = 512"))
    other.write_text(text.replace("N = 4096", "N = 768"))
    a, b = propose(small)[0].source, propose(other)[0].source
    assert cuda_of(a) == cuda_of(b) and a != b


def test_fused_chains_keep_their_library_gemm_and_its_3xtf32_split() -> None:
    plan = plans_for([trace_problem(suite_dir() / "12_linear_relu_scale.py")])["fused"][0]
    assert gemm_plan(plan) is None
    assert any(isinstance(s, HostStep) and s.library for s in plan.steps)


def test_a_16bit_gemm_with_an_odd_extent_stays_unsupported(tmp_path: Path) -> None:
    """bf16 tensor-core loads need 4-byte alignment: K = 33 has no kernel here, and says so."""
    problem = tmp_path / "odd.py"
    problem.write_text((Path(__file__).parents[2] / "fixtures" / "gemm" / "bf16_matmul.py").read_text()
                       .replace("torch.rand(N, N, dtype=torch.bfloat16), torch.rand(N, N, dtype=torch.bfloat16)",
                                "torch.rand(64, 33, dtype=torch.bfloat16), torch.rand(33, 48, dtype=torch.bfloat16)"))
    with pytest.raises(OfflineUnsupported, match="nothing to generate"):
        propose(problem)


@pytest.mark.parametrize("shape, strides, expected", [
    ((4, 6), (6, 1), ("row", 6)), ((4, 6), (1, 4), ("col", 4)), ((4, 6), (8, 1), ("row", 8)),
    ((4, 1), (1, 1), ("row", 1)), ((1, 6), (0, 1), ("row", 6)), ((4, 6), (2, 2), None), ((4, 6), (0, 1), None)])
def test_matrix_layouts(shape: tuple[int, int], strides: tuple[int, int], expected: tuple[str, int] | None) -> None:
    got = matrix_layout(*shape, *strides)
    assert (None if got is None else (got.order, got.ld)) == expected


def test_run_gemm_reads_through_the_launch_numbers_so_a_wrong_layout_fails_the_check() -> None:
    """The interpreter check could fail: give the step B's transpose view as if it were B."""
    from kernelwright.agents.offline.gemm_plan import run_gemm
    from kernelwright.agents.offline.ir import Buffer, StepOutput

    buffers = {"a": Buffer("a", (3, 5), "float32", "input"), "b": Buffer("b", (5, 4), "float32", "input"),
               "c": Buffer("c", (3, 4), "float32", "step")}
    a, b = torch.randn(3, 5), torch.randn(5, 4)
    right = GemmStep("h0", Layout("a", (1, 3, 5), (0, 5, 1)), Layout("b", (1, 5, 4), (0, 4, 1)), (StepOutput(0, "c"),))
    wrong = GemmStep("h0", Layout("a", (1, 3, 5), (0, 5, 1)), Layout("b", (1, 5, 4), (0, 1, 5)), (StepOutput(0, "c"),))
    for step, same in ((right, True), (wrong, False)):
        mem = {"a": a, "b": b}
        run_gemm(step, buffers, mem)
        assert torch.allclose(mem["c"], a @ b, atol=1e-5) is same


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_gpu_tests_cases_plan_right_and_take_their_tunables(case: GemmCase, tmp_path: Path) -> None:
    """The cases test_gemm_gpu.py runs on a GPU, checked here on CPU: the plan (through the launcher's numbers)
    agrees with the Model, and the candidate is built with the tunables the case names."""
    problem = case_problem(case, tmp_path)
    traced = trace_problem(problem)
    gemm = gemm_plan(build_plan(traced.program))
    assert gemm is not None
    check = check_traced(traced, {"gemm": gemm}, {})
    assert check.passed, check.failures()
    (cand,) = propose(problem, params=case.params)
    assert {k: cand.params[k] for k in case.params} == case.params
    forward = traced_forward(cand.source)
    assert re.search(r"_kw_lib\.kw_gem\w+\(", forward) and not ATEN_GEMM.search(forward)
    if "h0.TILE" in case.params:
        assert f"_{case.params['h0.TILE']}_s{case.params['h0.STAGES']}(" in forward
