"""The 3xTF32 GEMM path of the offline translator: which steps take it, the tunable, and the emitted code."""

from __future__ import annotations

from math import prod
from typing import Any

import pytest
import torch

from kernelwright.agents.offline import propose
from kernelwright.agents.offline.cuda_common import PRELUDE
from kernelwright.agents.offline.gemm_split import (
    CHUNKED_FROM_K,
    SPLIT_CUDA,
    SPLIT_PYTHON,
    default_mode,
    gemm_flops,
    gemm_kind,
    gemm_modes,
    split_pays,
)
from kernelwright.agents.offline.ir import Buffer, HostStep, Layout
from kernelwright.agents.offline.propose import plans_for, render, trace_all
from kernelwright.agents.offline.space import conservative, plan_space
from support.gemm import traced_lazily
from support.offline import suite_dir
from support.paths import KERNELBENCH


def _forward(source: str) -> str:
    return source.split("class ModelNew", 1)[1]


def test_large_fp32_gemms_default_to_the_split_and_the_plain_gemm_stays_a_choice() -> None:
    traced = trace_all(suite_dir() / "12_linear_relu_scale.py")
    plan = plans_for(traced)["fused"][0]
    space = plan_space(plan)
    gemm_dims = [d for d in space.dims if d.name.endswith(".GEMM")]
    assert [d.choices for d in gemm_dims] == [("fp32", "tf32x3", "tf32x3k")]
    assert gemm_dims[0].default == "tf32x3k"  # 4096^3: far above the split's break-even, K at CHUNKED_FROM_K
    assert conservative(space)[gemm_dims[0].name] == "fp32"
    split = render(traced, [plan], space.defaults(), "fused")
    plain = render(traced, [plan], {**space.defaults(), gemm_dims[0].name: "fp32"}, "fused")
    assert "_kw_linear_tf32x3k(" in _forward(split) and "kw_tf32x3_split" in split
    assert "_kw_linear_tf32x3" not in _forward(plain) and "kw_tf32x3_split" not in plain
    assert "torch.ops.aten.linear.default(" in _forward(plain)


@pytest.mark.parametrize("name, helper", [("16_bmm_bias_silu", "_kw_matmul_tf32x3("),
                                          ("14_linear_bias_softmax", "_kw_linear_tf32x3(")])
def test_fp32_bmm_and_linear_problems_get_the_split_in_their_fused_variant(name: str, helper: str) -> None:
    by_variant = {c.variant: c for c in propose(suite_dir() / f"{name}.py")}
    assert helper in _forward(by_variant["fused"].source)
    assert helper not in _forward(by_variant["fused_scalar"].source)


@pytest.mark.parametrize("name", ["13_linear_gelu_gain_bf16", "15_matmul_residual_clamp_bf16"])
def test_bf16_gemms_never_take_the_split(name: str) -> None:
    traced = trace_all(suite_dir() / f"{name}.py")
    plan = plans_for(traced)["fused"][0]
    assert gemm_modes(plan, {}) == {}
    assert not [d for d in plan_space(plan).dims if d.name.endswith(".GEMM")]


@pytest.mark.nvcc
def test_the_split_kernel_compiles_with_nvcc(tmp_path) -> None:
    from kernelwright.tools.compile.nvcc import NvccCompiler, NvccOptions

    result = NvccCompiler(cache_dir=tmp_path).compile(PRELUDE + SPLIT_CUDA, NvccOptions(arch="sm_90"))
    assert result.artifact.exists()


def _linear(rows: int, out_features: int, k: int) -> HostStep:
    def layout(*shape: int) -> Layout:
        return Layout("b", shape, ())
    return HostStep("h0", "aten.linear.default", (layout(rows, k), layout(out_features, k)), (), ("y",), True)


