"""Pure convolution problems: their library conv (and its bias) becomes a ConvStep the candidate builds itself.

A plan qualifies when its only work is one `conv1d/2d/3d` or `conv_transpose1d/2d/3d` library call in fp32,
bf16 or fp16, optionally followed by the per-channel bias add the planner splits off it
(planner.conv_then_bias). A grouped conv runs one implicit GEMM per group; channel counts the operand copies
cannot align get zero channels; a transposed conv with both a stride and a dilation above 1 runs as a conv over
its zero-inserted input. Anything else keeps its plan (and cuDNN): depthwise convs, a conv inside a longer
chain (level 2), tensors whose single image exceeds CUTLASS 2.x's 2 GiB tensor limit.

`conv_launch` turns a step into the numbers a CUTLASS implicit-GEMM kernel is given (a 3-D problem size; 1-D
and 2-D problems are 3-D ones with unit depth and height), and `run_conv` computes a step from exactly those
numbers on CPU, so the interpreter checks the translation against the Model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from math import prod
from typing import Any, Literal

import torch
import torch.nn.functional as F

from kernelwright.agents.offline.gemm_plan import (
    ELEMENT_BYTES,
    GEMM_DTYPES,
    MIN_TENSOR_CORE_ALIGN,
    VECTOR_BYTES,
    vector_alignment,
)
from kernelwright.agents.offline.ir import (
    Buffer,
    ConvStep,
    ElementwiseStep,
    HostStep,
    Layout,
    Load,
    Op,
    Plan,
    Step,
    StepOutput,
)

# target -> (spatial dims, transposed)
CONV_TARGETS = {
    "aten.conv1d.default": (1, False), "aten.conv2d.default": (2, False), "aten.conv3d.default": (3, False),
    "aten.conv_transpose1d.input": (1, True), "aten.conv_transpose2d.input": (2, True),
    "aten.conv_transpose3d.input": (3, True),
    # conv_transpose1d traces to its .default overload (same arguments)
    "aten.conv_transpose1d.default": (1, True), "aten.conv_transpose2d.default": (2, True),
    "aten.conv_transpose3d.default": (3, True),
}
TENSOR_LIMIT_BYTES = 1 << 31  # CUTLASS 2.x conv iterators index one tensor with 32-bit offsets


@dataclass(frozen=True, slots=True)
class ConvLaunch:
    """A step as CUTLASS's implicit GEMM sees it, for one group. `operator` fprop: activation = the step's input
    (N, D, H, W, C), output (N, Z, P, Q, K); dgrad (a transposed conv): activation = the step's output
    (N, D, H, W, C), output gradient = its input (N, Z, P, Q, K). The filter is (K, T, R, S, C) either way. Sizes
    are 3-D (depth, height, width); a 2-D step has D = T = Z = 1, a 1-D one also H = R = P = 1.
    `stride_support` "unity": every stride is 1 (dgrad then allows dilation).

    `c` and `k` are per group and padded with zero channels up to what the kernel's operand copies need
    (`c_used` / `k_used` of them are real): the layout copies write the zeros, which leave the result exact. A
    transposed conv with both a stride and a dilation above 1 (CUTLASS's strided dgrad has no dilation) is an
    fprop over its input with `zero_insert` - 1 zeros between samples, with the filter flipped and its two
    channel roles swapped (`flip`), stride 1 and padding dilation * (kernel - 1) - padding; `src` is the step
    input's own spatial size (before zero insertion)."""

    dtype: str
    operator: Literal["fprop", "dgrad"]
    dims: int  # 2 or 3: which CUTLASS problem size (1-D steps are 2-D ones)
    n: int
    c: int
    k: int
    dhw: tuple[int, int, int]
    trs: tuple[int, int, int]
    zpq: tuple[int, int, int]
    pad: tuple[int, int, int]
    stride: tuple[int, int, int]
    dilation: tuple[int, int, int]
    align_a: int
    align_b: int
    align_c: int
    stride_support: Literal["unity", "strided"]
    groups: int = 1
    c_used: int = 0
    k_used: int = 0
    src: tuple[int, int, int] = (1, 1, 1)
    zero_insert: tuple[int, int, int] = (1, 1, 1)
    flip: bool = False

    @property
    def in_channels(self) -> int:
        """Channels of the step's input tensor per group, padded (what the NCHW -> NHWC copy writes)."""
        return self.c if self.operator == "fprop" else self.k

    @property
    def out_channels(self) -> int:
        return self.k if self.operator == "fprop" else self.c

    @property
    def in_used(self) -> int:
        """Real channels of the step's input per group (what the NCHW -> NHWC copy reads)."""
        return self.c_used if self.operator == "fprop" else self.k_used

    @property
    def out_used(self) -> int:
        return self.k_used if self.operator == "fprop" else self.c_used

    @property
    def in_spatial(self) -> int:
        return prod(self.dhw if self.operator == "fprop" else self.zpq)

    @property
    def out_spatial(self) -> int:
        return prod(self.zpq if self.operator == "fprop" else self.dhw)

    @property
    def filter_numel(self) -> int:
        """Elements of all the groups' channels-last filters (padded)."""
        return self.groups * self.k * self.c * prod(self.trs)

    @property
    def flops(self) -> int:
        """The conv's useful work: real channels only, and no products with inserted zeros."""
        positions = prod(self.src) if self.flip else prod(self.zpq)
        return 2 * self.n * self.groups * positions * self.k_used * self.c_used * prod(self.trs)

    @property
    def fits_a_kernel(self) -> bool:
        bytes_ = ELEMENT_BYTES[self.dtype]
        per_image = max(self.in_channels * self.in_spatial, self.out_channels * self.out_spatial) * bytes_
        return (min(self.align_a, self.align_b) >= least_channels(self.dtype, self.dims)
                and self.align_c >= MIN_TENSOR_CORE_ALIGN[self.dtype] and min(self.pad) >= 0
                and per_image < TENSOR_LIMIT_BYTES and self.filter_numel * bytes_ < TENSOR_LIMIT_BYTES
                and not (self.operator == "dgrad" and self.stride_support == "strided" and max(self.dilation) > 1))


def least_channels(dtype: str, dims: int) -> int:
    """The channel multiple the kernel's A and B operand copies need: CUTLASS's 3-D kernels copy 16 bytes at a
    time (they have no alignment parameter); 2-D ones take any tensor-core alignment."""
    return VECTOR_BYTES // ELEMENT_BYTES[dtype] if dims == 3 else MIN_TENSOR_CORE_ALIGN[dtype]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _three(values: Sequence[int], fill: int) -> tuple[int, int, int]:
    """A 1- or 2-D step's sizes as 3-D ones: leading dims get `fill`."""
    out = (fill,) * (3 - len(values)) + tuple(values)
    return out[0], out[1], out[2]


def zero_inserted(step: ConvStep) -> bool:
    """A transposed conv CUTLASS's dgrad cannot run (stride and dilation both above 1): an fprop over its input
    with zeros inserted between samples instead."""
    return step.transposed and max(step.stride) > 1 and max(step.dilation) > 1


def zero_insertion_offered(step: ConvStep) -> bool:
    """A 3-D strided transposed conv that CUTLASS would run as a dgrad may run as the zero-inserted fprop instead
    (the tunable ZI, codegen_conv.conv_dims): CUTLASS's 3-D strided dgrad has only the analytic iterator, which took
    95-98% of level1/72, 73 and 77 on an H100 (73: 28.7 ms, where cuDNN took 11.9 ms in fp32), while the fprop runs
    the optimized one over an input eight times larger, most of it zeros. Which wins is measured. Needs the fprop's
    padding, d * (k - 1) - p, to be non-negative in every dim."""
    return (step.transposed and step.dims == 3 and max(step.stride) > 1 and not zero_inserted(step)
            and all(d * (t - 1) - p >= 0 for d, t, p in zip(step.dilation, step.weight.shape[2:], step.padding)))


def zero_insertion_fits(step: ConvStep, buffers: Mapping[str, Buffer]) -> bool:
    """Whether the step may take ZI: offered, and its zero-inserted launch fits a kernel (the larger input too)."""
    return zero_insertion_offered(step) and conv_launch(step, buffers, zero_insert=True).fits_a_kernel


def conv_launch(step: ConvStep, buffers: Mapping[str, Buffer], *, zero_insert: bool = False) -> ConvLaunch:
    """How CUTLASS runs the step. `zero_insert` (the tunable ZI, where zero_insertion_offered): the zero-inserted
    fprop in place of the strided dgrad."""
    dtype = buffers[step.input.buffer].dtype
    out_shape = buffers[step.outputs[0].buffer].shape
    groups = step.groups
    n, in_ch, in_sp = step.input.shape[0], step.input.shape[1] // groups, tuple(step.input.shape[2:])
    out_ch, out_sp = out_shape[1] // groups, tuple(out_shape[2:])
    kernel = tuple(step.weight.shape[2:])
    ones = (1,) * step.dims
    flip = zero_inserted(step) or (zero_insert and zero_insertion_offered(step))
    operator: Literal["fprop", "dgrad"]
    if flip:  # conv(zero_insert(x, s), flip(w) with C_in and C_out swapped, stride 1, padding d * (k - 1) - p)
        operator, c, k, zpq, zero = "fprop", in_ch, out_ch, out_sp, step.stride
        dhw = tuple((i - 1) * s + 1 for i, s in zip(in_sp, step.stride))
        pad = tuple(d * (t - 1) - p for d, t, p in zip(step.dilation, kernel, step.padding))
        stride: tuple[int, ...] = ones
    elif step.transposed:  # dgrad: CUTLASS's activation is our output; its output gradient our input
        operator, c, k, dhw, zpq, zero = "dgrad", out_ch, in_ch, out_sp, in_sp, ones
        pad, stride = step.padding, step.stride
    else:
        operator, c, k, dhw, zpq, zero = "fprop", in_ch, out_ch, in_sp, out_sp, ones
        pad, stride = step.padding, step.stride
    dims = 3 if step.dims == 3 else 2
    # zero channels up to what the operand copies need: c is the filter's (B's) channel count either way; k is
    # the A operand's in dgrad, only the output's in fprop
    least = least_channels(dtype, dims)
    cp = _round_up(c, least)
    kp = _round_up(k, least if operator == "dgrad" else MIN_TENSOR_CORE_ALIGN[dtype])
    a_channels = cp if operator == "fprop" else kp
    unity = all(s == 1 for s in stride)
    return ConvLaunch(dtype, operator, dims, n, cp, kp, _three(dhw, 1), _three(kernel, 1), _three(zpq, 1),
                      _three(pad, 0), _three(stride, 1), _three(step.dilation, 1),
                      vector_alignment(dtype, a_channels), vector_alignment(dtype, cp),
                      vector_alignment(dtype, cp if operator == "dgrad" else kp), "unity" if unity else "strided",
                      groups, c, k, _three(in_sp, 1), _three(zero, 1), flip)


def run_conv(step: ConvStep, buffers: Mapping[str, Buffer], mem: dict[str, torch.Tensor], *,
             zero_insert: bool = False) -> None:
    """The interpreter's conv, in float64 from conv_launch's numbers and as the kernels run it: the input copied
    per group with its zero channels (and inserted zeros), the filter per group (padded; flipped and its channel
    roles swapped for a zero-inserted transposed conv), one conv per group (as a 3-D one) with CUTLASS's
    semantics (padding on the near side, the output size given), the real channels copied back and the bias
    added. A wrong size, padding, stride, dilation, operand role or group offset is a mismatch with the Model.
    `zero_insert`: as conv_launch takes it."""
    launch = conv_launch(step, buffers, zero_insert=zero_insert)
    g, n = launch.groups, launch.n
    x = mem[step.input.buffer].to(torch.float64).reshape(n, g, launch.in_used, *launch.src)
    x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, launch.in_channels - launch.in_used))
    if launch.flip:
        spread = torch.zeros(n, g, launch.in_channels, *launch.dhw, dtype=torch.float64)
        zd, zh, zw = launch.zero_insert
        spread[:, :, :, ::zd, ::zh, ::zw] = x
        x = spread
    w = mem[step.weight.buffer].to(torch.float64)
    if launch.flip:  # (G * C_in, C_out, *kernel) -> per group (C_out, C_in, *kernel), every kernel dim reversed
        w = w.reshape(g, launch.c_used, launch.k_used, *launch.trs).transpose(1, 2).flip((3, 4, 5))
    else:
        w = w.reshape(g, launch.k_used, launch.c_used, *launch.trs)
    w = F.pad(w, (0, 0, 0, 0, 0, 0, 0, launch.c - launch.c_used, 0, launch.k - launch.k_used))
    outs = []
    for group in range(g):
        xg, wg = x[:, group], w[group]
        if launch.operator == "fprop":
            # near side: the padding; far side: whatever makes the output size the one given (cropping if negative)
            far = [(z - 1) * s + dl * (t - 1) + 1 - p - d for z, s, dl, t, p, d in
                   zip(launch.zpq, launch.stride, launch.dilation, launch.trs, launch.pad, launch.dhw)]
            xg = F.pad(xg, (launch.pad[2], far[2], launch.pad[1], far[1], launch.pad[0], far[0]))
            out = F.conv3d(xg, wg, stride=launch.stride, dilation=launch.dilation)
        else:  # the gradient of a conv of `out` with w, as its own conv: the transposed conv of x, sized to dhw
            extra = [d - ((z - 1) * s - 2 * p + dl * (t - 1) + 1) for d, z, s, p, dl, t in
                     zip(launch.dhw, launch.zpq, launch.stride, launch.pad, launch.dilation, launch.trs)]
            out = F.conv_transpose3d(xg, wg, stride=launch.stride, padding=launch.pad, output_padding=extra,
                                     dilation=launch.dilation)
        outs.append(out[:, :launch.out_used])
    result = torch.cat(outs, dim=1)
    if step.bias is not None:
        result = result + mem[step.bias.buffer].reshape(1, -1, 1, 1, 1).to(torch.float64)
    target = step.outputs[0].buffer
    mem[target] = result.to(getattr(torch, launch.dtype)).reshape(buffers[target].shape).contiguous()


