"""Plain TF32 GEMMs on a GPU (the kernelbench profile's mode): a linear and a VGG-like convolution pass that
profile's fp32 tolerance against an fp64 reference, the flags come back as they were, and the times against
fp32 (TF32 off) and the 3xTF32 split are printed (run with -s to see them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from kernelwright.agents.offline.cuda_common import PRELUDE
from kernelwright.agents.offline.gemm_split import SPLIT_CUDA, SPLIT_LAUNCHER, SPLIT_SPEC, gemm_python
from kernelwright.tools.verify.compare import compare_output
from kernelwright.tools.verify.precision import precision_profile

pytestmark = [pytest.mark.gpu, pytest.mark.nvcc]

KERNELBENCH_FP32 = precision_profile("kernelbench").tolerances["float32"]


@pytest.fixture(scope="module")
def helpers() -> dict[str, Any]:
    from kernelwright.tools.compile.raw_kernel import load_cuda

    namespace: dict[str, Any] = {"torch": torch, "_kw_lib": load_cuda(PRELUDE + SPLIT_CUDA, {SPLIT_LAUNCHER: SPLIT_SPEC})}
    exec(compile(gemm_python(True, True), "<gemm_split>", "exec"), namespace)
    return namespace


@pytest.fixture
def strict_flags() -> Any:
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.set_float32_matmul_precision(saved[0])
    torch.backends.cudnn.allow_tf32 = saved[1]


def _ms(fn: Callable[[], Any], reps: int = 20) -> float:
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def _check_and_time(name: str, helpers: dict[str, Any], op: Any, args: tuple[Any, ...], split: Callable[[], Any],
                    ref64: torch.Tensor) -> None:
    tf32 = helpers["_kw_tf32_call"](op, *args)
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == ("highest", False)
    verdict = compare_output(0, tf32.double(), ref64, KERNELBENCH_FP32)
    assert verdict.passed, verdict.message
    rel_l2 = float((tf32.double() - ref64).norm() / ref64.norm())
    t_fp32 = _ms(lambda: op(*args))
    t_tf32 = _ms(lambda: helpers["_kw_tf32_call"](op, *args))
    t_split = _ms(split)
    print(f"\n{name}: fp32 {t_fp32:.3f} ms, 3xTF32 split {t_split:.3f} ms, plain TF32 {t_tf32:.3f} ms "
          f"(rel L2 {rel_l2:.1e}, max abs err {verdict.max_abs_err:.1e})")
    assert rel_l2 > 1e-6  # TF32 really ran (fp32 SIMT is ~5e-7 here): the flags reached cuBLAS/cuDNN
    assert t_tf32 < t_fp32  # tensor cores beat fp32 SIMT at these sizes


def test_tf32_linear_passes_the_kernelbench_tolerance(helpers: dict[str, Any], strict_flags: Any) -> None:
    torch.manual_seed(0)
    m, k, n = 4096, 4096, 4096
    x, w, b = torch.randn(m, k, device="cuda"), torch.randn(n, k, device="cuda") / k ** 0.5, torch.randn(n, device="cuda")
    ref64 = torch.nn.functional.linear(x.double(), w.double(), b.double())
    op = torch.ops.aten.linear.default
    _check_and_time("linear 4096^3", helpers, op, (x, w, b), lambda: helpers["_kw_linear_tf32x3"](x, w, b), ref64)


def test_tf32_vgg_like_convolution_passes_the_kernelbench_tolerance(helpers: dict[str, Any], strict_flags: Any) -> None:
    torch.manual_seed(1)
    x = torch.randn(10, 256, 56, 56, device="cuda")
    w = torch.randn(256, 256, 3, 3, device="cuda") / (256 * 9) ** 0.5
    b = torch.randn(256, device="cuda")
    conv = torch.ops.aten.conv2d.default
    args = (x, w, b, [1, 1], [1, 1])
    ref64 = conv(x.double(), w.double(), b.double(), [1, 1], [1, 1])
    _check_and_time("conv2d 10x256x56x56 3x3", helpers, conv, args,
                    lambda: helpers["_kw_conv_tf32x3"](conv, *args), ref64)