@pytest.mark.parametrize("rows, out_features, k, split", [
    (2, 49152, 16384, False),  # 3 GFLOP but a GEMV over 3.2 GB of weights: the split would only move more bytes
    (64, 8192, 8192, False),   # memory-bound too
    (1024, 8192, 8192, True),  # compute-bound
    (4096, 4096, 4096, True),
])
def test_the_split_is_the_default_only_where_the_gemm_is_compute_bound(rows: int, out_features: int, k: int,
                                                                       split: bool) -> None:
    step = _linear(rows, out_features, k)
    assert gemm_flops(step, "linear") >= 1 << 30  # every case is over the size floor: the roofline decides
    assert split_pays(step, "linear") is split


@pytest.mark.parametrize("rows, out_features, k, mode", [
    (1024, 8192, 8192, "tf32x3k"),  # level 2's GEMMs: the whole-K split drifted past 1e-4 here on an H100
    (4096, 4096, CHUNKED_FROM_K, "tf32x3k"),
    (4096, 4096, CHUNKED_FROM_K - 1, "tf32x3"),  # shorter sums: the whole-K split (1.5e-5 at K=2048)
    (64, 8192, 8192, "fp32"),  # memory-bound: no split at all, in pieces or not
])
def test_long_k_gemms_sum_the_split_in_pieces_by_default(rows: int, out_features: int, k: int, mode: str) -> None:
    assert default_mode(_linear(rows, out_features, k), "linear") == mode


def _split_python_on_cpu() -> dict[str, Any]:
    """SPLIT_PYTHON's helpers with a torch stand-in for the CUDA split kernel (same layout, same rounding)."""

    class CpuSplit:
        @staticmethod
        def kw_tf32x3_split(t: torch.Tensor, out: torch.Tensor, outer: int, k: int, inner: int, pattern: int) -> int:
            hi = ((t.view(torch.int32) + 0x1000) & -0x2000).view(torch.float32)
            parts = [hi, t - hi]
            src = [hi, parts[(pattern >> 1) & 1], parts[(pattern >> 2) & 1]]
            out.view(outer, 3, k * inner).copy_(torch.stack([p.reshape(outer, k * inner) for p in src], 1))
            return 0

    namespace: dict[str, Any] = {"torch": torch, "_kw_lib": CpuSplit()}
    exec(SPLIT_PYTHON, namespace)
    return namespace


@pytest.mark.parametrize("m, k, n", [(5, 2500, 7),  # K padded to 3 pieces of 834
                                     (3, 700, 4),  # one piece
                                     (4, 2048, 6)])  # two whole pieces
def test_the_split_in_pieces_of_k_sums_to_the_fp32_gemm(m: int, k: int, n: int) -> None:
    """On the CPU (no TF32) "tf32x3k"'s helpers equal the fp64 GEMM to fp32 rounding: every piece of A meets its
    own piece of B in all three parts (a piece paired with another's, or a part with the wrong partner, would be
    off by O(1)); linear (3-D input too), addmm and matmul, whose batched form falls back to the plain split."""
    helpers = _split_python_on_cpu()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(m, k, generator=gen) * 8  # non-negative, as KernelBench's GEMM inputs (scaled trial)
    w_nk, w_kn = (torch.randn(n, k, generator=gen) / k ** 0.5, torch.randn(k, n, generator=gen) / k ** 0.5)
    bias = torch.randn(n, generator=gen)
    cases = {
        "linear": (helpers["_kw_linear_tf32x3k"](x, w_nk, bias), x.double() @ w_nk.double().T + bias.double()),
        "linear 3-D": (helpers["_kw_linear_tf32x3k"](x.reshape(1, m, k), w_nk),
                       (x.double() @ w_nk.double().T).reshape(1, m, n)),
        "addmm": (helpers["_kw_addmm_tf32x3k"](bias, x, w_kn), bias.double() + x.double() @ w_kn.double()),
        "matmul": (helpers["_kw_matmul_tf32x3k"](x, w_kn), x.double() @ w_kn.double()),
        "bmm fallback": (helpers["_kw_matmul_tf32x3k"](x.reshape(1, m, k), w_kn.reshape(1, k, n)),
                         (x.double() @ w_kn.double()).reshape(1, m, n)),
    }
    for name, (got, want) in cases.items():
        assert got.shape == want.shape and got.dtype == torch.float32, name
        assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-5), (name, (got.double() - want).abs().max())


