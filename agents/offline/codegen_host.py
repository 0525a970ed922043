"""The candidate file: the problem's Model (renamed, so ModelNew owns identical parameters), the CUDA
source with its launcher specs, and ModelNew.forward, which runs the plan's steps on the host:
library/ATen calls, output allocation, and one launcher call per custom kernel."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from kernelwright.agents.offline.codegen_elementwise import StepKernel
from kernelwright.agents.offline.codegen_recurrent import recurrent_host_lines
from kernelwright.agents.offline.conv_layout import (
    CHANNELS_LAST,
    CHANNELS_LAST_PYTHON,
    CONTIGUOUS,
    LAYOUT_SUFFIX,
    channels_last_args,
)
from kernelwright.agents.offline.gemm_split import (
    FP32,
    SPLIT_LAUNCHER,
    SPLIT_MODES,
    SPLIT_SPEC,
    TF32,
    gemm_kind,
    gemm_python,
    host_call_expr,
    uses_split,
    uses_tf32,
)
from kernelwright.agents.offline.graph_launch import GRAPH_METHOD
from kernelwright.agents.offline.ir import Buffer, HostStep, Layout, Plan, RecurrentStep
from kernelwright.tools.problem.literals import python_literal

REFERENCE_CLASS = "_KwReferenceModel"
_PROBLEM_FUNCTIONS = {"get_inputs", "get_init_inputs", "get_input_variants"}


class HostEmitError(Exception):
    """The plan can't be written as a candidate (e.g. a huge lifted constant)."""