# ---------------------------------------------------------------- recognising a pure-conv plan

def conv_plan(plan: Plan) -> Plan | None:
    """The plan with its conv (and the conv's bias add) as one ConvStep, or None when the plan is not a single
    supported convolution (it then keeps its library call)."""
    steps = list(plan.steps)
    if not steps or not isinstance(steps[0], HostStep) or len(steps) > 2:
        return None
    conv = _conv_step(steps[0], plan.buffers)
    if conv is None:
        return None
    if len(steps) == 2:
        bias = _bias_add(steps[1], conv.outputs[0].buffer, plan.buffers)
        if bias is None or conv.bias is not None:
            return None
        conv = ConvStep(conv.name, conv.input, conv.weight, bias[0], conv.stride, conv.padding, conv.dilation,
                        conv.output_padding, conv.transposed, (StepOutput(0, bias[1]),), conv.groups)
    if not conv_launch(conv, plan.buffers).fits_a_kernel:
        return None
    used = {conv.input.buffer, conv.weight.buffer, conv.outputs[0].buffer} | (
        {conv.bias.buffer} if conv.bias else set()) | {o.buffer for o in plan.outputs if isinstance(o, Layout)}
    buffers = {name: buf for name, buf in plan.buffers.items() if name in used or buf.origin != "step"}
    notes = plan.notes + (f"{conv.name}: convolution on the candidate's own implicit-GEMM kernel",)
    return Plan(buffers, plan.user_inputs, (conv,), plan.outputs, kept_aten_ops=(), notes=notes,
                output_kind=plan.output_kind)