def test_the_split_in_pieces_of_k_is_a_choice_for_gemms_only_and_renders_its_helper() -> None:
    """The default at K >= CHUNKED_FROM_K (here 4096); a convolution never offers it (its K is channels x taps)."""
    traced = trace_all(suite_dir() / "12_linear_relu_scale.py")
    plan = plans_for(traced)["fused"][0]
    space = plan_space(plan)
    (dim,) = [d for d in space.dims if d.name.endswith(".GEMM")]
    assert "tf32x3k" in dim.choices and dim.default == "tf32x3k"
    source = render(traced, [plan], space.defaults(), "fused")
    assert "_kw_linear_tf32x3k(" in _forward(source) and "kw_tf32x3_split" in source
    assert "def _kw_linear_tf32x3k(" in source and "_KW_K_CHUNK = 1024" in source
    conv = plans_for(trace_all(suite_dir() / "44_conv_bn_relu_pool.py"))["fused"][0]
    assert all("tf32x3k" not in d.choices for d in plan_space(conv).dims if d.name.endswith(".GEMM"))
    assert gemm_modes(conv, {f"{s.name}.GEMM": "tf32x3k" for s in conv.steps}) == {
        name: "fp32" for name in gemm_modes(conv, {})}  # asked for anyway: the plain fp32 call


@pytest.mark.parametrize("conv, x_shape, w_shape, groups", [
    (torch.ops.aten.conv2d.default, (2, 8, 9, 7), (6, 8, 3, 3), 1),
    (torch.ops.aten.conv2d.default, (2, 8, 9, 7), (6, 4, 3, 3), 2),  # each group's channels split on their own
    (torch.ops.aten.conv1d.default, (3, 6, 11), (6, 2, 5), 3),
    (torch.ops.aten.conv3d.default, (1, 4, 5, 6, 7), (2, 4, 2, 3, 3), 1),
])
def test_the_convolution_split_sums_to_the_fp32_convolution(conv: Any, x_shape: tuple[int, ...],
                                                              w_shape: tuple[int, ...], groups: int) -> None:
    """On the CPU (no TF32), the tripled-channel convolution equals the plain one to fp32 rounding: every part
    meets its partner (a mis-paired hi/lo or a group's channels mixed with another's would be off by ~1e-3)."""
    helpers = _split_python_on_cpu()
    gen = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(x_shape, generator=gen), torch.randn(w_shape, generator=gen), torch.randn(w_shape[0], generator=gen)
    nd = len(x_shape) - 2
    got = helpers["_kw_conv_tf32x3"](conv, x, w, b, [1] * nd, [1] * nd, [1] * nd, groups)
    want = conv(x.double(), w.double(), b.double(), [1] * nd, [1] * nd, [1] * nd, groups)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-5), (got.double() - want).abs().max()


def test_library_convolutions_get_the_split_as_a_tunable_whose_fp32_choice_renders_the_plain_call() -> None:
    traced = trace_all(suite_dir() / "44_conv_bn_relu_pool.py")
    plan = plans_for(traced)["fused"][0]
    dims = [d for d in plan_space(plan).dims if d.name.endswith(".GEMM")]
    assert [d.choices for d in dims] == [("fp32", "tf32x3")]
    split = render(traced, [plan], {**plan_space(plan).defaults(), dims[0].name: "tf32x3"}, "fused")
    plain = render(traced, [plan], {**plan_space(plan).defaults(), dims[0].name: "fp32"}, "fused")
    assert "_kw_conv_tf32x3(torch.ops.aten.conv2d.default, " in _forward(split)
    assert "_kw_conv_tf32x3(" not in _forward(plain)


def _conv(x: tuple[int, ...], w: tuple[int, ...], out: tuple[int, ...], groups: int) -> tuple[HostStep, dict[str, Buffer]]:
    buffers = {"x": Buffer("x", x, "float32", "input"), "w": Buffer("w", w, "float32", "parameter"),
               "y": Buffer("y", out, "float32", "step")}
    args = (Layout("x", x, ()), Layout("w", w, ()), None, [1, 1], [1, 1], [1, 1], groups)
    return HostStep("h0", "aten.conv2d.default", args, (), ("y",), True), buffers


