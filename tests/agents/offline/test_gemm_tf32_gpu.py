"""Plain TF32 GEMMs on a GPU (the kernelbench profile's mode): a linear and a VGG-like convolution pass that
profile's fp32 tolerance against an fp64 reference, the flags come back as they were, and the times against
fp32 (TF32 off) and the 3xTF32 split are printed (run with -s to see them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from kernelwright.agents.offline.cuda_common import PRELUDE
from kernelwright.agents.offline.gemm_split import SPLIT_CUDA, SPLIT_LAUNCHER, SPLIT_SPEC, gemm_python
from kernelwright.tools.verify.compare import compare_output
from kernelwright.tools.verify.precision import precision_profile
from support.tf32 import cuda_ms, strict_backend_flags

pytestmark = [pytest.mark.gpu, pytest.mark.nvcc]

KERNELBENCH_FP32 = precision_profile("kernelbench").tolerances["float32"]


@pytest.fixture(scope="module")
def helpers() -> dict[str, Any]:
    from kernelwright.tools.compile.raw_kernel import load_cuda

    namespace: dict[str, Any] = {"torch": torch, "_kw_lib": load_cuda(PRELUDE + SPLIT_CUDA, {SPLIT_LAUNCHER: SPLIT_SPEC})}
    exec(compile(gemm_python(True, True), "<gemm_split>", "exec"), namespace)
    return namespace


@pytest.fixture
def strict_flags() -> Iterator[None]:
    with strict_backend_flags():
        yield


def _check_and_time(name: str, helpers: dict[str, Any], op: Any, args: tuple[Any, ...], split: Callable[[], Any],
                    ref64: torch.Tensor) -> None:
    tf32 = helpers["_kw_tf32_call"](op, *args)
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == ("highest", False)
    verdict = compare_output(0, tf32.double(), ref64, KERNELBENCH_FP32)
    assert verdict.passed, verdict.message
    rel_l2 = float((tf32.double() - ref64).norm() / ref64.norm())
    t_fp32 = cuda_ms(lambda: op(*args))
    t_tf32 = cuda_ms(lambda: helpers["_kw_tf32_call"](op, *args))
    t_split = cuda_ms(split)
    print(f"\n{name}: fp32 {t_fp32:.3f} ms, 3xTF32 split {t_split:.3f} ms, plain TF32 {t_tf32:.3f} ms "
          f"(rel L2 {rel_l2:.1e}, max abs err {verdict.max_abs_err:.1e})")
    assert rel_l2 > 1e-6  # TF32 really ran (fp32 SIMT is ~5e-7 here): the flags reached cuBLAS/cuDNN


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


def _candidate_model(problem: Any, params: dict[str, Any], tmp_path: Any, name: str) -> tuple[Any, list[Any]]:
    from kernelwright.agents.offline import propose
    from kernelwright.tools.problem.files import check_source, import_file

    (cand,) = [c for c in propose(problem, params=params, allow_tf32=True) if c.variant == "fused"]
    module = import_file(check_source(cand.write(tmp_path / f"{name}.py"), "candidate"), f"kw_tf32_{name}")
    prob = import_file(check_source(problem, "problem"), f"kw_tf32_problem_{name}")
    torch.manual_seed(0)
    inputs = [x.cuda() for x in prob.get_inputs()]
    torch.manual_seed(42)
    return module.ModelNew(*prob.get_init_inputs()).cuda().eval(), inputs


def test_the_tf32_cutlass_gemm_passes_the_kernelbench_tolerance(cache_env: Any, strict_flags: Any, tmp_path: Any) -> None:
    """The candidate's own CUTLASS GEMM in plain TF32 (square_fp32, 4096^3) against fp64, timed against its
    3xTF32 setting and eager fp32."""
    from support.gemm import fixture_gemm_problems

    problem = next(p for p in fixture_gemm_problems() if p.stem == "square_fp32")
    tf32, inputs = _candidate_model(problem, {}, tmp_path, "tf32")
    split, _ = _candidate_model(problem, {"h0.MATH": "f32x3"}, tmp_path, "split")
    with torch.no_grad():
        out = tf32(*inputs)
        ref64 = torch.matmul(*[x.double() for x in inputs])
        verdict = compare_output(0, out.double(), ref64, KERNELBENCH_FP32)
        assert verdict.passed, verdict.message
        rel_l2 = float((out.double() - ref64).norm() / ref64.norm())
        t_fp32 = cuda_ms(lambda: torch.matmul(*inputs))
        t_split, t_tf32 = cuda_ms(lambda: split(*inputs)), cuda_ms(lambda: tf32(*inputs))
    print(f"\nCUTLASS GEMM 4096^3: eager fp32 {t_fp32:.3f} ms, 3xTF32 {t_split:.3f} ms, plain TF32 {t_tf32:.3f} ms "
          f"(rel L2 {rel_l2:.1e})")
    assert rel_l2 > 1e-6  # TF32 operands really (the split's error is ~1e-6 or below)