class _Rename(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id == "Model":
            node.id = REFERENCE_CLASS
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        if node.name == "Model":
            node.name = REFERENCE_CLASS
        self.generic_visit(node)
        return node


def reference_module_source(problem_source: str) -> str:
    """The problem's source without its input functions or __main__ block, Model renamed."""
    tree = ast.parse(problem_source)
    body = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in _PROBLEM_FUNCTIONS:
            continue
        if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue  # must be a file's first statement; the candidate has its own header
        body.append(node)
    tree.body = body
    return ast.unparse(_Rename().visit(tree))


def _literal(value: Any) -> str:
    return python_literal(value, _host_leaf, _unwritable)


def _host_leaf(value: Any) -> str | None:
    if isinstance(value, Layout):
        return _layout_expr(value)
    if isinstance(value, torch.device):
        return "_kw_dev"  # the candidate's own device, whatever the trace ran on
    return None


def _unwritable(value: Any) -> str:
    raise HostEmitError(f"cannot write a host argument of type {type(value).__name__}")


def _layout_expr(layout: Layout, buffers: dict[str, Buffer] | None = None) -> str:
    if layout.offset == 0 and layout.is_contiguous() and (buffers is None or layout.shape == buffers[layout.buffer].shape):
        if buffers is not None:
            return layout.buffer
    return f"torch.as_strided({layout.buffer}, {tuple(layout.shape)}, {tuple(layout.strides)}, {layout.offset})"


def _host_call(step: HostStep, buffers: dict[str, Buffer], gemm_mode: str = FP32,
               layout: str = CONTIGUOUS) -> list[str]:
    def lit(v: Any) -> str:
        if isinstance(v, Layout):
            return _layout_expr(v, buffers)
        if isinstance(v, (list, tuple)) and any(isinstance(x, Layout) for x in v):
            inner = ", ".join(lit(x) for x in v)
            return f"[{inner}]" if isinstance(v, list) else f"({inner},)"
        return _literal(v)

    args = [lit(a) for a in step.args] + [f"{k}={lit(v)}" for k, v in step.kwargs]
    channels_last = layout == CHANNELS_LAST  # conv_layout gives only plain convolutions (no kwargs) this choice
    call = f"torch.ops.{step.target}({', '.join(channels_last_args(args) if channels_last else args)})"
    if gemm_mode in (*SPLIT_MODES, TF32) and (kind := gemm_kind(step, buffers)):
        call = host_call_expr(kind, args, step.target, gemm_mode, channels_last=channels_last)
    outs = [b for b in step.outputs]
    if len(outs) == 1 and step.keeps_channels_last:  # read channels-last after it (conv_layout.kept_plan)
        return [f"{outs[0]} = _kw_cl({call})"]
    if len(outs) == 1:
        return [f"{outs[0]} = {call}.contiguous()" if outs[0] else call]
    lines = [f"_kw_r = {call}"]
    lines += [f"{b} = _kw_r[{i}].contiguous()" for i, b in enumerate(outs) if b]
    return lines


def _owner(target: str) -> str:
    return target.rpartition(".")[0]


def _attr(target: str) -> str:
    return target.rpartition(".")[2]


def _constant_init(attr: str, value: torch.Tensor) -> str:
    if value.numel() > 4096:
        raise HostEmitError(f"a lifted constant has {value.numel()} elements (too big to embed)")
    return (f"        self.register_buffer('{attr}', torch.tensor({value.tolist()!r}, "
            f"dtype={value.dtype}).reshape({tuple(value.shape)}))")


def _forward_body(plan: Plan, kernels: Sequence[StepKernel], params: list[str], index: int,
                  constant_attr: dict[str, str], gemm_modes: Mapping[str, str]) -> list[str]:
    buffers = dict(plan.buffers)
    by_step = {k.step: k for k in kernels}
    fetch: list[str] = []
    for buf in buffers.values():
        if plan.mutated(buf) or buf.origin == "attribute":
            continue  # state forward changes: read on every call (below)
        if buf.origin == "parameter":
            fetch.append(f"self.kw_ref.get_parameter({buf.target!r})")
        elif buf.origin == "buffer":
            fetch.append(f"self.kw_ref.get_buffer({buf.target!r})")
        elif buf.origin == "constant":
            fetch.append(f"self.{constant_attr[buf.target]}")
    state_names = [n for n, b in buffers.items() if b.origin in ("parameter", "buffer", "constant") and not plan.mutated(b)]
    body: list[str] = []
    for pname, buf_name in zip(params, plan.user_inputs):
        if buf_name is not None:
            body.append(f"{buf_name} = {pname}.contiguous()")
    if state_names:
        body.append(f"if {index} not in self._kw_state:")
        body.append(f"    self._kw_state[{index}] = [t.contiguous() for t in ({', '.join(fetch)},)]")
        body.append(f"{', '.join(state_names)}, = self._kw_state[{index}]")
    device_of = next((b for b in plan.user_inputs if b is not None), None) or (state_names[0] if state_names else None)
    if device_of is None:
        raise HostEmitError("forward has neither tensor inputs nor parameters")
    body.append(f"_kw_dev = {device_of}.device")
    for buf in buffers.values():
        if buf.origin == "attribute":  # a plain attribute: .to() as the Model does (ModelNew.to() does not move it)
            body.append(f"{buf.name} = getattr(self.kw_ref.get_submodule({_owner(buf.target)!r}), "
                        f"{_attr(buf.target)!r}).to(_kw_dev).contiguous()")
        elif plan.mutated(buf):
            body.append(f"{buf.name} = self.kw_ref.get_buffer({buf.target!r}).contiguous()")
    for step in plan.steps:
        if isinstance(step, HostStep):
            body.extend(_host_call(step, buffers, gemm_modes.get(step.name, FP32),
                                   gemm_modes.get(step.name + LAYOUT_SUFFIX, CONTIGUOUS)))
            continue
        if isinstance(step, RecurrentStep):
            body.extend(recurrent_host_lines(step, buffers, by_step.get(step.name), _layout_expr))
            continue
        kernel = by_step[step.name]
        for out in step.outputs:
            buf = buffers[out.buffer]
            body.append(f"{buf.name} = torch.empty({tuple(buf.shape)}, dtype=torch.{buf.dtype}, device=_kw_dev)")
        args = list(kernel.args)
        if kernel.scratch_bytes:
            body.append(f"_kw_scratch = torch.empty({kernel.scratch_bytes}, dtype=torch.uint8, device=_kw_dev)")
            args.append("_kw_scratch")
        body.append(f"_kw_lib.{kernel.launcher}({', '.join(args)})")
    origin = {b.target: b.origin for b in buffers.values() if b.origin in ("buffer", "attribute")}
    for target, value in plan.state_updates:  # the state the Model's forward leaves, as it leaves it
        if origin.get(target) == "attribute":  # forward reassigned the attribute
            body.append(f"setattr(self.kw_ref.get_submodule({_owner(target)!r}), {_attr(target)!r}, "
                        f"{_layout_expr(value, buffers)})")
        else:  # a registered buffer, changed in place
            body.append(f"self.kw_ref.get_buffer({target!r}).copy_({_layout_expr(value, buffers)})")
    outs = [_layout_expr(o, buffers) if isinstance(o, Layout) else f"torch.tensor({o.value!r}, device=_kw_dev)"
            for o in plan.outputs]
    if plan.output_kind == "single":
        body.append(f"return {outs[0]}")
    elif plan.output_kind == "list":
        body.append(f"return [{', '.join(outs)}]")
    else:
        body.append(f"return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
    return body


def candidate_source(shapes: Sequence[tuple[Plan, Sequence[StepKernel]]], *, problem_source: str,
                     forward_params: Sequence[str], constants: dict[str, torch.Tensor], header: str,
                     cuda_source: str, gemm_modes: Sequence[Mapping[str, str]] = (), graph: bool = False) -> str:
    """One ModelNew serving every traced input shape (get_inputs and each get_input_variants entry): forward
    dispatches on the input shapes to the plan specialised for them (other shapes run the problem's module). `gemm_modes` (per shape: host step ->
    "fp32" | "tf32x3" | "tf32x3k" | "tf32") picks the 3xTF32 path (cuda_source must then hold gemm_split's kernel) or plain
    TF32 for fp32 GEMMs; its "<step>.LAYOUT" keys (conv_layout.conv_layouts) run those convolutions channels-last.
    `graph`: each shape whose plan allows it (Plan.graph_launch) replays its forward as a CUDA graph (graph_launch)."""
    modes = list(gemm_modes) + [{}] * (len(shapes) - len(gemm_modes))
    split_used = uses_split(modes)
    tf32_used = uses_tf32(modes)
    cl_used = any(m == CHANNELS_LAST for per_shape in modes for m in per_shape.values())
    main = shapes[0][0]
    params = list(forward_params)
    if len(params) != len(main.user_inputs):
        params = [f"in{i}" for i in range(len(main.user_inputs))]
    launchers = {k.launcher: k.spec for _, kernels in shapes for k in kernels}
    headers = tuple(dict.fromkeys(h for _, kernels in shapes for k in kernels for h in k.headers))
    if split_used:
        launchers[SPLIT_LAUNCHER] = SPLIT_SPEC
    init_lines = [f"        self.kw_ref = {REFERENCE_CLASS}(*args, **kwargs)"]
    constant_attr: dict[str, str] = {}
    for plan, _ in shapes:
        for buf in plan.buffers.values():
            if buf.origin == "constant" and buf.target not in constant_attr:
                constant_attr[buf.target] = f"_kw_const{len(constant_attr)}"
                init_lines.append(_constant_init(constant_attr[buf.target], constants[buf.target]))
    tensor_params = [p for p, b in zip(params, main.user_inputs) if b is not None]
    key = "(" + "".join(f"tuple({p}.shape), " for p in tensor_params) + ")"
    dispatch = [f"_kw_key = {key}"]
    methods = []
    for index, (plan, kernels) in enumerate(shapes):
        shapes_key = tuple(plan.buffers[b].shape for b in plan.user_inputs if b is not None)
        dispatch.append(f"if _kw_key == {shapes_key!r}:")
        if graph and plan.graph_launch:
            dispatch.append(f"    return self._kw_graphed({index}, self._kw_forward_{index}, ({''.join(p + ', ' for p in params)}))")
        else:
            dispatch.append(f"    return self._kw_forward_{index}({', '.join(params)})")
        body = _forward_body(plan, kernels, params, index, constant_attr, modes[index])
        methods.append(f"    def _kw_forward_{index}(self, {', '.join(params)}):\n" + "\n".join("        " + line for line in body))
    if graph and any(plan.graph_launch for plan, _ in shapes):
        init_lines.append("        self._kw_graphs = {}  # traced shape -> (dtypes and devices, CUDA graph, its inputs, its outputs)")
        methods.append(GRAPH_METHOD)
    # Shapes it was not traced at (a batch size the harness tries, a user's other input): the problem's own
    # module computes them, so the candidate is right everywhere and fast where it was built.
    dispatch.append(f"return self.kw_ref({', '.join(params)})")
    launcher_text = ",\n".join(f"    {name!r}: {spec!r}" for name, spec in launchers.items())
    forward = "\n".join("        " + line for line in dispatch)
    return f'''{header}
import torch
import torch.nn as nn

from kernelwright.tools.raw_kernel import load_cuda

# ---- the problem's module with Model renamed: ModelNew builds one to own identical parameters and
# buffers (same constructor, same seed); its forward runs only at input shapes that were not traced.
{reference_module_source(problem_source)}

_KW_CUDA_SRC = r"""{cuda_source}"""

_kw_lib = load_cuda(_KW_CUDA_SRC, {{
{launcher_text}
}}{f", headers={headers!r}" if headers else ""})
{gemm_python(split_used, tf32_used)}{CHANNELS_LAST_PYTHON if cl_used else ""}


class ModelNew(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
{chr(10).join(init_lines)}
        self._kw_state = {{}}

    def forward(self, {', '.join(params)}):
{forward}

{(chr(10) + chr(10)).join(methods)}
'''
