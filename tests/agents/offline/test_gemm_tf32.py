"""Plain TF32 GEMMs in the offline translator: offered only where the run's precision profile allows it
(kernelbench), the default there above a size floor, and no change at all to what the strict profile gets."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from kernelwright.agents.offline import propose
from kernelwright.agents.offline.gemm_split import (
    MIN_FLOPS_FOR_TF32,
    SPLIT_PYTHON,
    TF32_BLOCK_PYTHON,
    TF32_CALL_PYTHON,
    default_mode,
    gemm_flops,
    gemm_kind,
    gemm_modes,
    gemm_python,
)
from kernelwright.agents.offline.ir import Buffer, HostStep, Layout
from kernelwright.agents.offline.propose import plans_for, render, trace_all, tuning_target
from kernelwright.agents.offline.space import conservative, plan_space
from support.offline import suite_dir
from support.tf32 import strict_backend_flags as strict_flags

# fp32 linear, bmm, dense conv2d, conv1d, conv + batch norm: every GEMM kind the split takes
GEMM_PROBLEMS = ["12_linear_relu_scale", "16_bmm_bias_silu", "20_conv2d_relu_avgpool", "22_conv1d_gelu_residual",
                 "44_conv_bn_relu_pool"]


def _forward(source: str) -> str:
    return source.split("class ModelNew", 1)[1]


def _gemm_dims(plan: Any) -> list[Any]:
    return [d for d in plan_space(plan).dims if d.name.endswith(".GEMM")]


@pytest.mark.parametrize("name", GEMM_PROBLEMS)
def test_strict_candidates_are_unchanged_and_kernelbench_ones_call_the_library_op_in_tf32(name: str) -> None:
    problem = suite_dir() / f"{name}.py"
    traced = trace_all(problem)
    before = {c.variant: c.source for c in propose(problem, traced=traced)}  # as every caller did before the flag
    strict = {c.variant: c.source for c in propose(problem, traced=traced, allow_tf32=False)}
    kernelbench = {c.variant: c for c in propose(problem, traced=traced, allow_tf32=True)}
    assert strict == before
    for source in strict.values():
        assert "_kw_tf32_call" not in source  # strict never runs plain TF32
    fused = kernelbench["fused"].source
    assert "_kw_tf32_call(torch.ops.aten." in _forward(fused)
    assert TF32_CALL_PYTHON in fused and fused.count("class _kw_tf32:") == 1
    assert "kw_tf32x3_split" not in fused  # no split kernel is built where no step takes the split
    ast.parse(fused)
    assert any(v.endswith(".GEMM") and p == "tf32" for v, p in kernelbench["fused"].params.items())
    # the scalar variant keeps the library's own fp32 GEMM under either profile
    if "fused_scalar" in kernelbench:
        assert "_kw_tf32_call" not in _forward(kernelbench["fused_scalar"].source)


def test_plan_space_offers_plain_tf32_only_under_a_profile_that_allows_it() -> None:
    traced = trace_all(suite_dir() / "12_linear_relu_scale.py")
    strict, kernelbench = plans_for(traced)["fused"][0], plans_for(traced, allow_tf32=True)["fused"][0]
    assert not strict.allow_tf32 and kernelbench.allow_tf32
    (strict_dim,), (kb_dim,) = _gemm_dims(strict), _gemm_dims(kernelbench)
    assert (strict_dim.choices, strict_dim.default) == (("fp32", "tf32x3", "tf32x3k"), "tf32x3k")  # K=4096
    assert (kb_dim.choices, kb_dim.default) == (("tf32x3", "tf32x3k", "fp32", "tf32"), "tf32")
    assert conservative(plan_space(kernelbench))[kb_dim.name] == "fp32"
    # plain TF32 is the last choice: the fill's up-first moves spend no slot on a mode that only adds accuracy,
    # and the tuner's one neighbour of it is fp32; fp32's (a small GEMM's default) first is TF32
    space = plan_space(kernelbench)
    moved = {p[kb_dim.name] for p in space.neighbours({kb_dim.name: "tf32"})} - {"tf32"}
    assert moved == {"fp32"}
    defaults = space.defaults()
    fill = space.neighbours_up_first(defaults)
    gemm_moves = [i for i, p in enumerate(fill) if p[kb_dim.name] != "tf32"]
    ups = sum(1 for d in space.dims if defaults[d.name] != d.choices[-1])  # every dim's up move, GEMM's none
    assert [fill[i][kb_dim.name] for i in gemm_moves] == ["fp32"] and gemm_moves[0] >= ups
    assert space.neighbours_up_first({**space.defaults(), kb_dim.name: "fp32"})[0][kb_dim.name] == "tf32"
    # every mode renders under kernelbench; the split's kernel only where a step takes it
    for mode in kb_dim.choices:
        source = render(traced, [kernelbench], {**plan_space(kernelbench).defaults(), kb_dim.name: mode}, "fused")
        assert ("_kw_tf32_call(" in _forward(source)) is (mode == "tf32")
        assert ("_kw_linear_tf32x3(" in _forward(source)) is (mode == "tf32x3")
        assert ("_kw_linear_tf32x3k(" in _forward(source)) is (mode == "tf32x3k")
        assert ("kw_tf32x3_split" in source) is (mode in ("tf32x3", "tf32x3k"))


def test_a_convolutions_first_fill_move_under_kernelbench_is_its_layout_not_a_slower_gemm_mode() -> None:
    """The up-first fill's first setting of a conv chain: channels-last for the convolution (a plan whose conv
    takes TF32 by default), where before it spent the slot on the split (three convolutions)."""
    traced = trace_all(suite_dir() / "20_conv2d_relu_avgpool.py")
    plan = plans_for(traced, allow_tf32=True)["fused"][0]
    space = plan_space(plan)
    (dim,) = _gemm_dims(plan)
    assert space.defaults()[dim.name] == "tf32"
    first = space.neighbours_up_first(space.defaults())[0]
    changed = {k: v for k, v in first.items() if v != space.defaults()[k]}
    assert changed == {dim.name.replace(".GEMM", ".LAYOUT"): "channels_last"}


def test_a_strict_plan_never_renders_plain_tf32_even_when_asked() -> None:
    """A "tf32" setting reaching a strict plan (an archived kernelbench run's, a hand-written override) is fp32."""
    traced = trace_all(suite_dir() / "12_linear_relu_scale.py")
    plan = plans_for(traced)["fused"][0]
    (dim,) = _gemm_dims(plan)
    assert gemm_modes(plan, {dim.name: "tf32"}) == {dim.name.split(".")[0]: "fp32"}
    source = render(traced, [plan], {**plan_space(plan).defaults(), dim.name: "tf32"}, "fused")
    assert "_kw_tf32_call" not in source and "torch.ops.aten.linear.default(" in _forward(source)


def test_the_tuning_target_carries_the_profile() -> None:
    traced = trace_all(suite_dir() / "16_bmm_bias_silu.py")
    for allow, choices in ((False, ("fp32", "tf32x3", "tf32x3k")), (True, ("tf32x3", "tf32x3k", "fp32", "tf32"))):
        target = tuning_target(traced, "fused", allow_tf32=allow)
        assert target is not None and all(p.allow_tf32 is allow for p in target.plans)
        assert [d.choices for d in target.space.dims if d.name.endswith(".GEMM")] == [choices]


def _conv(x: tuple[int, ...], w: tuple[int, ...], groups: int) -> tuple[HostStep, dict[str, Buffer]]:
    out = (x[0], w[0], x[2], x[3])
    buffers = {"x": Buffer("x", x, "float32", "input"), "w": Buffer("w", w, "float32", "parameter"),
               "y": Buffer("y", out, "float32", "step")}
    args = (Layout("x", x, ()), Layout("w", w, ()), None, [1, 1], [1, 1], [1, 1], groups)
    return HostStep("h0", "aten.conv2d.default", args, (), ("y",), True), buffers


@pytest.mark.parametrize("groups, x, w, strict_mode, kernelbench_mode", [
    (1, (10, 256, 56, 56), (256, 256, 3, 3), "tf32x3", "tf32"),  # VGG-like: 0.18 ms TF32, 0.50 split, 1.22 fp32 (H100)
    (4, (10, 256, 56, 56), (256, 64, 3, 3), "fp32", "tf32"),     # grouped: plain TF32 costs nothing even without TCs
    (1, (1, 4, 16, 16), (4, 4, 3, 3), "fp32", "fp32"),           # under the size floor
])
def test_convolution_defaults_under_each_profile(groups: int, x: tuple[int, ...], w: tuple[int, ...],
                                                 strict_mode: str, kernelbench_mode: str) -> None:
    step, buffers = _conv(x, w, groups)
    assert gemm_kind(step, buffers) == "conv"
    assert default_mode(step, "conv", buffers) == strict_mode
    assert default_mode(step, "conv", buffers, allow_tf32=True) == kernelbench_mode


@pytest.mark.parametrize("rows, k, n", [(2, 16384, 49152), (64, 8192, 8192), (32, 32, 32)])
def test_linear_defaults_to_tf32_above_the_floor_memory_bound_or_not(rows: int, k: int, n: int) -> None:
    """The split's roofline keeps memory-bound GEMMs on fp32; plain TF32 moves the same bytes, so only size counts."""
    step = HostStep("h0", "aten.linear.default", (Layout("b", (rows, k), ()), Layout("b", (n, k), ())), (), ("y",), True)
    want = "tf32" if gemm_flops(step, "linear") >= MIN_FLOPS_FOR_TF32 else "fp32"
    assert default_mode(step, "linear", allow_tf32=True) == want
    assert want == ("fp32" if rows == 32 else "tf32")


def test_the_helpers_emitted_for_each_combination_of_modes() -> None:
    assert gemm_python(False, False) == ""
    assert gemm_python(True, False) == SPLIT_PYTHON  # strict candidates: exactly the split's helpers, as before
    assert gemm_python(False, True) == TF32_BLOCK_PYTHON + TF32_CALL_PYTHON
    both = gemm_python(True, True)
    assert both.startswith(SPLIT_PYTHON) and both.count("class _kw_tf32:") == 1
    for text in (gemm_python(False, True), both):
        ast.parse(text)


@pytest.fixture
def strict_backend_flags() -> Iterator[None]:
    with strict_flags():
        yield


def _tf32_call() -> Any:
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(gemm_python(False, True), "<gemm_tf32>", "exec"), namespace)
    return namespace["_kw_tf32_call"]