@pytest.mark.parametrize("groups, x, w, mode", [
    (1, (10, 256, 56, 56), (256, 256, 3, 3), "tf32x3"),  # VGG-like: 0.50 ms split vs 1.22 ms fp32 on an H100
    (4, (10, 256, 56, 56), (256, 64, 3, 3), "fp32"),     # grouped: cuDNN kept fp32 math even with TF32 allowed
    (1, (2, 16, 32, 32), (16, 16, 3, 3), "fp32"),        # under the size floor
])
def test_a_dense_convolution_takes_the_split_by_default_and_a_grouped_one_keeps_fp32(
        groups: int, x: tuple[int, ...], w: tuple[int, ...], mode: str) -> None:
    step, buffers = _conv(x, w, (x[0], w[0], x[2], x[3]), groups)
    assert gemm_kind(step, buffers) == "conv"
    assert default_mode(step, "conv", buffers) == mode



@pytest.mark.parametrize("conv, x_shape, w_shape, stride, output_padding, groups", [
    (torch.ops.aten.conv_transpose2d.input, (2, 8, 5, 6), (8, 6, 4, 4), [2, 2], [1, 1], 1),
    (torch.ops.aten.conv_transpose2d.input, (2, 8, 5, 6), (8, 3, 3, 3), [2, 2], [0, 0], 2),  # groups split apart
    (torch.ops.aten.conv_transpose1d.default, (3, 6, 11), (6, 2, 5), [3], [1], 3),
    (torch.ops.aten.conv_transpose3d.input, (1, 4, 4, 5, 3), (4, 2, 2, 3, 3), [1, 2, 1], [0, 1, 0], 1),
])
def test_the_transposed_convolution_split_sums_to_the_fp32_one(conv: Any, x_shape: tuple[int, ...],
                                                                w_shape: tuple[int, ...], stride: list[int],
                                                                output_padding: list[int], groups: int) -> None:
    """A transposed convolution's weight is (in, out / groups, taps...): its split triples the weight's first dim,
    not its second as a convolution's does (tripling the wrong one would not even give the right shape)."""
    helpers = _split_python_on_cpu()
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(x_shape, generator=gen), torch.randn(w_shape, generator=gen)
    b = torch.randn(w_shape[1] * groups, generator=gen)
    pad = [1] * (len(x_shape) - 2)
    got = helpers["_kw_conv_transpose_tf32x3"](conv, x, w, b, stride, pad, output_padding, groups)
    want = conv(x.double(), w.double(), b.double(), stride, pad, output_padding, groups)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-5), (got.double() - want).abs().max()


def _conv_transpose(x: tuple[int, ...], w: tuple[int, ...], groups: int) -> tuple[HostStep, dict[str, Buffer]]:
    out = (x[0], w[1] * groups, 2 * x[2] + 1, 2 * x[3] + 1)
    buffers = {"x": Buffer("x", x, "float32", "input"), "w": Buffer("w", w, "float32", "parameter"),
               "y": Buffer("y", out, "float32", "step")}
    args = (Layout("x", x, ()), Layout("w", w, ()), None, [2, 2], [1, 1], [1, 1], groups)
    return HostStep("h0", "aten.conv_transpose2d.input", args, (), ("y",), True), buffers


