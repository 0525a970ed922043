"""The functional form of a problem's Model (stage 1 of the pipeline).

Parameters and buffers become explicit arguments and the forward becomes a flat
list of ATen ops with shapes and dtypes, traced with torch.export (FX symbolic
tracing as a second try). The translator's prompts and the archive's signatures
use both the generated source and the op list. When tracing fails (data-
dependent control flow, unsupported ops) the reason is kept and the module
source stands in, so a run never stops here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from kernelwright.tools.problem.literals import python_literal

Method = Literal["export", "fx", "source"]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    shape: tuple[int, ...] | None
    dtype: str | None

    def render(self) -> str:
        if self.shape is None:
            return "?"
        short = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "float64": "f64", "int64": "i64",
                 "int32": "i32", "bool": "b8"}.get(self.dtype or "", self.dtype or "?")
        return f"{short}[{', '.join(map(str, self.shape))}]"


@dataclass(frozen=True, slots=True)
class ArgSpec:
    name: str
    kind: Literal["parameter", "buffer", "constant", "input"]
    target: str  # the module attribute it came from (lin.weight), or the input's position
    spec: TensorSpec


@dataclass(frozen=True, slots=True)
class OpRecord:
    name: str  # the value's name in the generated source
    target: str  # aten.softmax.int
    args: tuple[str, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True, slots=True)
class FunctionalForm:
    method: Method
    source: str  # generated functional source (or the module source on fallback)
    ops: tuple[OpRecord, ...] = ()
    args: tuple[ArgSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    fallback_reason: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def traced(self) -> bool:
        return self.method != "source"

    def op_counts(self) -> dict[str, int]:
        """Op signature for retrieval: how often each op occurs."""
        return dict(Counter(op.target for op in self.ops))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["traced"] = self.traced
        out["op_counts"] = self.op_counts()
        return out


def _spec(value: Any) -> TensorSpec:
    if isinstance(value, torch.Tensor):
        return TensorSpec(tuple(int(s) for s in value.shape), str(value.dtype).removeprefix("torch."))
    return TensorSpec(None, None)


def _specs(value: Any) -> tuple[TensorSpec, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(_spec(v) for v in value)
    return (_spec(value),)


def _fmt(arg: Any) -> str:
    return python_literal(arg, _fx_leaf)


def _fx_leaf(value: Any) -> str | None:
    if isinstance(value, torch.fx.Node):
        return value.name
    if isinstance(value, torch.device):
        return f"torch.device({str(value)!r})"
    return None


def _call_text(node: torch.fx.Node) -> tuple[str, tuple[str, ...]]:
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        fn = f"torch.ops.{target.namespace}.{target._opname}.{target._overloadname}"
    elif hasattr(target, "__module__") and hasattr(target, "__name__"):
        module = target.__module__ if target.__module__ != "_operator" else "operator"
        fn = f"{module}.{target.__name__}"
    else:
        fn = str(target)
    args = tuple(_fmt(a) for a in node.args) + tuple(f"{k}={_fmt(v)}" for k, v in node.kwargs.items())
    return fn, args


def _emit(graph: torch.fx.Graph, arg_names: Sequence[str]) -> tuple[str, tuple[OpRecord, ...], tuple[TensorSpec, ...]]:
    lines = [f"def forward({', '.join(arg_names)}):"]
    ops: list[OpRecord] = []
    outputs: tuple[TensorSpec, ...] = ()
    for node in graph.nodes:
        if node.op in ("call_function", "call_method"):
            fn, args = _call_text(node)
            val = node.meta.get("val", node.meta.get("tensor_meta"))
            specs = _specs(val) if val is not None else (TensorSpec(None, None),)
            call = f"{args[0]}.{node.target}({', '.join(args[1:])})" if node.op == "call_method" else f"{fn}({', '.join(args)})"
            lines.append(f"    {node.name} = {call}  # {', '.join(s.render() for s in specs)}")
            target = fn.removeprefix("torch.ops.") if node.op == "call_function" else f"Tensor.{node.target}"
            ops.append(OpRecord(node.name, target, args, specs))
        elif node.op == "output":
            result = node.args[0]
            lines.append(f"    return {_fmt(result)}")
            vals = result if isinstance(result, (list, tuple)) else (result,)
            outputs = tuple(_spec(v.meta.get("val")) if isinstance(v, torch.fx.Node) else TensorSpec(None, None) for v in vals)
    return "\n".join(lines) + "\n", tuple(ops), outputs


def _from_export(model: torch.nn.Module, inputs: Sequence[Any]) -> FunctionalForm:
    from torch.export import export
    from torch.export.graph_signature import InputKind

    program = export(model, tuple(inputs), strict=False)
    kinds = {InputKind.PARAMETER: "parameter", InputKind.BUFFER: "buffer", InputKind.CONSTANT_TENSOR: "constant",
             InputKind.USER_INPUT: "input"}
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    args: list[ArgSpec] = []
    user_index = 0
    for spec in program.graph_signature.input_specs:
        name = spec.arg.name
        kind = kinds.get(spec.kind, "input")
        target = spec.target if spec.target is not None else f"input[{user_index}]"
        if kind == "input":
            user_index += 1
        args.append(ArgSpec(name, kind, str(target), _spec(placeholders[name].meta.get("val"))))  # type: ignore[arg-type]
    source, ops, outputs = _emit(program.graph, [a.name for a in args])
    return FunctionalForm("export", source, ops, tuple(args), outputs)


def _from_fx(model: torch.nn.Module, inputs: Sequence[Any]) -> FunctionalForm:
    traced = torch.fx.symbolic_trace(model)
    try:  # shapes by running the traced module once (on the same CPU inputs)
        from torch.fx.passes.shape_prop import ShapeProp

        ShapeProp(traced).propagate(*inputs)
        note: tuple[str, ...] = ()
    except Exception as exc:  # shapes are a bonus
        note = (f"no shapes: {type(exc).__name__}: {exc}",)
    names = [n.name for n in traced.graph.nodes if n.op == "placeholder"]
    args = tuple(ArgSpec(n, "input", f"input[{i}]", _spec(inp)) for i, (n, inp) in enumerate(zip(names, inputs)))
    params = tuple(ArgSpec(name.replace(".", "_"), "parameter", name, _spec(p)) for name, p in model.named_parameters())
    for node in traced.graph.nodes:
        if "tensor_meta" in node.meta:
            node.meta["val"] = torch.empty(node.meta["tensor_meta"].shape, dtype=node.meta["tensor_meta"].dtype,
                                           device="meta")
    source, ops, outputs = _emit(traced.graph, names)
    notes = note + ("FX keeps module calls (get_attr/call_module) implicit; parameters are listed, not threaded",)
    return FunctionalForm("fx", source, ops, args + params, outputs, notes=notes)


def functional_form(model: torch.nn.Module, inputs: Sequence[Any], *, module_source: str) -> FunctionalForm:
    """Trace `model` on `inputs` (CPU tensors are fine: export traces with fake tensors)."""
    reasons: list[str] = []
    for method in (_from_export, _from_fx):
        try:
            form = method(model, inputs)
            if reasons:
                return FunctionalForm(form.method, form.source, form.ops, form.args, form.outputs,
                                      fallback_reason="; ".join(reasons), notes=form.notes)
            return form
        except Exception as exc:  # tracing fails in many shapes; each is a reason, never a stop
            label = "torch.export" if method is _from_export else "fx.symbolic_trace"
            reasons.append(f"{label}: {type(exc).__name__}: {_first_line(exc)}")
    return FunctionalForm("source", module_source, fallback_reason="; ".join(reasons))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