def test_the_tf32_helper_returns_the_op_and_restores_the_flags(strict_backend_flags: Any) -> None:
    """On the CPU the TF32 flags change nothing, so the result is the op's own; inside the call both flags are
    on, and after it (normally or by an exception) they are as they were."""
    call = _tf32_call()
    gen = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(5, 7, generator=gen), torch.randn(3, 7, generator=gen), torch.randn(3, generator=gen)
    got = call(torch.ops.aten.linear.default, x, w, b)
    assert torch.equal(got, torch.ops.aten.linear.default(x, w, b))
    img, kernel = torch.randn(1, 2, 6, 6, generator=gen), torch.randn(4, 2, 3, 3, generator=gen)
    conv = call(torch.ops.aten.conv2d.default, img, kernel, None, [1, 1], [1, 1])
    assert torch.equal(conv, torch.ops.aten.conv2d.default(img, kernel, None, [1, 1], [1, 1]))
    inside = call(lambda: (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32))
    assert inside == ("high", True)
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == ("highest", False)

    def fails() -> None:
        raise RuntimeError("op failed")

    with pytest.raises(RuntimeError, match="op failed"):
        call(fails)
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == ("highest", False)


# ---------------------------------------------------------------- the candidate's own CUTLASS GEMMs


def _gemm_candidates(name: str) -> tuple[Any, Any, Any]:
    from support.gemm import traced_lazily
    from support.paths import FIXTURES

    problem = FIXTURES / "gemm" / f"{name}.py"
    traced = traced_lazily(problem)
    before, strict, kernelbench = (propose(problem, traced=traced, **kw)[0]
                                   for kw in ({}, {"allow_tf32": False}, {"allow_tf32": True}))
    return before, strict, kernelbench


