"""The float64 arbiter: where the fp32 reference's own rounding is as large as the tolerance, judge against float64.

Why: a problem whose outputs cancel has an fp32 reference whose own rounding error reaches the fp32 tolerance.
KernelBench's level2/14 sums 8192 GEMM outputs of `randn` weights per row, so an output near 12 is the sum of terms
near 50. Every kernel that sums in another order than the reference's library call then fails elementwise against
it, while being as close to the exact answer as the reference is. The arbiter runs the Model in float64 (exact
enough), takes the fp32 reference's own error there (sigma: its rms over the output), and judges the candidate
against the float64 output, with atol widened by SIGMA_SLACK x sigma. Where the reference is accurate, sigma is about
1e-7 of the outputs and the widening is nothing. A wrong kernel still fails: it is judged against the exact answer,
and the widening is bounded by the reference's own error. It only ever looks at an output that already failed.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from kernelwright.tools.verify.compare import CHUNK_ELEMENTS, OutputComparison, Tolerance, compare_output

# A kernel's rounding error of the same kind as the reference's has about the same rms; its largest element over
# up to 1e9 elements lies about 6 rms out (Gaussian tail), and a different but valid summation order may double the
# rms: 10 sigma admits those and nothing of a size the reference itself does not already get wrong.
SIGMA_SLACK = 10.0


def reference_rms_error(ref: torch.Tensor, ref64: torch.Tensor) -> float:
    """rms(ref - ref64), accumulated in float64 chunk by chunk (bounded scratch for outputs of gigabytes)."""
    r, r64 = ref.detach().reshape(-1), ref64.detach().reshape(-1).to(ref.device)
    total = 0.0
    for start in range(0, r.numel(), CHUNK_ELEMENTS):
        diff = r[start:start + CHUNK_ELEMENTS].double() - r64[start:start + CHUNK_ELEMENTS].double()
        total += float(torch.dot(diff, diff))
    return math.sqrt(total / max(r.numel(), 1))


def arbitrate(index: int, out: torch.Tensor, ref: torch.Tensor, ref64: torch.Tensor, tol: Tolerance, *,
              check_rel_l2: bool = True) -> OutputComparison | None:
    """`out` judged against the float64 reference `ref64`, atol widened by the fp32 reference's own rms error; None
    (no verdict: the first one stands) where the arbiter has nothing sound to say: shapes or dtypes apart, or a
    reference that is not finite everywhere (infinities and NaN are judged exactly, as compare_output does)."""
    if not (out.is_floating_point() and ref.is_floating_point() and ref64.is_floating_point()):
        return None
    if tuple(out.shape) != tuple(ref.shape) or tuple(ref64.shape) != tuple(ref.shape) or out.dtype != ref.dtype:
        return None
    if not (bool(torch.isfinite(ref).all()) and bool(torch.isfinite(ref64).all())):
        return None
    sigma = reference_rms_error(ref, ref64)
    widened = replace(tol, atol=tol.atol + SIGMA_SLACK * sigma)
    verdict = compare_output(index, out, ref64.to(device=out.device, dtype=out.dtype), widened,
                             check_rel_l2=check_rel_l2)
    note = (f"judged against float64 (the float64 arbiter): the fp32 reference's own rms error there is "
            f"{sigma:.3g}, so atol {tol.atol:g} became {widened.atol:.3g}")
    return replace(verdict, message=f"{verdict.message}; {note}",
                   float64_arbiter={"reference_rms_error": sigma, "atol": widened.atol})
