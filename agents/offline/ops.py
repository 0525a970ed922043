"""Elementwise primitives, each written twice side by side: as C (for codegen) and as torch (for the
plan interpreter), from the same formula, so the interpreter checks the formula the CUDA uses.

Operands reach a primitive already converted to its math type (float for f32/f16/bf16, double for
f64, the integer/bool C type otherwise); `operands` says which type that is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from kernelwright.agents.offline.ir import Op

CTYPE = {"float32": "float", "float16": "float", "bfloat16": "float", "float64": "double", "int64": "long long",
         "int32": "int", "int16": "short", "int8": "signed char", "uint8": "unsigned char", "bool": "bool"}
STORAGE_CTYPE = {"float32": "float", "float16": "__half", "bfloat16": "__nv_bfloat16", "float64": "double",
                 "int64": "long long", "int32": "int", "int16": "short", "int8": "signed char",
                 "uint8": "unsigned char", "bool": "bool"}
SPEC = {"float32": "f32*", "float16": "f16*", "bfloat16": "bf16*", "float64": "f64*", "int64": "i64*",
        "int32": "i32*", "int16": "i16*", "int8": "i8*", "uint8": "u8*", "bool": "bool*"}
TORCH_DTYPE = {name: getattr(torch, name) for name in CTYPE}


def compute_dtype(dtype: str) -> torch.dtype:
    """The torch dtype the interpreter computes in: what the C math type is."""
    return torch.float32 if dtype in ("float16", "bfloat16") else TORCH_DTYPE[dtype]


def is_float(dtype: str) -> bool:
    return dtype in ("float32", "float16", "bfloat16", "float64")


def lit(value: Any, ctype: str) -> str:
    """A C literal of `value` in `ctype`."""
    if ctype == "bool":
        return "true" if value else "false"
    if ctype in ("float", "double"):
        v = float(value)
        if math.isnan(v):
            return "NAN" if ctype == "float" else "(double)NAN"
        if math.isinf(v):
            return ("INFINITY" if v > 0 else "-INFINITY") if ctype == "float" else ("(double)INFINITY" if v > 0 else "-(double)INFINITY")
        text = repr(v)
        if "e" not in text and "." not in text:
            text += ".0"
        return text + ("f" if ctype == "float" else "")
    return f"(({ctype}){int(value)}LL)"


FLOAT_MATH = ("float", "double")


def _int_floor_adjust(a: list[str]) -> str:
    """Integer division truncates; floor differs when there is a remainder and the signs differ (C's `%`
    on integers is fmod's truncated remainder, and <cmath>'s fmod/floor are host-only for integer types)."""
    return f"({a[0]} % {a[1]} != 0 && (({a[0]} % {a[1]} < 0) != ({a[1]} < 0)))"


def fn(name: str, t: str) -> str:
    """C math function for the math type: expf for float, exp for double."""
    return name + "f" if t == "float" else name


Operands = Literal["result", "promote", "bool", "any"]


@dataclass(frozen=True, slots=True)
class Prim:
    arity: int
    c: Callable[[list[str], Op, str], str]  # (operand expressions, op, math type) -> C expression
    torch: Callable[[list[torch.Tensor], Op], torch.Tensor]
    operands: Operands = "result"  # what the operands are converted to before the op


def _t(x: torch.Tensor, v: float) -> torch.Tensor:
    return torch.full((), v, dtype=x.dtype)


def _softplus_c(a: str, t: str, beta: float, threshold: float) -> str:
    b, th = lit(beta, t), lit(threshold, t)
    return f"(({a}) * {b} > {th} ? ({a}) : {fn('log1p', t)}({fn('exp', t)}(({a}) * {b})) / {b})"


def _softplus_t(a: torch.Tensor, beta: float, threshold: float) -> torch.Tensor:
    return torch.where(a * beta > threshold, a, torch.log1p(torch.exp(a * beta)) / beta)


def _unary(name: str, torch_fn: Callable[[torch.Tensor], torch.Tensor]) -> Prim:
    return Prim(1, lambda a, op, t: f"{fn(name, t)}({a[0]})", lambda a, op: torch_fn(a[0]))


def _infix(sym: str, torch_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], operands: Operands = "result") -> Prim:
    return Prim(2, lambda a, op, t: f"({a[0]} {sym} {a[1]})", lambda a, op: torch_fn(a[0], a[1]), operands)


def _gelu_c(a: list[str], op: Op, t: str) -> str:
    x = a[0]
    if op.attr("approximate", "none") == "tanh":
        inner = f"{lit(0.7978845608028654, t)} * ({x} + {lit(0.044715, t)} * {x} * {x} * {x})"
        return f"({lit(0.5, t)} * {x} * ({lit(1.0, t)} + {fn('tanh', t)}({inner})))"
    return f"({lit(0.5, t)} * {x} * ({lit(1.0, t)} + {fn('erf', t)}({x} * {lit(0.7071067811865476, t)})))"


def _gelu_t(a: list[torch.Tensor], op: Op) -> torch.Tensor:
    x = a[0]
    if op.attr("approximate", "none") == "tanh":
        return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1.0 + torch.erf(x * 0.7071067811865476))


def _pow_scalar_c(a: list[str], op: Op, t: str) -> str:
    e = op.attr("exponent")
    x = a[0]
    if e == 2:
        return f"({x} * {x})"
    if e == 3:
        return f"({x} * {x} * {x})"
    if e == 1:
        return f"({x})"
    if e == 0.5:
        return f"{fn('sqrt', t)}({x})"
    if e == -1:
        return f"({lit(1.0, t)} / {x})"
    return f"{fn('pow', t)}({x}, {lit(e, t)})"


def _pow_scalar_t(a: list[torch.Tensor], op: Op) -> torch.Tensor:
    e = op.attr("exponent")
    x = a[0]
    if e == 2:
        return x * x
    if e == 3:
        return x * x * x
    if e == 0.5:
        return torch.sqrt(x)
    return torch.pow(x, e)


def _round_t(x: torch.Tensor, op: Op) -> torch.Tensor:
    """cast: the value rounded to the target dtype, held in its math type."""
    target = op.dtype
    if target in ("float16", "bfloat16"):
        return x.to(TORCH_DTYPE[target]).to(torch.float32)
    if target == "bool":
        return x != 0
    return x.to(compute_dtype(target))


def _cast_c(a: list[str], op: Op, t: str) -> str:
    if op.dtype in ("float16", "bfloat16"):
        return f"kw_round_{op.dtype}({a[0]})"
    return a[0]  # the conversion to the math type already happened


def _sel(cond: Callable[[str, Op, str], str], a_true: Callable[[str, Op, str], str],
         a_false: Callable[[str, Op, str], str]) -> Callable[[list[str], Op, str], str]:
    return lambda a, op, t: f"({cond(a[0], op, t)} ? {a_true(a[0], op, t)} : {a_false(a[0], op, t)})"


PRIMITIVES: dict[str, Prim] = {
    "add": _infix("+", torch.add), "sub": _infix("-", torch.sub), "mul": _infix("*", torch.mul),
    "div": _infix("/", torch.div),
    "eq": _infix("==", torch.eq, "promote"), "ne": _infix("!=", torch.ne, "promote"),
    "lt": _infix("<", torch.lt, "promote"), "le": _infix("<=", torch.le, "promote"),
    "gt": _infix(">", torch.gt, "promote"), "ge": _infix(">=", torch.ge, "promote"),
    "logical_and": _infix("&&", torch.logical_and, "bool"), "logical_or": _infix("||", torch.logical_or, "bool"),
    "logical_not": Prim(1, lambda a, op, t: f"(!{a[0]})", lambda a, op: torch.logical_not(a[0]), "bool"),
    "neg": Prim(1, lambda a, op, t: f"(-{a[0]})", lambda a, op: -a[0]),
    "abs": Prim(1, lambda a, op, t: f"({a[0]} < 0 ? -{a[0]} : {a[0]})", lambda a, op: torch.abs(a[0])),
    "exp": _unary("exp", torch.exp), "exp2": _unary("exp2", torch.exp2), "expm1": _unary("expm1", torch.expm1),
    "log": _unary("log", torch.log), "log2": _unary("log2", torch.log2), "log10": _unary("log10", torch.log10),
    "log1p": _unary("log1p", torch.log1p), "sqrt": _unary("sqrt", torch.sqrt), "rsqrt": _unary("rsqrt", torch.rsqrt),
    "sin": _unary("sin", torch.sin), "cos": _unary("cos", torch.cos), "tan": _unary("tan", torch.tan),
    "asin": _unary("asin", torch.asin), "acos": _unary("acos", torch.acos), "atan": _unary("atan", torch.atan),
    "sinh": _unary("sinh", torch.sinh), "cosh": _unary("cosh", torch.cosh), "tanh": _unary("tanh", torch.tanh),
    "asinh": _unary("asinh", torch.asinh), "acosh": _unary("acosh", torch.acosh), "atanh": _unary("atanh", torch.atanh),
    "erf": _unary("erf", torch.erf), "erfc": _unary("erfc", torch.erfc), "floor": _unary("floor", torch.floor),
    "ceil": _unary("ceil", torch.ceil), "trunc": _unary("trunc", torch.trunc), "round": _unary("rint", torch.round),
    "reciprocal": Prim(1, lambda a, op, t: f"({lit(1.0, t)} / {a[0]})", lambda a, op: 1.0 / a[0]),
    "square": Prim(1, lambda a, op, t: f"({a[0]} * {a[0]})", lambda a, op: a[0] * a[0]),
    "sigmoid": Prim(1, lambda a, op, t: f"({lit(1.0, t)} / ({lit(1.0, t)} + {fn('exp', t)}(-{a[0]})))",
                    lambda a, op: 1.0 / (1.0 + torch.exp(-a[0]))),
    "silu": Prim(1, lambda a, op, t: f"({a[0]} / ({lit(1.0, t)} + {fn('exp', t)}(-{a[0]})))",
                 lambda a, op: a[0] / (1.0 + torch.exp(-a[0]))),
    "relu": Prim(1, lambda a, op, t: f"({a[0]} > 0 ? {a[0]} : {lit(0, t)})", lambda a, op: torch.clamp_min(a[0], 0)),
    "gelu": Prim(1, _gelu_c, _gelu_t),
    "mish": Prim(1, lambda a, op, t: f"({a[0]} * {fn('tanh', t)}({_softplus_c(a[0], t, 1.0, 20.0)}))",
                 lambda a, op: a[0] * torch.tanh(_softplus_t(a[0], 1.0, 20.0))),
    "softplus": Prim(1, lambda a, op, t: _softplus_c(a[0], t, op.attr("beta", 1.0), op.attr("threshold", 20.0)),
                     lambda a, op: _softplus_t(a[0], op.attr("beta", 1.0), op.attr("threshold", 20.0))),
    "elu": Prim(1, lambda a, op, t: (f"({a[0]} > 0 ? {a[0]} * {lit(op.attr('scale', 1.0), t)} : "
                                     f"({fn('exp', t)}({a[0]} * {lit(op.attr('input_scale', 1.0), t)}) - {lit(1.0, t)})"
                                     f" * {lit(op.attr('alpha', 1.0) * op.attr('scale', 1.0), t)})"),
                lambda a, op: torch.where(a[0] > 0, a[0] * op.attr("scale", 1.0),
                                          (torch.exp(a[0] * op.attr("input_scale", 1.0)) - 1.0)
                                          * (op.attr("alpha", 1.0) * op.attr("scale", 1.0)))),
    "leaky_relu": Prim(1, lambda a, op, t: f"({a[0]} > 0 ? {a[0]} : {a[0]} * {lit(op.attr('slope'), t)})",
                       lambda a, op: torch.where(a[0] > 0, a[0], a[0] * op.attr("slope"))),
    "hardsigmoid": Prim(1, lambda a, op, t: (f"({fn('fmin', t)}({fn('fmax', t)}({a[0]} + {lit(3, t)}, {lit(0, t)}), "
                                             f"{lit(6, t)}) / {lit(6, t)})"),
                        lambda a, op: torch.clamp(a[0] + 3.0, 0.0, 6.0) / 6.0),
    "hardswish": Prim(1, lambda a, op, t: (f"({a[0]} * {fn('fmin', t)}({fn('fmax', t)}({a[0]} + {lit(3, t)}, "
                                           f"{lit(0, t)}), {lit(6, t)}) / {lit(6, t)})"),
                      lambda a, op: a[0] * torch.clamp(a[0] + 3.0, 0.0, 6.0) / 6.0),
    "logsigmoid": Prim(1, lambda a, op, t: (f"({fn('fmin', t)}({a[0]}, {lit(0, t)}) - "
                                            f"{fn('log1p', t)}({fn('exp', t)}(-{fn('fabs', t)}({a[0]}))))"),
                       lambda a, op: torch.clamp_max(a[0], 0.0) - torch.log1p(torch.exp(-torch.abs(a[0])))),
    "softsign": Prim(1, lambda a, op, t: f"({a[0]} / ({lit(1.0, t)} + {fn('fabs', t)}({a[0]})))",
                     lambda a, op: a[0] / (1.0 + torch.abs(a[0]))),
    "sign": Prim(1, lambda a, op, t: f"(({t})({a[0]} > 0) - ({t})({a[0]} < 0))", lambda a, op: torch.sign(a[0])),
    "isnan": Prim(1, lambda a, op, t: f"({a[0]} != {a[0]})", lambda a, op: torch.isnan(a[0]), "any"),
    "isinf": Prim(1, lambda a, op, t: f"isinf({a[0]})", lambda a, op: torch.isinf(a[0]), "any"),
    "softshrink": Prim(1, lambda a, op, t: (f"({a[0]} > {lit(op.attr('lambd'), t)} ? {a[0]} - {lit(op.attr('lambd'), t)} : "
                                            f"({a[0]} < -{lit(op.attr('lambd'), t)} ? {a[0]} + {lit(op.attr('lambd'), t)} : {lit(0, t)}))"),
                       lambda a, op: torch.where(a[0] > op.attr("lambd"), a[0] - op.attr("lambd"),
                                                 torch.where(a[0] < -op.attr("lambd"), a[0] + op.attr("lambd"),
                                                             torch.zeros_like(a[0])))),
    "hardshrink": Prim(1, lambda a, op, t: (f"(({a[0]} > {lit(op.attr('lambd'), t)} || {a[0]} < -{lit(op.attr('lambd'), t)})"
                                            f" ? {a[0]} : {lit(0, t)})"),
                       lambda a, op: torch.where((a[0] > op.attr("lambd")) | (a[0] < -op.attr("lambd")), a[0],
                                                 torch.zeros_like(a[0]))),
    "threshold": Prim(1, lambda a, op, t: f"({a[0]} > {lit(op.attr('threshold'), t)} ? {a[0]} : {lit(op.attr('value'), t)})",
                      lambda a, op: torch.where(a[0] > op.attr("threshold"), a[0], _t(a[0], op.attr("value")))),
    "pow_scalar": Prim(1, _pow_scalar_c, _pow_scalar_t),
    "pow": Prim(2, lambda a, op, t: f"{fn('pow', t)}({a[0]}, {a[1]})", lambda a, op: torch.pow(a[0], a[1])),
    "rpow_scalar": Prim(1, lambda a, op, t: f"{fn('pow', t)}({lit(op.attr('base'), t)}, {a[0]})",
                        lambda a, op: torch.pow(op.attr("base"), a[0])),
    "maximum": Prim(2, lambda a, op, t: (f"{fn('fmax', t)}({a[0]}, {a[1]})" if t in ("float", "double")
                                         else f"({a[0]} > {a[1]} ? {a[0]} : {a[1]})"), lambda a, op: torch.maximum(a[0], a[1])),
    "minimum": Prim(2, lambda a, op, t: (f"{fn('fmin', t)}({a[0]}, {a[1]})" if t in ("float", "double")
                                         else f"({a[0]} < {a[1]} ? {a[0]} : {a[1]})"), lambda a, op: torch.minimum(a[0], a[1])),
    "atan2": Prim(2, lambda a, op, t: f"{fn('atan2', t)}({a[0]}, {a[1]})", lambda a, op: torch.atan2(a[0], a[1])),
    "fmod": Prim(2, lambda a, op, t: f"{fn('fmod', t)}({a[0]}, {a[1]})" if t in FLOAT_MATH else f"({a[0]} % {a[1]})",
                 lambda a, op: torch.fmod(a[0], a[1])),
    "remainder": Prim(2, lambda a, op, t: (f"({a[0]} - {fn('floor', t)}({a[0]} / {a[1]}) * {a[1]})" if t in FLOAT_MATH
                                           else f"({a[0]} % {a[1]} + ({_int_floor_adjust(a)} ? {a[1]} : 0))"),
                      lambda a, op: a[0] - torch.floor(a[0] / a[1]) * a[1]),
    "floor_divide": Prim(2, lambda a, op, t: (f"{fn('floor', t)}({a[0]} / {a[1]})" if t in FLOAT_MATH
                                              else f"({a[0]} / {a[1]} - ({_int_floor_adjust(a)} ? 1 : 0))"),
                         lambda a, op: torch.floor(a[0] / a[1])),
    "where": Prim(3, lambda a, op, t: f"({a[0]} ? {a[1]} : {a[2]})", lambda a, op: torch.where(a[0], a[1], a[2])),
    "cast": Prim(1, _cast_c, lambda a, op: _round_t(a[0], op), "any"),
}


def operand_dtype(prim: Prim, op: Op, arg_dtypes: list[str], position: int) -> str:
    """The dtype whose math type operand `position` is converted to before the primitive runs."""
    if prim.operands == "any":
        return arg_dtypes[position]
    if prim.operands == "bool":
        return "bool"
    if op.op == "where" and position == 0:
        return "bool"
    if prim.operands == "promote":
        return promote(arg_dtypes)
    return op.dtype


def promote(dtypes: list[str]) -> str:
    order = ["bool", "uint8", "int8", "int16", "int32", "int64", "bfloat16", "float16", "float32", "float64"]
    best = max(dtypes, key=order.index)
    if {"bfloat16", "float16"} <= set(dtypes):
        best = "float32" if best in ("bfloat16", "float16") else best
    return best
