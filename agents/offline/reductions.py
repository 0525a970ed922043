"""ATen reductions and normalisations as a ReductionStep's geometry and kind.

Any reduction whose reduced dims are adjacent becomes [outer, reduce, inner]:
sum over dim 1 of (B, C, H, W) is outer=B, reduce=C, inner=H*W. Reductions over
non-adjacent dims are reported unsupported (and kept as ATen).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any

from kernelwright.agents.offline.ir import ReductionKind


class NotReducible(Exception):
    """This call can't be a ReductionStep (the reason is the message)."""


@dataclass(frozen=True)
class ReductionSpec:
    kind: ReductionKind
    outer: int
    reduce: int
    inner: int
    results: tuple[str, ...]  # "value" / "index" / "z", in the op's output order
    attrs: tuple[tuple[str, Any], ...] = ()
    # Normalisations: the affine part after z, as (role, value): ("weight", v) multiplies, ("bias", v) adds;
    # ("channel_weight", v) / ("channel_bias", v) broadcast over dim 1.
    affine: tuple[tuple[str, Any], ...] = field(default_factory=tuple)


def _dims(dim: Any, ndim: int) -> list[int]:
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return list(range(ndim))
    dims = [dim] if isinstance(dim, int) else list(dim)
    return sorted({d % ndim if ndim else 0 for d in dims})


def geometry(shape: tuple[int, ...], dims: list[int]) -> tuple[int, int, int]:
    if not shape:
        return 1, 1, 1
    if dims != list(range(dims[0], dims[-1] + 1)):
        raise NotReducible(f"reduction over non-adjacent dims {dims} of shape {list(shape)}")
    return prod(shape[:dims[0]]), prod(shape[dims[0]:dims[-1] + 1]), prod(shape[dims[-1] + 1:])


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def reduction_spec(target: str, args: tuple[Any, ...], kwargs: dict[str, Any], shape: tuple[int, ...],
                   dtype: str) -> ReductionSpec:
    """The spec for `target` on an input of `shape`; NotReducible when it isn't one we generate."""
    nd = len(shape)
    op, _, overload = target.partition(".")

    def spec(kind: ReductionKind, dims: list[int], results: tuple[str, ...] = ("value",), **attrs: Any) -> ReductionSpec:
        o, r, i = geometry(shape, dims)
        return ReductionSpec(kind, o, r, i, results, tuple(sorted(attrs.items())))

    if op in ("sum", "mean", "prod"):
        dims = _dims(None if overload == "default" else _arg(args, kwargs, 1, "dim"), nd)
        return spec(op, dims)  # type: ignore[arg-type]
    if op in ("amax", "amin"):
        return spec("max" if op == "amax" else "min", _dims(_arg(args, kwargs, 1, "dim"), nd))
    if op in ("max", "min") and overload == "default":
        return spec(op, _dims(None, nd))  # type: ignore[arg-type]
    if op in ("max", "min") and overload == "dim":
        return spec(f"{op}_with_index", _dims(_arg(args, kwargs, 1, "dim"), nd), ("value", "index"))  # type: ignore[arg-type]
    if op in ("argmax", "argmin"):
        return spec(op, _dims(_arg(args, kwargs, 1, "dim"), nd), ("index",))  # type: ignore[arg-type]
    if op in ("var", "std") and overload == "correction":
        correction = _arg(args, kwargs, 2, "correction")
        return spec(op, _dims(_arg(args, kwargs, 1, "dim"), nd), correction=1.0 if correction is None else float(correction))  # type: ignore[arg-type]
    if op == "logsumexp":
        return spec("logsumexp", _dims(_arg(args, kwargs, 1, "dim"), nd))
    if op == "linalg_vector_norm":
        order = float(_arg(args, kwargs, 1, "ord", 2))
        if order not in (1.0, 2.0) and not (order > 0 and order != float("inf")):
            raise NotReducible(f"vector norm of order {order}")
        return spec("norm", _dims(_arg(args, kwargs, 2, "dim"), nd), ord=order)
    if op in ("softmax", "_softmax", "log_softmax", "_log_softmax"):
        kind = "softmax" if "log" not in op else "log_softmax"
        return spec(kind, _dims(_arg(args, kwargs, 1, "dim"), nd), ("z",))  # type: ignore[arg-type]
    if op in ("cumsum", "cumprod"):
        return spec(op, _dims(_arg(args, kwargs, 1, "dim"), nd), ("z",))  # type: ignore[arg-type]
    if op == "layer_norm":
        normalized = list(_arg(args, kwargs, 1, "normalized_shape"))
        base = spec("layer_norm", list(range(nd - len(normalized), nd)), ("z",), eps=float(_arg(args, kwargs, 4, "eps", 1e-5)))
        return _with_affine(base, (("weight", _arg(args, kwargs, 2, "weight")), ("bias", _arg(args, kwargs, 3, "bias"))))
    if op == "rms_norm":
        normalized = list(_arg(args, kwargs, 1, "normalized_shape"))
        eps = _arg(args, kwargs, 3, "eps")
        if eps is None:
            eps = {"float64": 2.220446049250313e-16, "float16": 0.0009765625, "bfloat16": 0.0078125}.get(dtype, 1.1920928955078125e-07)
        base = spec("rms_norm", list(range(nd - len(normalized), nd)), ("z",), eps=float(eps))
        return _with_affine(base, (("weight", _arg(args, kwargs, 2, "weight")),))
    if op == "group_norm":
        groups = int(_arg(args, kwargs, 1, "num_groups"))
        if nd < 2 or shape[1] % groups:
            raise NotReducible("group_norm with channels not divisible by groups")
        rest = prod(shape[2:])
        base = ReductionSpec("layer_norm", shape[0] * groups, (shape[1] // groups) * rest, 1, ("z",),
                             (("eps", float(_arg(args, kwargs, 4, "eps", 1e-5))),))
        return _with_affine(base, (("channel_weight", _arg(args, kwargs, 2, "weight")),
                                   ("channel_bias", _arg(args, kwargs, 3, "bias"))))
    if op == "instance_norm":
        if not _arg(args, kwargs, 5, "use_input_stats", True) or nd < 3:
            raise NotReducible("instance_norm with running statistics")
        base = ReductionSpec("layer_norm", shape[0] * shape[1], prod(shape[2:]), 1, ("z",),
                             (("eps", float(_arg(args, kwargs, 7, "eps", 1e-5))),))
        return _with_affine(base, (("channel_weight", _arg(args, kwargs, 1, "weight")),
                                   ("channel_bias", _arg(args, kwargs, 2, "bias"))))
    raise NotReducible(f"no reduction kernel for {target}")


def _with_affine(base: ReductionSpec, affine: tuple[tuple[str, Any], ...]) -> ReductionSpec:
    kept = tuple((role, v) for role, v in affine if v is not None)
    return ReductionSpec(base.kind, base.outer, base.reduce, base.inner, base.results, base.attrs, kept)


REDUCTION_OPS = {"sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "var", "std", "logsumexp",
                 "linalg_vector_norm", "softmax", "_softmax", "log_softmax", "_log_softmax", "layer_norm", "rms_norm",
                 "group_norm", "instance_norm", "cumsum", "cumprod"}


def is_reduction(target: str) -> bool:
    op, _, overload = target.partition(".")
    if op in ("max", "min"):
        return overload in ("default", "dim")
    if op in ("var", "std"):
        return overload == "correction"
    return op in REDUCTION_OPS
