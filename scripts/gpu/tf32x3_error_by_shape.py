"""On the GPU machine: the 3xTF32 split's error against fp64 by GEMM shape, beside plain TF32 and fp32, and the
split chunked along K (torch only: the same hi/lo split as agents/offline/gemm_split.py, done in torch).

    source scripts/gpu/env.sh && python3 -P scripts/gpu/tf32x3_error_by_shape.py

Session 11 (H100): every compute-bound shape stayed at or below 4.2e-5 relative L2; batch 2 x N 49152 x K 16384
gave 1.6e-4 (cuBLAS's kernel for that shape), which is why gemm_split.split_pays() keeps such GEMMs fp32.
"""

from __future__ import annotations

import torch

SHAPES = [(2, 4096, 2048), (2, 4096, 4096), (2, 4096, 8192), (2, 4096, 16384), (2, 4096, 32768),
          (256, 256, 131072), (1024, 1024, 4096), (2, 49152, 16384)]  # (rows, out features, K)
CHUNK = 4096


def split(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hi = ((t.view(torch.int32) + 0x1000) & -0x2000).view(torch.float32)  # round to TF32's 10 mantissa bits
    return hi, t - hi


def split_product(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    (xh, xl), (wh, wl) = split(x), split(w)
    return torch.cat([xh, xl, xh], 1) @ torch.cat([wh, wh, wl], 1).T


def stats(y: torch.Tensor, ref: torch.Tensor) -> str:
    err = (y.double() - ref).abs()
    over = (err > 1e-4 + 1e-4 * ref.abs()).sum().item()  # the harness's fp32 tolerance
    return f"maxabs {err.max().item():.2e} relL2 {(err.norm() / ref.norm()).item():.2e} over tolerance {over}"


def main() -> None:
    torch.manual_seed(0)
    for m, n, k in SHAPES:
        x = torch.randn(m, k, device="cuda")
        w = (torch.rand(n, k, device="cuda") * 2 - 1) / k ** 0.5
        ref = x.double() @ w.double().T
        torch.backends.cuda.matmul.allow_tf32 = True
        whole = split_product(x, w)
        chunked = sum(split_product(x[:, i:i + CHUNK], w[:, i:i + CHUNK]) for i in range(0, k, CHUNK))
        tf32 = x @ w.T
        torch.backends.cuda.matmul.allow_tf32 = False
        fp32 = x @ w.T
        print(f"m={m} n={n} k={k}\n  3x: {stats(whole, ref)}\n  3x chunk{CHUNK}: {stats(chunked, ref)}\n"
              f"  tf32: {stats(tf32, ref)}\n  fp32: {stats(fp32, ref)}", flush=True)
        del x, w, ref, whole, chunked, tf32, fp32
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
