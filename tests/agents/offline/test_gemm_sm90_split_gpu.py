"""The Hopper split GEMM (agents/offline/gemm_sm90_split.py: 3xTF32 as one TF32 wgmma GEMM over a tripled K) on a
GPU, in every configuration of SM90_CONFIGS: against float64 at the strict fp32 tolerance on positive inputs (a
square GEMM, a padded K with an odd M and a row stride, a batch, K in pieces with a short last one; B row- and
column-major), a C whose rows are not 16-byte aligned refused with its code, and its time printed beside eager's
fp32 GEMM and cuBLAS in plain TF32 (run with -s; a figure, not an assertion). Run on an H100 in session 18 with
"sm90" alone (eval/BENCHMARKS.md): the refusal test failed there (CUTLASS's own check let the row of 1001 floats
through), so the launcher now checks it itself. Session 19: every test passed in all three configurations."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from kernelwright.agents.offline.gemm_sm90_split import SM90_CONFIGS
from support.gpu_checks import assert_close_to_float64
from support.tf32 import cuda_ms, strict_backend_flags

pytestmark = [pytest.mark.gpu, pytest.mark.nvcc]


@pytest.fixture(scope="module", params=list(SM90_CONFIGS))
def lib(request: pytest.FixtureRequest) -> Any:
    """The launcher of one configuration (gemm_sm90_split.SM90_CONFIGS), built alone."""
    from kernelwright.agents.offline.gemm_sm90_split import SM90_SPLIT_SPEC, sm90_split_cuda, sm90_split_launcher
    from kernelwright.tools.compile.raw_kernel import load_cuda

    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("wgmma needs sm_90")
    config = SM90_CONFIGS[request.param]
    launcher = sm90_split_launcher(config)
    built = load_cuda(sm90_split_cuda(config), {launcher: SM90_SPLIT_SPEC}, headers=("cutlass",))
    return SimpleNamespace(name=request.param, launch=getattr(built, launcher))


def _split_gemm(lib: Any, a_store: torch.Tensor, b: torch.Tensor, k: int, b_transposed: bool = False) -> torch.Tensor:
    """C = A @ B with A the first k columns of each row of a_store (batch, m, lda) and B (batch, k, n) contiguous, or
    with b_transposed, B = b.transpose(1, 2) for b (batch, n, k) contiguous (a column-major B)."""
    from kernelwright.agents.offline.gemm_sm90_split import pieces, scratch_bytes

    batch, m, lda = a_store.shape
    n = b.shape[1] if b_transposed else b.shape[-1]
    b_row, b_col = (1, k) if b_transposed else (n, 1)
    c = torch.empty(batch, m, n, device="cuda")
    scratch = torch.empty(scratch_bytes(m, n, k, batch), dtype=torch.uint8, device="cuda")
    lib.launch(a_store, b, c, m, n, k, batch, lda, 1, m * lda, 0, b_row, b_col, k * n, 0, n, m * n, *pieces(k),
               scratch.numel(), scratch)
    return c


@pytest.mark.parametrize("m, n, k, lda, batch", [(4096, 4096, 4096, 4096, 1), (1001, 1024, 999, 1003, 1),
                                                 (3, 512, 256, 256, 2), (256, 512, 5921, 5921, 2)])
def test_the_split_gemm_matches_float64_at_the_strict_tolerance(lib: Any, m: int, n: int, k: int, lda: int,
                                                                 batch: int) -> None:
    torch.manual_seed(0)
    a_store = torch.rand(batch, m, lda, device="cuda")  # KernelBench's positive inputs: the sums grow with K
    b = torch.rand(batch, k, n, device="cuda")
    out = _split_gemm(lib, a_store, b, k)
    ref = torch.matmul(a_store[:, :, :k].double(), b.double())
    assert_close_to_float64(out, ref)
    assert torch.equal(out, _split_gemm(lib, a_store, b, k))  # nothing kept between calls changes the result
    b_t = b.transpose(1, 2).contiguous()  # the same B, column-major
    assert torch.equal(_split_gemm(lib, a_store, b_t, k, b_transposed=True), out)


def test_a_shape_cutlass_cannot_implement_is_refused_with_its_code(lib: Any) -> None:
    a = torch.randn(1, 64, 64, device="cuda")
    with pytest.raises(RuntimeError, match="error -1"):
        _split_gemm(lib, a, torch.randn(1, 64, 1001, device="cuda"), 64)  # C rows of 1001 floats: not 16-byte aligned


def test_the_split_gemm_time_beside_eager_and_plain_tf32(lib: Any) -> None:
    torch.manual_seed(1)
    m = n = k = 4096
    a, b = torch.randn(1, m, k, device="cuda"), torch.randn(1, k, n, device="cuda")
    with strict_backend_flags():  # PyTorch's default for fp32 matmul: no TF32
        t_eager = cuda_ms(lambda: torch.matmul(a, b))
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        t_tf32 = cuda_ms(lambda: torch.matmul(a, b))
    finally:
        torch.set_float32_matmul_precision(saved)
    t_split = cuda_ms(lambda: _split_gemm(lib, a, b, k))
    flops = 2 * m * n * k
    print(f"\n{lib.name} split GEMM {m}x{n}x{k}: eager fp32 {t_eager:.3f} ms ({flops / t_eager / 1e9:.0f} TFLOP/s), cuBLAS "
          f"TF32 {t_tf32:.3f} ms, split {t_split:.3f} ms ({flops / t_split / 1e9:.0f} TFLOP/s at fp32 accuracy): "
          f"{t_eager / t_split:.2f}x over eager")
    assert t_split > 0
