"""Pure matrix-multiplication problems: their library GEMMs become GEMM steps the candidate builds itself.

A plan qualifies when every step is a library GEMM (mm, bmm, matmul, einsum traced to those, linear without a
bias) in fp32, bf16 or fp16, optionally followed by torch.triu / torch.tril of the product (traced as two
aranges and a masking kernel), which becomes the GEMM's triangle: tiles wholly outside it are skipped and the
rest zeroed. Any other plan is left as it is, so fused chains (a GEMM with an epilogue) keep their library
GEMM and gemm_split's 3xTF32 path, and their candidates do not change.

The step's operands are (batch, M, K) and (batch, K, N) views of the input buffers: transposes are layouts
(strides), never copies; broadcast batch dims have stride 0; a shared right-hand matrix folds the batch into M
(one large GEMM instead of many small ones). `gemm_launch` turns those views into what a kernel is given
(row- or column-major, leading dimensions, batch strides, offsets, vector alignment), and `run_gemm` computes
a step from exactly those numbers on CPU, so the interpreter checks the translation against the Model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from math import prod
from typing import Literal

import torch

from kernelwright.agents.offline.ir import (
    Buffer,
    Const,
    ElementwiseStep,
    GemmStep,
    GemmTriangle,
    HostStep,
    Layout,
    Load,
    Op,
    Plan,
    StepOutput,
    expand_layout,
)

GEMM_TARGETS = ("aten.mm.default", "aten.bmm.default", "aten.matmul.default", "aten.linear.default")
GEMM_DTYPES = ("float32", "bfloat16", "float16")
MAX_GRID_Z = 65535  # a batched kernel puts the batch on the grid's z dimension
_ARANGE = "aten.arange.start_step"
ELEMENT_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
VECTOR_BYTES = 16  # the widest load a kernel issues per thread
# Tensor-core main loops copy operands with cp.async, 4 bytes at least: 16-bit operands need an even alignment.
MIN_TENSOR_CORE_ALIGN = {"float32": 1, "bfloat16": 2, "float16": 2}


# ---------------------------------------------------------------- launch numbers

@dataclass(frozen=True, slots=True)
class MatrixLayout:
    """A matrix in memory: element (r, c) at r * ld + c ("row") or c * ld + r ("col")."""

    order: Literal["row", "col"]
    ld: int


def matrix_layout(rows: int, cols: int, row_stride: int, col_stride: int) -> MatrixLayout | None:
    """How a strided (rows, cols) view is laid out, or None when neither dim is unit-stride (a kernel would need a
    copy). A size-1 dim's stride does not matter; its leading dimension is then the other extent."""
    if cols == 1 or col_stride == 1:
        ld = row_stride if rows > 1 else max(cols, 1)
        if ld >= max(cols, 1):
            return MatrixLayout("row", ld)
    if rows == 1 or row_stride == 1:
        ld = col_stride if cols > 1 else max(rows, 1)
        if ld >= max(rows, 1):
            return MatrixLayout("col", ld)
    return None


@dataclass(frozen=True, slots=True)
class GemmLaunch:
    """What a GEMM step's kernel is given: sizes, each operand's layout, batch strides and offsets (elements), the
    vector width each operand allows, and the triangle (0: none, 1: upper, 2: lower)."""

    dtype: str
    m: int
    n: int
    k: int
    batch: int
    a: MatrixLayout
    b: MatrixLayout
    ldc: int
    stride_a: int
    stride_b: int
    stride_c: int
    offset_a: int
    offset_b: int
    align_a: int
    align_b: int
    align_c: int
    triangle: int
    diagonal: int

    @property
    def gemv(self) -> bool:
        """A matrix-vector product whose matrix rows are contiguous: a memory-bound dot-product kernel serves it
        (a tensor-core tile would compute mostly padding)."""
        return (self.n == 1 and self.a.order == "row") or (self.m == 1 and self.b.order == "col")

    @property
    def fits_a_kernel(self) -> bool:
        return self.gemv or min(self.align_a, self.align_b, self.align_c) >= MIN_TENSOR_CORE_ALIGN[self.dtype]

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.m * self.n * self.k


