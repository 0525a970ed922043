"""Judge candidate outputs against reference outputs (runs in the harness, never in a worker)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from kernelwright.tools.verify.gpu_memory import POISON_BYTE


@dataclass(frozen=True, slots=True)
class Tolerance:
    atol: float
    rtol: float
    rel_l2: float  # ||out - ref|| / ||ref||: catches outputs that pass only because |ref| is tiny

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(1e-4, 1e-4, 1e-3),
    "float64": Tolerance(1e-7, 1e-7, 1e-6),
    "float16": Tolerance(1e-2, 1e-2, 2e-2),
    # bf16 ulp is 2^-7: a fused kernel that rounds once and eager that rounds after every op can differ by
    # two roundings (~1.6%), so 1e-2 would reject correct fusions; 2e-2 still fails any real error.
    "bfloat16": Tolerance(2e-2, 2e-2, 3e-2),
}


def tolerance_for(dtype: torch.dtype, overrides: dict[str, Tolerance] | None = None) -> Tolerance:
    name = str(dtype).removeprefix("torch.")
    table = {**DEFAULT_TOLERANCES, **(overrides or {})}
    return table.get(name, Tolerance(0.0, 0.0, 0.0))  # integers and bools: exact


@dataclass(frozen=True, slots=True)
class OutputComparison:
    index: int
    passed: bool
    failure: str | None  # shape_mismatch | dtype_mismatch | unwritten_output | nan_output | wrong_output | degenerate_output
    message: str
    max_abs_err: float
    max_rel_err: float
    mismatch_fraction: float
    first_bad_index: tuple[int, ...] | None
    rel_l2: float | None
    rel_l2_checked: bool
    # set when tools.verify.arbiter judged this output against float64: the fp32 reference's rms error, the atol used
    float64_arbiter: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["first_bad_index"] = list(self.first_bad_index) if self.first_bad_index is not None else None
        return out


CHUNK_ELEMENTS = 1 << 25  # elements compared per step: a few hundred MB of scratch whatever the output's size


def compare_output(index: int, out: torch.Tensor, ref: torch.Tensor, tol: Tolerance, *,
                   check_rel_l2: bool = True) -> OutputComparison:
    """Judge one output against the reference, chunk by chunk on the tensors' own device (the GPU in a run),
    so outputs of gigabytes need only bounded scratch memory."""
    def fail(kind: str, message: str, **stats: Any) -> OutputComparison:
        base: dict[str, Any] = dict(max_abs_err=float("inf"), max_rel_err=float("inf"), mismatch_fraction=1.0,
                    first_bad_index=None, rel_l2=None, rel_l2_checked=False)
        base.update(stats)
        return OutputComparison(index, False, kind, message, **base)

    if tuple(out.shape) != tuple(ref.shape):
        return fail("shape_mismatch", f"output {index}: shape {tuple(out.shape)} != reference {tuple(ref.shape)}")
    if out.dtype != ref.dtype:
        return fail("dtype_mismatch", f"output {index}: dtype {out.dtype} != reference {ref.dtype}")
    if out.numel() == 0:
        return OutputComparison(index, True, None, "empty output", 0.0, 0.0, 0.0, None, None, False)
    acc = _Streaming(tol)
    o_flat, r_flat = _flat(out), _flat(ref.to(out.device))
    for start in range(0, o_flat.numel(), CHUNK_ELEMENTS):
        acc.add(o_flat[start:start + CHUNK_ELEMENTS], r_flat[start:start + CHUNK_ELEMENTS], start)
    first = _unravel(acc.first_bad, tuple(out.shape)) if acc.first_bad is not None else None
    rel_l2 = None
    if out.is_floating_point() and acc.finite:
        denom, num = math.sqrt(acc.ref_sq), math.sqrt(acc.diff_sq)
        rel_l2 = num / denom if denom > 0 else (0.0 if num == 0 else float("inf"))
    max_abs = acc.max_abs if acc.finite else float("inf")
    max_rel = acc.max_rel if acc.finite and math.isfinite(acc.max_rel) else float("inf")
    stats: dict[str, Any] = dict(max_abs_err=max_abs, max_rel_err=max_rel, mismatch_fraction=acc.n_bad / out.numel(),
                 first_bad_index=first, rel_l2=rel_l2, rel_l2_checked=check_rel_l2 and rel_l2 is not None)
    if acc.n_bad:
        if acc.n_poison:
            return fail("unwritten_output", f"output {index}: {acc.n_poison} of {out.numel()} elements were never written "
                        "(they still hold the harness's poison bytes: partial write or reliance on stale memory)", **stats)
        if acc.nan_where_bad:
            return fail("nan_output", f"output {index}: NaN where the reference is finite, first at {first}", **stats)
        return fail("wrong_output", f"output {index}: {acc.n_bad} of {out.numel()} elements outside tolerance "
                    f"(atol={tol.atol}, rtol={tol.rtol}); max abs err {max_abs:.3g}, first at {first}", **stats)
    if check_rel_l2 and rel_l2 is not None and rel_l2 > tol.rel_l2:
        return fail("degenerate_output", f"output {index}: passes the elementwise tolerance only because the reference "
                    f"is small; relative L2 error {rel_l2:.3g} > {tol.rel_l2}", **stats)
    return OutputComparison(index, True, None, "ok", **stats)


class _Streaming:
    """Error statistics accumulated over chunks of one output (flat, logical order)."""

    def __init__(self, tol: Tolerance) -> None:
        self.tol = tol
        self.n_bad = self.n_poison = 0
        self.nan_where_bad = False
        self.first_bad: int | None = None
        self.max_abs = self.max_rel = 0.0
        self.ref_sq = self.diff_sq = 0.0
        self.finite = True  # every |out - ref| finite so far

    def add(self, out: torch.Tensor, ref: torch.Tensor, offset: int) -> None:
        tol = self.tol
        # float32 arithmetic is exact enough to judge fp32/fp16/bf16 tolerances and several times cheaper than
        # float64; maxima double as finiteness tests (max propagates NaN); buffers are reused in place.
        work = torch.float32 if out.dtype in (torch.float32, torch.float16, torch.bfloat16) else torch.float64
        o, r = out.to(work), ref.to(work)
        diff = torch.sub(o, r).abs_()
        abs_r = r.abs()
        scratch = torch.mul(abs_r, tol.rtol).add_(tol.atol)
        bad = torch.le(diff, scratch).logical_not_()  # NaN compares false, so NaN is bad
        if not math.isfinite(float(abs_r.max())):
            same = (o == r) | (torch.isnan(o) & torch.isnan(r))  # equal infinities (and NaN only where the reference has it)
            bad &= ~same
            diff = torch.where(same, torch.zeros_like(diff), diff)
        n_bad = int(bad.sum())
        if n_bad:
            if self.first_bad is None:
                self.first_bad = offset + int(torch.nonzero(bad)[0, 0])
            poisoned = _poison_mask(out)
            self.n_poison += int((poisoned & bad).sum()) if poisoned is not None else 0
            self.nan_where_bad = self.nan_where_bad or bool(torch.isnan(o[bad]).any())
            self.n_bad += n_bad
        chunk_max = float(diff.max())
        if not math.isfinite(chunk_max):
            self.finite = False
        if not self.finite:
            return
        self.max_abs = max(self.max_abs, chunk_max)
        self.max_rel = max(self.max_rel, float(torch.div(diff, abs_r.clamp_min_(1e-12), out=scratch).max()))
        if out.is_floating_point():
            self.ref_sq += _norm(r) ** 2
            self.diff_sq += _norm(diff) ** 2


def _flat(t: torch.Tensor) -> torch.Tensor:
    """Flat logical-order view (a copy only for non-contiguous tensors)."""
    return t.detach().reshape(-1) if t.is_contiguous() else t.detach().contiguous().reshape(-1)


def _unravel(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        flat_index, rem = divmod(flat_index, max(size, 1))
        index.append(rem)
    return tuple(reversed(index))


def _norm(t: torch.Tensor) -> float:
    """L2 norm, accumulated in the tensor's own precision (pairwise) and redone in float64 only when that
    overflows or underflows: the relative-L2 test needs a few digits, not sixteen."""
    value = float(torch.linalg.vector_norm(t))
    if math.isfinite(value) and (value > 0 or not bool(t.any())):
        return value
    return float(torch.linalg.vector_norm(t, dtype=torch.float64))


def _poison_mask(out: torch.Tensor) -> torch.Tensor | None:
    """Elements whose bytes are all the poison byte (never written by the candidate)."""
    size = out.element_size()
    if out.dtype == torch.bool:
        return None
    raw = out.contiguous().reshape(-1).view(torch.uint8).reshape(-1, size)
    return (raw == POISON_BYTE).all(dim=1).reshape(out.shape)


def outputs_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and x.dtype == y.dtype and torch.equal(x.reshape(-1).view(torch.uint8), y.reshape(-1).view(torch.uint8))
        for x, y in zip(a, b))


def outputs_close(a: list[torch.Tensor], b: list[torch.Tensor], overrides: dict[str, Tolerance] | None = None) -> bool:
    """Would `a` pass as `b` under the tolerance? (used to spot input-insensitive problems)"""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return False
        tol = tolerance_for(x.dtype, overrides)

        def close(u: torch.Tensor, v: torch.Tensor, tol: Tolerance = tol) -> bool:
            return torch.allclose(u.to(torch.float64), v.to(torch.float64), atol=tol.atol, rtol=tol.rtol, equal_nan=True)

        # Outputs of different inputs usually differ everywhere: a strided sample (a subset, so failing on it
        # means failing on all) settles that without converting hundreds of MB to float64.
        flat_x, flat_y = x.reshape(-1), y.reshape(-1)
        step = max(1, flat_x.numel() // _SAMPLE)
        if step > 1 and not close(flat_x[::step], flat_y[::step]):
            return False
        if not close(flat_x, flat_y):
            return False
    return True


_SAMPLE = 1 << 16