@pytest.mark.parametrize("groups, x, w, mode", [
    (1, (32, 64, 256, 256), (64, 64, 4, 4), "tf32x3"),  # level2/5_ConvTranspose2d_Subtract_Tanh's
    (4, (32, 64, 256, 256), (64, 16, 4, 4), "fp32"),    # grouped: fp32, as for a convolution
    (1, (2, 8, 16, 16), (8, 8, 3, 3), "fp32"),          # under the size floor
    # a 2-D stand-in for level2/15's conv_transpose3d: the roofline calls it memory-bound (its output dominates), but
    # cuDNN's fp32 ran it at 4% of the SIMT peak on an H100: the split by default once over the size floor
    (1, (16, 16, 128, 128), (16, 32, 3, 3), "tf32x3"),
])
def test_a_dense_transposed_convolution_takes_the_split_by_default(groups: int, x: tuple[int, ...],
                                                                   w: tuple[int, ...], mode: str) -> None:
    step, buffers = _conv_transpose(x, w, groups)
    assert gemm_kind(step, buffers) == "conv_transpose"
    # every input element meets out-channels-per-group x taps: 2 * 134M * 64 * 16 flops for the first
    assert gemm_flops(step, "conv_transpose", buffers) == 2 * prod(x) * prod(w[1:])
    assert default_mode(step, "conv_transpose", buffers) == mode


def test_a_kernelbench_transposed_convolution_problem_renders_the_split() -> None:
    problem = KERNELBENCH / "level2" / "5_ConvTranspose2d_Subtract_Tanh.py"
    if not problem.exists():
        pytest.skip(f"KernelBench dev split not found at {problem.parent}")
    traced = traced_lazily(problem)
    plan = plans_for(traced)["fused"][0]
    dims = [d for d in plan_space(plan).dims if d.name.endswith(".GEMM")]
    assert [(d.choices, d.default) for d in dims] == [(("fp32", "tf32x3"), "tf32x3")]
    source = render(traced, [plan], plan_space(plan).defaults(), "fused")
    assert "_kw_conv_transpose_tf32x3(torch.ops.aten.conv_transpose2d.input, " in _forward(source)
    tf32 = plans_for(traced, allow_tf32=True)["fused"][0]  # the kernelbench profile: plain TF32 by default
    assert "_kw_tf32_call(torch.ops.aten.conv_transpose2d.input, " in _forward(
        render(traced, [tf32], plan_space(tf32).defaults(), "fused"))


@pytest.mark.parametrize("helper, conv, x_shape, w_shape, rest", [
    ("_kw_conv_tf32x3", torch.ops.aten.conv2d.default, (2, 8, 9, 7), (6, 8, 3, 3), ([1, 1], [1, 1], [1, 1], 1)),
    ("_kw_conv_tf32x3", torch.ops.aten.conv2d.default, (2, 8, 9, 7), (6, 4, 3, 3), ([1, 1], [1, 1], [1, 1], 2)),
    ("_kw_conv_transpose_tf32x3", torch.ops.aten.conv_transpose2d.input, (2, 8, 5, 6), (8, 3, 3, 3),
     ([2, 2], [1, 1], [0, 0], 2)),
    ("_kw_conv_transpose_tf32x3", torch.ops.aten.conv_transpose3d.input, (1, 4, 4, 5, 3), (4, 2, 2, 3, 3),
     ([1, 2, 1], [1, 1, 1], [0, 1, 0], 1)),
])
def test_the_split_run_channels_last_gives_the_same_result(helper: str, conv: Any, x_shape: tuple[int, ...],
                                                           w_shape: tuple[int, ...], rest: tuple[Any, ...]) -> None:
    from kernelwright.agents.offline.conv_layout import CHANNELS_LAST_PYTHON

    helpers = _split_python_on_cpu()
    exec(CHANNELS_LAST_PYTHON, helpers)
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(x_shape, generator=gen), torch.randn(w_shape, generator=gen)
    seen: list[bool] = []

    def spy(a: torch.Tensor, b: torch.Tensor, *args: Any) -> torch.Tensor:
        fmt = torch.channels_last if a.dim() == 4 else torch.channels_last_3d
        seen.append(a.is_contiguous(memory_format=fmt) and b.is_contiguous(memory_format=fmt))
        return conv(a, b, *args)

    plain = helpers[helper](conv, x, w, None, *rest)
    last = helpers[helper](spy, x, w, None, *rest, cl=True)
    assert seen == [True]  # the library call got channels-last operands
    assert torch.allclose(plain, last, rtol=1e-5, atol=1e-5)