def vector_alignment(dtype: str, extent: int, *others: int) -> int:
    """The widest vector (elements, up to 16 bytes) dividing the contiguous extent and every other offset."""
    widest = VECTOR_BYTES // ELEMENT_BYTES[dtype]
    width = widest
    while width > 1 and any(v % width for v in (extent, *others)):
        width //= 2
    return width


def gemm_launch(step: GemmStep, buffers: Mapping[str, Buffer]) -> GemmLaunch | None:
    """The kernel's numbers for `step`, or None when an operand is not a row- or column-major matrix."""
    m, n, k = step.mnk
    a = matrix_layout(m, k, step.a.strides[1], step.a.strides[2])
    b = matrix_layout(k, n, step.b.strides[1], step.b.strides[2])
    if a is None or b is None:
        return None
    dtype = buffers[step.a.buffer].dtype
    batch = step.batch
    sa, sb = (step.a.strides[0], step.b.strides[0]) if batch > 1 else (0, 0)
    a_extent = k if a.order == "row" else m
    b_extent = n if b.order == "row" else k
    align_a = vector_alignment(dtype, a_extent, a.ld, sa, step.a.offset)
    align_b = vector_alignment(dtype, b_extent, b.ld, sb, step.b.offset)
    align_c = vector_alignment(dtype, n)
    triangle = {None: 0, "upper": 1, "lower": 2}[step.triangle]
    return GemmLaunch(dtype, m, n, k, batch, a, b, n, sa, sb, m * n if batch > 1 else 0, step.a.offset,
                      step.b.offset, align_a, align_b, align_c, triangle, step.diagonal)


def run_gemm(step: GemmStep, buffers: Mapping[str, Buffer], mem: dict[str, torch.Tensor]) -> None:
    """The interpreter's GEMM: reads the operands through gemm_launch's numbers (not through the step's views),
    so a wrong leading dimension, order, stride or offset shows up as a mismatch with the Model."""
    launch = gemm_launch(step, buffers)
    if launch is None:
        raise ValueError(f"{step.name}: operands are not row- or column-major matrices")

    def operand(buffer: str, layout: MatrixLayout, rows: int, cols: int, batch_stride: int, offset: int) -> torch.Tensor:
        strides = (layout.ld, 1) if layout.order == "row" else (1, layout.ld)
        return torch.as_strided(mem[buffer].reshape(-1), (launch.batch, rows, cols), (batch_stride, *strides), offset)

    a = operand(step.a.buffer, launch.a, launch.m, launch.k, launch.stride_a, launch.offset_a)
    b = operand(step.b.buffer, launch.b, launch.k, launch.n, launch.stride_b, launch.offset_b)
    out = torch.matmul(a.to(torch.float64), b.to(torch.float64))
    if launch.triangle:
        cols = torch.arange(launch.n)[None, :] - torch.arange(launch.m)[:, None]
        keep = cols >= launch.diagonal if launch.triangle == 1 else cols <= launch.diagonal
        out = torch.where(keep, out, torch.zeros((), dtype=out.dtype))
    target = step.outputs[0].buffer
    mem[target] = out.to(getattr(torch, launch.dtype)).reshape(buffers[target].shape).contiguous()


# ---------------------------------------------------------------- recognising a pure-GEMM plan

