"""Depthwise convolutions (groups == in_channels) as a "depthwise" PoolStep's window geometry.

A depthwise conv is a pool whose window sums input times a per-channel weight tap: each output channel reads
one input channel, so there is no reduction over channels and no GEMM to hand to tensor cores; the pool
kernel's one-thread-per-output window walk (codegen_pool) is the natural kernel. conv1d/2d/3d.default with
groups == C_in > 1 and C_out = m * C_in (channel multiplier m), any stride, padding and dilation, batched float
input, weight of the input's dtype. The planner (behind RunSettings.offline_preview) turns such a conv into a
pool group, so an elementwise chain before it becomes its prologue, and its bias and what follows its epilogue.
"""

from __future__ import annotations

from math import prod
from typing import Any

from kernelwright.agents.offline.ir import FLOAT_DTYPES, PoolWindow
from kernelwright.agents.offline.pooling import as_pool_axes

CONV_OPS = {"conv1d": 1, "conv2d": 2, "conv3d": 3}


class NotDepthwise(Exception):
    """This grouped conv can't be a depthwise PoolStep (the reason is the message)."""


def _ints(value: Any, n: int, what: str) -> tuple[int, ...]:
    vals = [value] if isinstance(value, int) and not isinstance(value, bool) else list(value)
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        raise NotDepthwise(f"{what} {value!r} is not {n} integer(s)")
    return tuple(vals)


def grouped_conv(target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """A conv{1,2,3}d call (all its args: input, weight, bias, stride, padding, dilation, groups) with groups > 1
    (the only convs depthwise_window looks at)."""
    op, _, overload = target.partition(".")
    if op not in CONV_OPS or overload != "default":
        return False
    groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
    return isinstance(groups, int) and groups > 1


def depthwise_window(target: str, args: tuple[Any, ...], kwargs: dict[str, Any], in_shape: tuple[int, ...],
                     weight_shape: tuple[int, ...], out_shape: tuple[int, ...], dtypes: tuple[str, str, str]
                     ) -> PoolWindow:
    """The window of a grouped conv `target` (args after the input, weight and bias: stride, padding,
    dilation, groups) on `in_shape` with a weight of `weight_shape` giving `out_shape`; `dtypes` are the
    input's, the weight's and the output's. NotDepthwise saying why when it is not a supported depthwise conv."""
    op = target.partition(".")[0]
    nd = CONV_OPS[op]
    names = ("stride", "padding", "dilation", "groups")
    given = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **dict(zip(names, args)),
             **{k: v for k, v in kwargs.items() if k in names}}
    if len(set(dtypes)) != 1 or dtypes[0] not in FLOAT_DTYPES:
        raise NotDepthwise(f"{op} over {'/'.join(dtypes)}")
    if len(in_shape) != nd + 2 or len(weight_shape) != nd + 2 or len(out_shape) != nd + 2:
        raise NotDepthwise(f"{op} of an unbatched input")
    channels, groups, out_channels = in_shape[1], given["groups"], out_shape[1]
    if groups != channels or out_channels % channels or weight_shape[:2] != (out_channels, 1):
        raise NotDepthwise(f"{op} with {groups} groups over {channels} channels is not depthwise")
    stride = _ints(given["stride"], nd, "stride")
    padding = _ints(given["padding"], nd, "padding")
    dilation = _ints(given["dilation"], nd, "dilation")
    kernel = tuple(weight_shape[2:])
    if min(stride) < 1 or min(padding) < 0 or min(dilation) < 1:
        raise NotDepthwise(f"{op} with stride {stride}, padding {padding}, dilation {dilation}")
    if prod(out_shape) == 0 or prod(in_shape) == 0 or prod(kernel) == 0:
        raise NotDepthwise(f"{op} of an empty tensor")
    return PoolWindow("depthwise", prod(in_shape[:2]), as_pool_axes(tuple(in_shape[2:]), nd, 1),
                      as_pool_axes(tuple(out_shape[2:]), nd, 1), as_pool_axes(kernel, nd, 1), as_pool_axes(stride, nd, 1),
                      as_pool_axes(padding, nd, 0), as_pool_axes(dilation, nd, 1), spatial_dims=nd,
                      multiplier=out_channels // channels)
