"""ATen 1-D, 2-D and 3-D pooling as a PoolStep's window geometry.

avg_pool{1,2,3}d and max_pool{1,2,3}d (without indices) in every configuration ATen takes: kernel, stride,
padding, dilation (max), ceil_mode, count_include_pad and divisor_override (avg). The output size comes
from the traced op itself, so ceil_mode needs no rule of its own: the window formulas (PoolWindow) clip
the last window the way ATen does. 3-D pools are a preview (RunSettings.offline_preview): without it they are
NotPoolable, as before. Any other pooling op (adaptive, with indices) or an integer input is NotPoolable, and
the planner keeps it as ATen with the reason as a note.
"""

from __future__ import annotations

import re
from math import prod
from typing import Any

from kernelwright.agents.offline.ir import FLOAT_DTYPES, PoolKind, PoolWindow

# op name -> (pool kind, spatial dims, ATen argument names after the input, in order)
POOL_OPS: dict[str, tuple[PoolKind, int, tuple[str, ...]]] = {
    "avg_pool2d": ("avg", 2, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")),
    "max_pool2d": ("max", 2, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    "avg_pool1d": ("avg", 1, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")),
    "max_pool1d": ("max", 1, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    "avg_pool3d": ("avg", 3, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")),
    "max_pool3d": ("max", 3, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
}
DEFAULTS = {"stride": (), "padding": 0, "dilation": 1, "ceil_mode": False, "count_include_pad": True,
            "divisor_override": None}


class NotPoolable(Exception):
    """This call can't be a PoolStep (the reason is the message)."""


_FAMILY = re.compile(r"_?(adaptive_|fractional_)?(avg|max|lp)_pool[123]d(_with_indices)?")


def is_pool(target: str) -> bool:
    """Any ATen pooling op: the supported ones become PoolSteps, the others are kept with a note saying why."""
    return _FAMILY.fullmatch(target.partition(".")[0]) is not None


def supported_pool(target: str, *, preview: bool) -> tuple[PoolKind, int, tuple[str, ...]]:
    """(pool kind, spatial dims, argument names) of a supported op; NotPoolable saying why for any other.
    `preview` (RunSettings.offline_preview): 3-D pools too."""
    op, _, overload = target.partition(".")
    if op in POOL_OPS and overload == "default" and (preview or POOL_OPS[op][1] < 3):
        return POOL_OPS[op]
    if op.endswith("_with_indices"):
        raise NotPoolable(f"{op} returns indices, which the pool kernel does not produce")
    if "adaptive" in op or "fractional" in op or op.startswith("lp_"):
        raise NotPoolable(f"no kernel for {op.lstrip('_').split('_pool')[0]} pooling")
    if op.endswith("3d"):
        raise NotPoolable("no kernel for 3-D pooling")
    raise NotPoolable(f"no pooling kernel for {target}")


def _ints(value: Any, n: int, what: str) -> tuple[int, ...]:
    vals = [value] if isinstance(value, int) else list(value)
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n or not all(isinstance(v, int) for v in vals):
        raise NotPoolable(f"{what} {value!r} is not {n} integer(s)")
    return tuple(vals)


def as_pool_axes(values: tuple[int, ...], nd: int, fill: int) -> tuple[int, ...]:
    """A 1-D pool is a 2-D one over rows of height 1: `values` of an `nd`-d pool with `fill` in front (a 3-D
    pool keeps its three)."""
    return (fill,) * (2 - nd) + values


def pool_window(target: str, args: tuple[Any, ...], kwargs: dict[str, Any], in_shape: tuple[int, ...],
                out_shape: tuple[int, ...], dtype: str, *, preview: bool) -> PoolWindow:
    """The window of `target` on an input of `in_shape` giving `out_shape`; NotPoolable when unsupported."""
    kind, nd, names = supported_pool(target, preview=preview)
    op = target.partition(".")[0]
    given = {**DEFAULTS, **dict(zip(names, args)), **{k: v for k, v in kwargs.items() if k in names}}
    if dtype not in FLOAT_DTYPES:
        raise NotPoolable(f"{op} over {dtype}")
    if len(in_shape) not in (nd + 1, nd + 2) or len(out_shape) != len(in_shape):
        raise NotPoolable(f"{op} of a {len(in_shape)}-d input")
    kernel = _ints(given["kernel_size"], nd, "kernel_size")
    stride = _ints(given["stride"], nd, "stride") if given["stride"] not in ((), [], None) else kernel
    padding = _ints(given["padding"], nd, "padding")
    dilation = _ints(given["dilation"], nd, "dilation")
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0 or min(dilation) < 1:
        raise NotPoolable(f"{op} with kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation}")
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise NotPoolable(f"{op} with padding {padding} over half the kernel {kernel}")  # ATen rejects it too
    divisor = given["divisor_override"]
    if divisor is not None and (not isinstance(divisor, int) or divisor == 0):
        raise NotPoolable(f"{op} with divisor_override {divisor!r}")
    if prod(out_shape) == 0 or prod(in_shape) == 0:
        raise NotPoolable(f"{op} of an empty tensor")
    return PoolWindow(kind, prod(in_shape[:-nd]), as_pool_axes(in_shape[-nd:], nd, 1), as_pool_axes(out_shape[-nd:], nd, 1),
                      as_pool_axes(kernel, nd, 1), as_pool_axes(stride, nd, 1), as_pool_axes(padding, nd, 0), as_pool_axes(dilation, nd, 1),
                      bool(given["count_include_pad"]), divisor, nd)