def gemm_plan(plan: Plan) -> Plan | None:
    """The plan with its library GEMMs (and a triu / tril of one) as GemmSteps, or None when the plan is not a
    pure GEMM problem or an operand does not suit a kernel (then it keeps its library call)."""
    gemms: dict[str, GemmStep] = {}  # by output buffer
    aranges: dict[str, int] = {}  # arange(0, n) outputs: buffer -> n
    order: list[str] = []
    masks: list[ElementwiseStep] = []
    for step in plan.steps:
        if isinstance(step, HostStep) and step.target in GEMM_TARGETS:
            gemm = _gemm_step(step, plan.buffers)
            if gemm is None:
                return None
            gemms[gemm.outputs[0].buffer] = gemm
            order.append(gemm.outputs[0].buffer)
        elif isinstance(step, HostStep) and (n := _arange_length(step)) is not None:
            aranges[step.outputs[0] or ""] = n
        elif isinstance(step, ElementwiseStep):
            masks.append(step)
        else:
            return None
    if not gemms:
        return None
    plan_outputs = {o.buffer for o in plan.outputs if isinstance(o, Layout)}
    for mask in masks:
        tri = _triangle(mask, plan.buffers, aranges)
        if tri is None or tri[0] not in gemms or tri[0] in plan_outputs:
            return None
        source, triangle, diagonal = tri
        gemm = gemms[source]
        if gemm.triangle is not None:
            return None
        gemms[source] = replace(gemm, triangle=triangle, diagonal=diagonal, outputs=(StepOutput(0, mask.outputs[0].buffer),))
    steps = []
    for key in order:
        gemm = gemms[key]
        gemm = gemm if gemm.triangle else _fold_batch(gemm)
        launch = gemm_launch(gemm, plan.buffers)
        if launch is None or not launch.fits_a_kernel or gemm.batch > MAX_GRID_Z:
            return None
        steps.append(gemm)
    used = {s.a.buffer for s in steps} | {s.b.buffer for s in steps} | {s.outputs[0].buffer for s in steps} | plan_outputs
    buffers = {name: buf for name, buf in plan.buffers.items() if name in used or buf.origin != "step"}
    notes = plan.notes + tuple(f"{s.name}: GEMM on the candidate's own kernel" for s in steps)
    return Plan(buffers, plan.user_inputs, tuple(steps), plan.outputs, kept_aten_ops=(), notes=notes,
                output_kind=plan.output_kind)


def _gemm_step(step: HostStep, buffers: Mapping[str, Buffer]) -> GemmStep | None:
    if step.kwargs or len(step.outputs) != 1 or step.outputs[0] is None:
        return None
    args = list(step.args)
    if step.target == "aten.linear.default":
        if len(args) == 3 and args[2] is None:
            args = args[:2]
        if len(args) != 2 or not isinstance(args[1], Layout) or len(args[1].shape) != 2:
            return None
        w = args[1]
        args[1] = Layout(w.buffer, (w.shape[1], w.shape[0]), (w.strides[1], w.strides[0]), w.offset)  # w.T
    if len(args) != 2 or not all(isinstance(t, Layout) for t in args):
        return None
    a, b = args
    dtypes = {buffers[a.buffer].dtype, buffers[b.buffer].dtype, buffers[step.outputs[0]].dtype}
    if len(dtypes) != 1 or dtypes.pop() not in GEMM_DTYPES:
        return None
    views = _batched_views(a, b)
    if views is None:
        return None
    a3, b3 = views
    if min(a3.shape[1], a3.shape[2], b3.shape[2], a3.shape[0]) == 0:
        return None
    if prod(a3.shape[:2]) * b3.shape[2] != buffers[step.outputs[0]].numel:
        return None
    return GemmStep(step.name, a3, b3, (StepOutput(0, step.outputs[0]),))