def pointwise_as_matmul(plan: Plan) -> Plan:
    """The plan with each pointwise convolution (forward, every kernel extent 1, stride 1, no padding, no groups, no
    bias) as the matmul it is: weight (K, C) @ input (N, C, spatial) is the output (N, K, spatial), both in their
    own NCHW memory, so gemm_plan can make it a GEMM of the candidate's own with no layout copies. The implicit-GEMM
    path copies a pointwise conv's operands to channels-last and back: on an H100 (level1/87, 16 x 64 -> 128
    channels of 1024 x 1024) those copies took 24 of its 31 ms. Other steps are left as they are."""
    def rewritten(step: Step) -> Step:
        conv = _conv_step(step, plan.buffers) if isinstance(step, HostStep) else None
        if (conv is None or conv.transposed or conv.bias is not None or conv.groups != 1
                or set(conv.weight.shape[2:]) != {1} or set(conv.stride) != {1} or set(conv.padding) != {0}):
            return step  # a pointwise conv's dilation changes nothing: its kernel has one tap
        x, w = conv.input, conv.weight
        spatial = prod(x.shape[2:])
        a = Layout(w.buffer, w.shape[:2], w.strides[:2], w.offset)
        b = Layout(x.buffer, (x.shape[0], x.shape[1], spatial), (x.strides[0], x.strides[1], 1), x.offset)
        return HostStep(conv.name, "aten.matmul.default", (a, b), (), (conv.outputs[0].buffer,), library=True)

    return replace(plan, steps=tuple(rewritten(s) for s in plan.steps))


