"""Pure convolution problems: their library conv (and its bias) becomes a ConvStep the candidate builds itself.

A plan qualifies when its only work is one `conv1d/2d/3d` or `conv_transpose1d/2d/3d` library call with
groups == 1 in fp32, bf16 or fp16, optionally followed by the per-channel bias add the planner splits off it
(planner.conv_then_bias). The bias joins the conv's epilogue. Anything else keeps its plan (and cuDNN): grouped
and depthwise convs, a conv inside a longer chain (level 2), transposed convs with both a stride and a dilation
above 1 (CUTLASS's strided dgrad has no dilation), tensors whose single image exceeds CUTLASS 2.x's 2 GiB
tensor limit, and channel counts a tensor-core operand copy cannot align.

`conv_launch` turns a step into the numbers a CUTLASS implicit-GEMM kernel is given (a 3-D problem size; 1-D
and 2-D problems are 3-D ones with unit depth and height), and `run_conv` computes a step from exactly those
numbers on CPU, so the interpreter checks the translation against the Model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    """A step as CUTLASS's implicit GEMM sees it. `operator` fprop: activation = the step's input (N, D, H, W, C),
    output (N, Z, P, Q, K); dgrad (a transposed conv): activation = the step's output (N, D, H, W, C), output
    gradient = its input (N, Z, P, Q, K). The filter is (K, T, R, S, C) either way. Sizes are 3-D (depth, height,
    width); a 2-D step has D = T = Z = 1, a 1-D one also H = R = P = 1. `stride_support` "unity": every stride is
    1 (dgrad then allows dilation)."""

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

    @property
    def in_channels(self) -> int:
        """Channels of the step's input tensor (what the NCHW -> NHWC copy moves)."""
        return self.c if self.operator == "fprop" else self.k

    @property
    def out_channels(self) -> int:
        return self.k if self.operator == "fprop" else self.c

    @property
    def in_spatial(self) -> int:
        return prod(self.dhw if self.operator == "fprop" else self.zpq)

    @property
    def out_spatial(self) -> int:
        return prod(self.zpq if self.operator == "fprop" else self.dhw)

    @property
    def filter_numel(self) -> int:
        return self.k * self.c * prod(self.trs)

    @property
    def flops(self) -> int:
        return 2 * self.n * prod(self.zpq) * self.k * self.c * prod(self.trs)

    @property
    def fits_a_kernel(self) -> bool:
        bytes_ = ELEMENT_BYTES[self.dtype]
        per_image = max(self.in_channels * self.in_spatial, self.out_channels * self.out_spatial) * bytes_
        # CUTLASS's 3-D kernels copy operands 16 bytes at a time: their channel counts must hold whole vectors
        least = VECTOR_BYTES // bytes_ if self.dims == 3 else MIN_TENSOR_CORE_ALIGN[self.dtype]
        return (min(self.align_a, self.align_b) >= least and self.align_c >= MIN_TENSOR_CORE_ALIGN[self.dtype]
                and per_image < TENSOR_LIMIT_BYTES and self.filter_numel * bytes_ < TENSOR_LIMIT_BYTES
                and not (self.operator == "dgrad" and self.stride_support == "strided" and max(self.dilation) > 1))


def _three(values: Sequence[int], fill: int) -> tuple[int, int, int]:
    """A 1- or 2-D step's sizes as 3-D ones: leading dims get `fill`."""
    out = (fill,) * (3 - len(values)) + tuple(values)
    return out[0], out[1], out[2]


def conv_launch(step: ConvStep, buffers: Mapping[str, Buffer]) -> ConvLaunch:
    dtype = buffers[step.input.buffer].dtype
    out_shape = buffers[step.outputs[0].buffer].shape
    n, in_ch, in_sp = step.input.shape[0], step.input.shape[1], step.input.shape[2:]
    out_ch, out_sp = out_shape[1], out_shape[2:]
    kernel = step.weight.shape[2:]
    if step.transposed:  # dgrad: CUTLASS's activation is our output; its output gradient our input
        operator: Literal["fprop", "dgrad"] = "dgrad"
        c, k, dhw, zpq = out_ch, in_ch, out_sp, in_sp
    else:
        operator, c, k, dhw, zpq = "fprop", in_ch, out_ch, in_sp, out_sp
    a_channels = c if operator == "fprop" else k
    unity = all(s == 1 for s in step.stride)
    return ConvLaunch(dtype, operator, 3 if step.dims == 3 else 2, n, c, k, _three(dhw, 1), _three(kernel, 1),
                      _three(zpq, 1), _three(step.padding, 0), _three(step.stride, 1), _three(step.dilation, 1),
                      vector_alignment(dtype, a_channels), vector_alignment(dtype, c),
                      vector_alignment(dtype, c if operator == "dgrad" else k), "unity" if unity else "strided")


def run_conv(step: ConvStep, buffers: Mapping[str, Buffer], mem: dict[str, torch.Tensor]) -> None:
    """The interpreter's conv: a float64 convolution (as a 3-D one) from conv_launch's numbers, so a wrong size,
    padding, stride, dilation or operand role shows up as a mismatch with the Model."""
    launch = conv_launch(step, buffers)
    x = mem[step.input.buffer].reshape(launch.n, launch.in_channels, *_spatial(launch, "in")).to(torch.float64)
    w = mem[step.weight.buffer].reshape(launch.k, launch.c, *launch.trs).to(torch.float64)
    if launch.operator == "fprop":
        out = F.conv3d(x, w, stride=launch.stride, padding=launch.pad, dilation=launch.dilation)
    else:  # the gradient of a conv of `out` with w, as its own conv: the transposed conv of x, sized to dhw
        extra = [d - ((z - 1) * s - 2 * p + dl * (t - 1) + 1)
                 for d, z, s, p, dl, t in zip(launch.dhw, launch.zpq, launch.stride, launch.pad, launch.dilation, launch.trs)]
        out = F.conv_transpose3d(x, w, stride=launch.stride, padding=launch.pad, output_padding=extra,
                                 dilation=launch.dilation)
    if step.bias is not None:
        out = out + mem[step.bias.buffer].reshape(1, -1, 1, 1, 1).to(torch.float64)
    target = step.outputs[0].buffer
    mem[target] = out.to(getattr(torch, launch.dtype)).reshape(buffers[target].shape).contiguous()


def _spatial(launch: ConvLaunch, side: Literal["in", "out"]) -> tuple[int, int, int]:
    return launch.dhw if (side == "in") == (launch.operator == "fprop") else launch.zpq


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
                        conv.output_padding, conv.transposed, (StepOutput(0, bias[1]),))
    if not conv_launch(conv, plan.buffers).fits_a_kernel:
        return None
    used = {conv.input.buffer, conv.weight.buffer, conv.outputs[0].buffer} | (
        {conv.bias.buffer} if conv.bias else set()) | {o.buffer for o in plan.outputs if isinstance(o, Layout)}
    buffers = {name: buf for name, buf in plan.buffers.items() if name in used or buf.origin != "step"}
    notes = plan.notes + (f"{conv.name}: convolution on the candidate's own implicit-GEMM kernel",)
    return Plan(buffers, plan.user_inputs, (conv,), plan.outputs, kept_aten_ops=(), notes=notes,
                output_kind=plan.output_kind)


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
    if stride is None or padding is None or dilation is None or output_padding is None or groups != 1:
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
    return ConvStep(step.name, x, w, bias, stride, padding, dilation, output_padding, transposed,
                    (StepOutput(0, out),))


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