def _batched_views(a: Layout, b: Layout) -> tuple[Layout, Layout] | None:
    """matmul's operands as (batch, M, K) and (batch, K, N) views: vectors become 1-row / 1-column matrices,
    batch dims broadcast and collapse to one (None when their strides do not collapse)."""
    if not a.shape or not b.shape:
        return None
    if len(a.shape) == 1:
        a = Layout(a.buffer, (1, a.shape[0]), (0, a.strides[0]), a.offset)
    if len(b.shape) == 1:
        b = Layout(b.buffer, (b.shape[0], 1), (b.strides[0], 0), b.offset)
    if a.shape[-1] != b.shape[-2]:
        return None
    try:
        batch_shape = tuple(torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
        a = expand_layout(a, batch_shape + a.shape[-2:])
        b = expand_layout(b, batch_shape + b.shape[-2:])
    except (RuntimeError, ValueError):
        return None
    dims = [(size, sa, sb) for size, sa, sb in zip(batch_shape, a.strides, b.strides) if size != 1]
    while len(dims) > 1:
        (s0, a0, b0), (s1, a1, b1) = dims[-2], dims[-1]
        if a0 != a1 * s1 or b0 != b1 * s1:
            return None
        dims[-2:] = [(s0 * s1, a1, b1)]
    size, sa, sb = dims[0] if dims else (1, 0, 0)
    return (Layout(a.buffer, (size, *a.shape[-2:]), (sa, *a.strides[-2:]), a.offset),
            Layout(b.buffer, (size, *b.shape[-2:]), (sb, *b.strides[-2:]), b.offset))


def _fold_batch(step: GemmStep) -> GemmStep:
    """A batch of products sharing one right-hand matrix whose left operands stack as rows: one GEMM with
    batch * M rows (the output's (batch, M, N) and (batch * M, N) are the same memory)."""
    batch, (m, _, _) = step.batch, step.mnk
    sa_batch, sa_row, sa_col = step.a.strides
    if batch == 1 or step.b.strides[0] != 0 or sa_batch != sa_row * m:
        return step
    a = Layout(step.a.buffer, (1, batch * m, step.a.shape[2]), (0, sa_row, sa_col), step.a.offset)
    b = Layout(step.b.buffer, (1, *step.b.shape[1:]), (0, *step.b.strides[1:]), step.b.offset)
    return replace(step, a=a, b=b)


def _arange_length(step: HostStep) -> int | None:
    if step.target != _ARANGE or len(step.outputs) != 1:
        return None
    args = tuple(step.args)
    if len(args) == 3 and args[2] == 1:
        args = args[:2]
    extra = {k for k, _ in step.kwargs} - {"layout", "device", "pin_memory", "dtype"}
    if extra or len(args) != 2 or args[0] != 0 or not isinstance(args[1], int):
        return None
    return args[1]


def _triangle(step: ElementwiseStep, buffers: Mapping[str, Buffer],
              aranges: Mapping[str, int]) -> tuple[str, GemmTriangle, int] | None:
    """(the masked buffer, upper | lower, diagonal) when the step is torch.triu / tril of a whole buffer, as
    torch decomposes them: where(arange(cols)[None, :] - arange(rows)[:, None] >= d (triu) or <= d (tril), x, 0)."""
    nodes, shape = step.dag.nodes, step.dag.shape
    if len(step.outputs) != 1 or step.outputs[0].node != len(nodes) - 1 or len(shape) < 2:
        return None
    where = nodes[-1]
    if not (isinstance(where, Op) and where.op == "where"):
        return None
    cond, value, zero = (nodes[i] for i in where.args)
    if not (isinstance(zero, Const) and zero.value == 0 and isinstance(value, Load) and isinstance(cond, Op)):
        return None
    src = value.layout
    if not (src.is_identity_of(buffers[src.buffer]) and src.shape == shape and value.dtype == where.dtype):
        return None
    if cond.op not in ("ge", "le") or len(cond.args) != 2:
        return None
    diff, diagonal = (nodes[i] for i in cond.args)
    if not (isinstance(diff, Op) and diff.op == "sub" and isinstance(diagonal, Const)
            and isinstance(diagonal.value, int) and not isinstance(diagonal.value, bool)):
        return None
    col, row = (nodes[i] for i in diff.args)
    if not (_index_load(col, shape, -1, aranges) and _index_load(row, shape, -2, aranges)):
        return None
    return src.buffer, ("upper" if cond.op == "ge" else "lower"), diagonal.value


def _index_load(expr: object, shape: tuple[int, ...], dim: int, aranges: Mapping[str, int]) -> bool:
    """A load of arange(shape[dim]) broadcast along every other dim."""
    if not isinstance(expr, Load) or aranges.get(expr.layout.buffer) != shape[dim]:
        return False
    want = [0] * len(shape)
    want[dim] = 1
    return expr.layout.shape == shape and list(expr.layout.strides) == want and expr.layout.offset == 0