def _ints(value: Any, dims: int) -> tuple[int, ...] | None:
    """A stride / padding / dilation argument (an int, or a list of one or `dims` ints) as `dims` ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        values = [value] * dims
    elif isinstance(value, (list, tuple)):
        values = list(value) * dims if len(value) == 1 else list(value)
    else:
        return None
    if len(values) != dims or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    return tuple(values)


def _conv_step(step: HostStep, buffers: Mapping[str, Buffer]) -> ConvStep | None:
    if step.target not in CONV_TARGETS or step.kwargs or len(step.outputs) != 1 or step.outputs[0] is None:
        return None
    dims, transposed = CONV_TARGETS[step.target]
    if transposed:  # input, weight, bias, stride, padding, output_padding, groups, dilation
        defaults: list[Any] = [None, None, None, 1, 0, 0, 1, 1]
    else:  # input, weight, bias, stride, padding, dilation, groups
        defaults = [None, None, None, 1, 0, 1, 1]
    if len(step.args) > len(defaults):
        return None
    args = list(step.args) + defaults[len(step.args):]
    x, w, bias = args[:3]
    stride, padding = _ints(args[3], dims), _ints(args[4], dims)
    output_padding, groups, dilation = ((_ints(args[5], dims), args[6], _ints(args[7], dims)) if transposed
                                        else ((0,) * dims, args[6], _ints(args[5], dims)))
    if stride is None or padding is None or dilation is None or output_padding is None:
        return None
    out = step.outputs[0]
    if not (isinstance(x, Layout) and isinstance(w, Layout) and (bias is None or isinstance(bias, Layout))):
        return None
    operands = [x, w] + ([bias] if bias is not None else [])
    if not all(t.is_identity_of(buffers[t.buffer]) for t in operands):
        return None
    dtypes = {buffers[t.buffer].dtype for t in operands} | {buffers[out].dtype}
    if len(dtypes) != 1 or dtypes.pop() not in GEMM_DTYPES:
        return None
    if len(x.shape) != dims + 2 or len(w.shape) != dims + 2 or len(buffers[out].shape) != dims + 2:
        return None  # an unbatched input
    if min(*x.shape, *w.shape, *buffers[out].shape) == 0 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        return None
    out_ch = buffers[out].shape[1]
    if not (isinstance(groups, int) and groups >= 1 and x.shape[1] % groups == 0 and out_ch % groups == 0):
        return None
    if groups > 1 and groups == x.shape[1]:
        return None  # depthwise: memory-bound, not a GEMM (a direct kernel's job)
    return ConvStep(step.name, x, w, bias, stride, padding, dilation, output_padding, transposed,
                    (StepOutput(0, out),), groups)


def _bias_add(step: object, conv_out: str, buffers: Mapping[str, Buffer]) -> tuple[Layout, str] | None:
    """(the bias, the step's output) when the step is conv_out + bias[channel], as planner.conv_then_bias writes it."""
    if not isinstance(step, ElementwiseStep) or len(step.outputs) != 1:
        return None
    nodes, shape = step.dag.nodes, step.dag.shape
    if len(nodes) != 3 or step.outputs[0].node != 2:
        return None
    out, bias, add = nodes
    if not (isinstance(add, Op) and add.op == "add" and tuple(add.args) == (0, 1)
            and isinstance(out, Load) and isinstance(bias, Load)):
        return None
    if not (out.layout.is_identity_of(buffers[conv_out]) and out.layout.buffer == conv_out and out.layout.shape == shape):
        return None
    want = tuple(1 if d == 1 else 0 for d in range(len(shape)))
    b = bias.layout
    if b.shape != shape or b.strides != want or b.offset or buffers[b.buffer].shape != (shape[1],):
        return None
    if {out.dtype, bias.dtype, add.dtype} != {buffers[conv_out].dtype}:
        return None
    return Layout(b.buffer, (shape[1],), (1,)), step.outputs[0].buffer
