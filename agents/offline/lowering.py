"""ATen elementwise ops as primitives (ops.PRIMITIVES): one small function per op family.

A lowering gets an `Emitter` (which adds nodes to the kernel being built and turns
operands into node ids) and the FX node's arguments; it returns the result node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


class Emitter(Protocol):
    out_dtype: str

    def v(self, value: Any) -> int: ...  # an operand (tensor value or Python number) as a node id

    def op(self, name: str, args: list[int], dtype: str | None = None, **attrs: Any) -> int: ...

    def const(self, value: float | int | bool, dtype: str | None = None) -> int: ...

    def channel(self, value: Any, ndim: int) -> int: ...  # a per-channel (dim 1) vector broadcast


Lowering = Callable[..., int]


def _binary(name: str) -> Lowering:
    return lambda e, a, b, *rest, **kw: e.op(name, [e.v(a), e.v(b)])


def _unary(name: str) -> Lowering:
    return lambda e, a, *rest, **kw: e.op(name, [e.v(a)])


def _add(e: Emitter, a: Any, b: Any, alpha: Any = 1, **kw: Any) -> int:
    rhs = e.v(b) if alpha == 1 else e.op("mul", [e.v(b), e.const(alpha)])
    return e.op("add", [e.v(a), rhs])


def _sub(e: Emitter, a: Any, b: Any, alpha: Any = 1, **kw: Any) -> int:
    rhs = e.v(b) if alpha == 1 else e.op("mul", [e.v(b), e.const(alpha)])
    return e.op("sub", [e.v(a), rhs])


def _rsub(e: Emitter, a: Any, b: Any, alpha: Any = 1, **kw: Any) -> int:
    return _sub(e, b, a, alpha)


def _div_mode(e: Emitter, a: Any, b: Any, rounding_mode: str | None = None, **kw: Any) -> int:
    q = e.op("div", [e.v(a), e.v(b)])
    if rounding_mode is None:
        return q
    return e.op("trunc" if rounding_mode == "trunc" else "floor", [q])


def _clamp(e: Emitter, x: Any, lo: Any = None, hi: Any = None, **kw: Any) -> int:
    lo, hi = kw.get("min", lo), kw.get("max", hi)
    out = e.v(x)
    if lo is not None:
        out = e.op("maximum", [out, e.v(lo)])
    if hi is not None:
        out = e.op("minimum", [out, e.v(hi)])
    return out


def _hardtanh(e: Emitter, x: Any, lo: float = -1.0, hi: float = 1.0, **kw: Any) -> int:
    return _clamp(e, x, lo, hi)


def _gelu(e: Emitter, x: Any, approximate: str = "none", **kw: Any) -> int:
    return e.op("gelu", [e.v(x)], approximate=kw.get("approximate", approximate))


def _softplus(e: Emitter, x: Any, beta: float = 1.0, threshold: float = 20.0, **kw: Any) -> int:
    return e.op("softplus", [e.v(x)], beta=float(beta), threshold=float(threshold))


def _elu(e: Emitter, x: Any, alpha: float = 1.0, scale: float = 1.0, input_scale: float = 1.0, **kw: Any) -> int:
    return e.op("elu", [e.v(x)], alpha=float(alpha), scale=float(scale), input_scale=float(input_scale))


def _celu(e: Emitter, x: Any, alpha: float = 1.0, **kw: Any) -> int:
    return e.op("elu", [e.v(x)], alpha=float(alpha), scale=1.0, input_scale=1.0 / float(alpha))


def _leaky(e: Emitter, x: Any, slope: float = 0.01, **kw: Any) -> int:
    return e.op("leaky_relu", [e.v(x)], slope=float(slope))


def _pow_ts(e: Emitter, x: Any, exponent: Any, **kw: Any) -> int:
    return e.op("pow_scalar", [e.v(x)], exponent=exponent)


def _pow_s(e: Emitter, base: Any, x: Any, **kw: Any) -> int:
    return e.op("rpow_scalar", [e.v(x)], base=float(base))


def _where(e: Emitter, cond: Any, a: Any, b: Any, **kw: Any) -> int:
    return e.op("where", [e.v(cond), e.v(a), e.v(b)])


def _masked_fill(e: Emitter, x: Any, mask: Any, value: Any, **kw: Any) -> int:
    return e.op("where", [e.v(mask), e.v(value), e.v(x)])


def _cast(e: Emitter, x: Any, *args: Any, **kw: Any) -> int:
    return e.op("cast", [e.v(x)])


def _frac(e: Emitter, x: Any, **kw: Any) -> int:
    a = e.v(x)
    return e.op("sub", [a, e.op("trunc", [a])])


def _addcmul(e: Emitter, x: Any, t1: Any, t2: Any, value: Any = 1, **kw: Any) -> int:
    prod = e.op("mul", [e.v(t1), e.v(t2)])
    if kw.get("value", value) != 1:
        prod = e.op("mul", [prod, e.const(kw.get("value", value))])
    return e.op("add", [e.v(x), prod])


def _addcdiv(e: Emitter, x: Any, t1: Any, t2: Any, value: Any = 1, **kw: Any) -> int:
    q = e.op("div", [e.v(t1), e.v(t2)])
    if kw.get("value", value) != 1:
        q = e.op("mul", [q, e.const(kw.get("value", value))])
    return e.op("add", [e.v(x), q])


def _lerp(e: Emitter, a: Any, b: Any, w: Any, **kw: Any) -> int:
    av = e.v(a)
    return e.op("add", [av, e.op("mul", [e.v(w), e.op("sub", [e.v(b), av])])])


def _threshold(e: Emitter, x: Any, threshold: float, value: float, **kw: Any) -> int:
    return e.op("threshold", [e.v(x)], threshold=float(threshold), value=float(value))


def _shrink(name: str) -> Lowering:
    return lambda e, x, lambd=0.5, **kw: e.op(name, [e.v(x)], lambd=float(lambd))


def _tanhshrink(e: Emitter, x: Any, **kw: Any) -> int:
    a = e.v(x)
    return e.op("sub", [a, e.op("tanh", [a])])


def _batch_norm(e: Emitter, x: Any, weight: Any, bias: Any, mean: Any, var: Any, training: bool, momentum: float,
                eps: float, *rest: Any, ndim: int = 4, **kw: Any) -> int:
    """Inference batch norm: (x - mean[c]) * rsqrt(var[c] + eps) * weight[c] + bias[c]."""
    if training:
        raise NotImplementedError("batch_norm in training mode (batch statistics)")
    if mean is None or var is None:
        raise NotImplementedError("batch_norm without running statistics")
    inv = e.op("rsqrt", [e.op("add", [e.channel(var, ndim), e.const(float(eps))])])
    out = e.op("mul", [e.op("sub", [e.v(x), e.channel(mean, ndim)]), inv])
    if weight is not None:
        out = e.op("mul", [out, e.channel(weight, ndim)])
    if bias is not None:
        out = e.op("add", [out, e.channel(bias, ndim)])
    return out


UNARY = ("neg", "abs", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "sin", "cos", "tan",
         "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc", "floor", "ceil",
         "trunc", "round", "reciprocal", "square", "sigmoid", "silu", "relu", "mish", "hardsigmoid", "hardswish",
         "sign", "isnan", "isinf", "logical_not", "softsign")
BINARY = ("maximum", "minimum", "atan2", "fmod", "remainder", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
          "logical_or")

LOWERINGS: dict[str, Lowering] = {
    **{f"{name}.default": _unary(name) for name in UNARY},
    **{f"{name}.Tensor": _binary(name) for name in BINARY},
    **{f"{name}.Scalar": _binary(name) for name in ("eq", "ne", "lt", "le", "gt", "ge", "fmod", "remainder")},
    "round.default": _unary("round"), "fix.default": _unary("trunc"),
    "sgn.default": _unary("sign"), "bitwise_not.default": _unary("logical_not"),
    "fmax.default": _binary("maximum"), "fmin.default": _binary("minimum"),
    "maximum.default": _binary("maximum"), "minimum.default": _binary("minimum"),
    "add.Tensor": _add, "add.Scalar": _add, "sub.Tensor": _sub, "sub.Scalar": _sub,
    "rsub.Scalar": _rsub, "rsub.Tensor": _rsub,
    "mul.Tensor": _binary("mul"), "mul.Scalar": _binary("mul"), "div.Tensor": _binary("div"),
    "div.Scalar": _binary("div"), "div.Tensor_mode": _div_mode, "div.Scalar_mode": _div_mode,
    "true_divide.Tensor": _binary("div"), "floor_divide.default": _binary("floor_divide"),
    "clamp.default": _clamp, "clamp.Tensor": _clamp,
    "clamp_min.default": lambda e, x, v, **kw: _clamp(e, x, v, None),
    "clamp_max.default": lambda e, x, v, **kw: _clamp(e, x, None, v),
    "clamp_min.Tensor": lambda e, x, v, **kw: _clamp(e, x, v, None),
    "clamp_max.Tensor": lambda e, x, v, **kw: _clamp(e, x, None, v),
    "hardtanh.default": _hardtanh, "relu6.default": lambda e, x, **kw: _clamp(e, x, 0.0, 6.0),
    "gelu.default": _gelu, "softplus.default": _softplus, "elu.default": _elu, "celu.default": _celu,
    "selu.default": lambda e, x, **kw: _elu(e, x, SELU_ALPHA, SELU_SCALE, 1.0),
    "leaky_relu.default": _leaky,
    "pow.Tensor_Scalar": _pow_ts, "pow.Tensor_Tensor": _binary("pow"), "pow.Scalar": _pow_s,
    "where.self": _where, "where.ScalarSelf": _where, "where.ScalarOther": _where, "where.Scalar": _where,
    "masked_fill.Scalar": _masked_fill, "masked_fill.Tensor": _masked_fill,
    "_to_copy.default": _cast, "to.dtype": _cast, "to.dtype_layout": _cast, "to.device": _cast,
    "copy.default": lambda e, dst, src, *args, **kw: e.op("cast", [e.v(src)]),  # dst's shape and dtype, src's values
    "type_as.default": _cast, "frac.default": _frac, "addcmul.default": _addcmul, "addcdiv.default": _addcdiv,
    "lerp.Scalar": _lerp, "lerp.Tensor": _lerp, "threshold.default": _threshold,
    "softshrink.default": _shrink("softshrink"), "hardshrink.default": _shrink("hardshrink"),
    "tanhshrink.default": _tanhshrink, "log_sigmoid.default": _unary("logsigmoid"),
    "batch_norm.default": _batch_norm,
}
# Ops whose result is the input's value (no arithmetic): the value passes through.
IDENTITY = ("clone.default", "alias.default", "detach.default", "lift_fresh_copy.default", "contiguous.default",
            "_assert_tensor_metadata.default", "dropout.default", "positive.default")