def test_an_fp32_cutlass_gemm_runs_plain_tf32_under_kernelbench_and_the_split_under_strict() -> None:
    from support.offline import cuda_of

    before, strict, kernelbench = _gemm_candidates("square_fp32")
    assert strict.source == before.source
    assert "cutlass::arch::OpMultiplyAddFastF32>" in cuda_of(strict.source) and "MATH" not in str(strict.params)
    assert [(n, d["choices"], d["default"]) for n, d in kernelbench.space.to_dict().items() if n.endswith(".MATH")] \
        == [("h0.MATH", ["tf32", "f32x3"], "tf32")]
    cuda = cuda_of(kernelbench.source)
    assert "cutlass::arch::OpMultiplyAdd>" in cuda and "OpMultiplyAddFastF32" not in cuda
    assert "kw_gemm_tf32_" in cuda and "TF32 operands, fp32 accumulation" in cuda
    # the split stays the tuner's choice: its kernel is the strict candidate's, byte for byte
    from support.gemm import traced_lazily
    from support.paths import FIXTURES

    problem = FIXTURES / "gemm" / "square_fp32.py"
    split = propose(problem, traced=traced_lazily(problem), params={"h0.MATH": "f32x3"}, allow_tf32=True)[0]
    assert cuda_of(split.source) == cuda_of(strict.source)


def test_bf16_and_matrix_vector_gemms_get_no_math_tunable() -> None:
    for name in ("bf16_matmul", "vector_matrix"):
        before, strict, kernelbench = _gemm_candidates(name)
        assert strict.source == before.source
        assert not [n for n in kernelbench.space.to_dict() if n.endswith(".MATH")]
        assert kernelbench.source == strict.source


@pytest.mark.nvcc
def test_the_tf32_cutlass_gemm_compiles_for_sm90a_without_spills(arch_cache: Any) -> None:
    import os

    from kernelwright.tools.compile.nvcc import CompileResult, NvccCompiler
    from kernelwright.tools.compile.raw_kernel import _ERROR_HELPER
    from support.offline import BUILD_ARCH, build_options_of, cuda_of, kernel_names

    _, _, kernelbench = _gemm_candidates("square_fp32")
    compiler = NvccCompiler(cache_dir=arch_cache, jobs=max(2, os.cpu_count() or 2))
    (result,) = compiler.compile_many([(cuda_of(kernelbench.source) + _ERROR_HELPER,
                                        build_options_of(kernelbench.source, BUILD_ARCH))])
    assert isinstance(result, CompileResult), getattr(result, "stderr", result)
    ours = [r for r in result.resources if "kw_gemm_tf32" in r.name]
    assert ours and not [r.name for r in ours if r.spill_store_bytes]
    assert any(n.startswith("kw_gemm_tf32_") for n in kernel_names(kernelbench.source))
