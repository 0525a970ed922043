"""Run a Plan with plain torch ops (CPU): the same steps, layouts, broadcasting and formulas the CUDA
is generated from. Agreement with the problem's Model on real inputs validates the translation
logic without a GPU."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from kernelwright.agents.offline.conv_plan import run_conv
from kernelwright.agents.offline.gemm_plan import run_gemm
from kernelwright.agents.offline.ir import (
    Const,
    ConvStep,
    Dag,
    ElementwiseStep,
    GemmStep,
    HostStep,
    Layout,
    Load,
    Plan,
    PoolStep,
    PoolWindow,
    RecurrentStep,
    ReductionStep,
    Special,
    map_args,
)
from kernelwright.agents.offline.ops import PRIMITIVES, TORCH_DTYPE, compute_dtype, operand_dtype


def resolve_op(target: str) -> Any:
    """'aten.conv2d.default' -> torch.ops.aten.conv2d.default"""
    namespace, name, overload = target.split(".")
    return getattr(getattr(getattr(torch.ops, namespace), name), overload)


def initial_memory(plan: Plan, model: torch.nn.Module, inputs: Sequence[Any],
                   constants: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    mem: dict[str, torch.Tensor] = {}
    positions = {b: i for i, b in enumerate(plan.user_inputs) if b is not None}
    for name, buf in plan.buffers.items():
        if buf.origin == "input":
            mem[name] = inputs[positions[name]].contiguous()
        elif buf.origin == "parameter":
            mem[name] = model.get_parameter(buf.target).detach().contiguous()
        elif buf.origin in ("buffer", "attribute"):  # the traced Model has its state attributes as buffers
            mem[name] = model.get_buffer(buf.target).contiguous()
        elif buf.origin == "constant":
            mem[name] = (constants or {})[buf.target].contiguous()
    return mem


def _channels_last(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if t.dim() == 4 else torch.channels_last_3d


def view(mem: Mapping[str, torch.Tensor], layout: Layout) -> torch.Tensor:
    return torch.as_strided(mem[layout.buffer], layout.shape, layout.strides, layout.offset)


def eval_dag(dag: Dag, mem: Mapping[str, torch.Tensor], specials: Mapping[str, torch.Tensor] | None = None) -> list[torch.Tensor]:
    values: list[torch.Tensor] = []
    dtypes: list[str] = []
    for expr in dag.nodes:
        if isinstance(expr, Load):
            values.append(view(mem, expr.layout).to(compute_dtype(expr.dtype)))
            dtypes.append(expr.dtype)
        elif isinstance(expr, Const):
            values.append(torch.tensor(expr.value))
            dtypes.append(expr.dtype)
        elif isinstance(expr, Special):
            values.append((specials or {})[expr.name].to(compute_dtype(expr.dtype)))
            dtypes.append(expr.dtype)
        else:
            prim = PRIMITIVES[expr.op]
            arg_dtypes = [dtypes[a] for a in expr.args]
            args = [values[a].to(compute_dtype(operand_dtype(prim, expr, arg_dtypes, i))) for i, a in enumerate(expr.args)]
            out = prim.torch(args, expr)
            if expr.dtype in ("float16", "bfloat16") and expr.op != "cast":
                out = out.to(TORCH_DTYPE[expr.dtype])  # eager rounds each half-precision result
            values.append(out if expr.op == "cast" else out.to(compute_dtype(expr.dtype)))
            dtypes.append(expr.dtype)
    return values


def _store(mem: dict[str, torch.Tensor], plan: Plan, buffer: str, value: torch.Tensor) -> None:
    buf = plan.buffers[buffer]
    mem[buffer] = value.expand(buf.shape).to(TORCH_DTYPE[buf.dtype]).contiguous()


def reduce_values(step: ReductionStep, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The reduction's Special values from its prologue value x of shape [outer, reduce, inner]."""
    kind = step.reduction
    if kind in ("sum", "mean", "prod"):
        return {"value": getattr(torch, kind)(x, 1)}
    if kind in ("max", "min"):
        return {"value": torch.amax(x, 1) if kind == "max" else torch.amin(x, 1)}
    if kind in ("argmax", "argmin"):
        return {"index": torch.argmax(x, 1) if kind == "argmax" else torch.argmin(x, 1)}
    if kind in ("max_with_index", "min_with_index"):
        values, index = torch.max(x, 1) if kind == "max_with_index" else torch.min(x, 1)
        return {"value": values, "index": index}
    if kind in ("var", "std"):
        mean = x.mean(1, keepdim=True)
        var = ((x - mean) ** 2).sum(1) / max(step.reduce - step.attr("correction", 1.0), 0)
        return {"value": var if kind == "var" else torch.sqrt(var)}
    if kind == "logsumexp":
        m = torch.amax(x, 1, keepdim=True)
        m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
        return {"value": (torch.log(torch.exp(x - m).sum(1, keepdim=True)) + m).squeeze(1)}
    if kind == "norm":
        p = step.attr("ord", 2.0)
        if p == 1.0:
            return {"value": x.abs().sum(1)}
        if p == 2.0:
            return {"value": torch.sqrt((x * x).sum(1))}
        return {"value": torch.pow(torch.pow(x.abs(), p).sum(1), 1.0 / p)}
    if kind in ("softmax", "log_softmax"):
        m = torch.amax(x, 1, keepdim=True)
        e = torch.exp(x - m)
        s = e.sum(1, keepdim=True)
        return {"z": e / s if kind == "softmax" else x - m - torch.log(s)}
    if kind == "layer_norm":
        mean = x.mean(1, keepdim=True)
        var = ((x - mean) ** 2).mean(1, keepdim=True)
        return {"z": (x - mean) * torch.rsqrt(var + step.attr("eps"))}
    if kind == "cumsum":
        return {"z": torch.cumsum(x, 1)}
    if kind == "cumprod":
        return {"z": torch.cumprod(x, 1)}
    if kind == "rms_norm":
        return {"z": x * torch.rsqrt((x * x).mean(1, keepdim=True) + step.attr("eps"))}
    raise ValueError(f"unknown reduction {kind}")


def pool_values(w: PoolWindow, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Pool x of shape [planes, *in_size] window by window, the way the CUDA does: each kernel offset's strided
    slice of the input (padding reads as -inf for max, 0 for avg and depthwise), combined with NaN-propagating
    max, a sum in window order divided by ATen's divisor (PoolWindow.axis_counts), or (depthwise) a sum of the
    slices times their weight taps: `weight` is [channels * multiplier, *kernel], one filter per output channel."""
    axes = list(w.axes)
    extent = [(o - 1) * s + (k - 1) * d + 1 for o, s, k, d in zip(w.out_size, w.stride, w.kernel, w.dilation)]
    after = [max(0, e - p - size) for e, p, size in zip(extent, w.padding, w.in_size)]
    fill = float("-inf") if w.pool == "max" else 0.0
    xp = torch.nn.functional.pad(x, [v for a in reversed(axes) for v in (w.padding[a], after[a])], value=fill)
    taps: torch.Tensor | None = None
    if w.pool == "depthwise":
        if weight is None:
            raise ValueError("a depthwise window needs its weight")
        acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # the kernel accumulates in fp32
        xp = xp.repeat_interleave(w.multiplier, dim=0).to(acc_dtype)
        filters = weight.reshape(-1, *w.kernel).to(acc_dtype)
        taps = filters.repeat(xp.shape[0] // filters.shape[0], *[1] * len(axes))  # plane p: filter p % channels
    acc: torch.Tensor | None = None
    for offsets in itertools.product(*(range(k) for k in w.kernel)):
        window: tuple[slice, ...] = (slice(None),) + tuple(
            slice(i * d, i * d + (o - 1) * s + 1, s) for i, d, o, s in zip(offsets, w.dilation, w.out_size, w.stride))
        part = xp[window]
        if taps is not None:
            tap: tuple[slice | int, ...] = (slice(None),) + offsets
            part = part * taps[tap].reshape(-1, *[1] * len(axes))
        acc = part if acc is None else (torch.maximum(acc, part) if w.pool == "max" else acc + part)
    if acc is None:
        raise ValueError(f"pool window {w.kernel} covers no element")  # pool_window() admits kernels >= 1 only
    if w.pool in ("max", "depthwise"):
        return acc
    if w.divisor_override:
        return acc / w.divisor_override
    pick = 0 if w.count_include_pad else 1
    divisor = torch.ones((), dtype=acc.dtype)
    for a in axes:
        counts = torch.tensor([c[pick] for c in w.axis_counts(a)], dtype=acc.dtype)
        divisor = divisor * counts.reshape(-1, *[1] * (len(axes) - 1 - a))
    return acc / divisor


def run_step(plan: Plan, step: Any, mem: dict[str, torch.Tensor]) -> None:
    if isinstance(step, ElementwiseStep):
        values = eval_dag(step.dag, mem)
        for out in step.outputs:
            if step.writes_channels_last:
                _store_channels_last(mem, plan, out.buffer, values[out.node].expand(step.dag.shape))
            else:
                _store(mem, plan, out.buffer, values[out.node])
    elif isinstance(step, ReductionStep):
        x = eval_dag(step.prologue, mem)[-1].expand(step.prologue.shape)
        x = x.reshape(step.outer, step.reduce, step.inner)
        specials = {k: v.reshape(step.epilogue.shape) for k, v in reduce_values(step, x).items()}
        values = eval_dag(step.epilogue, mem, specials)
        for out in step.outputs:
            if step.writes_channels_last:
                _store_channels_last(mem, plan, out.buffer, values[out.node].expand(step.epilogue.shape))
            else:
                _store(mem, plan, out.buffer, values[out.node])
    elif isinstance(step, PoolStep):
        w = step.window
        x = eval_dag(step.prologue, mem)[-1].expand(step.prologue.shape).reshape(w.planes, *w.in_size)
        weight = view(mem, step.weight) if step.weight is not None else None
        value = pool_values(w, x, weight)
        if step.writes_channels_last:  # outputs in (N, *spatial, C) order
            value = value.reshape(*step.prologue.shape[:2], *w.out_size).movedim(1, -1)
        value = value.reshape(step.epilogue.shape)
        out_dtype = next((e.dtype for e in step.epilogue.nodes if isinstance(e, Special)), "float32")
        if out_dtype in ("float16", "bfloat16"):
            value = value.to(TORCH_DTYPE[out_dtype])  # the pooled value is rounded once, as eager stores it
        values = eval_dag(step.epilogue, mem, {"value": value})
        for out in step.outputs:
            if step.writes_channels_last:
                _store_channels_last(mem, plan, out.buffer, values[out.node].expand(step.epilogue.shape))
            else:
                _store(mem, plan, out.buffer, values[out.node])
    elif isinstance(step, RecurrentStep):
        outs = run_recurrent(step, view(mem, step.input), [view(mem, h) for h in step.hx],
                             [view(mem, w) for w in step.params])
        for buf, value in zip(step.outputs, outs):
            mem[buf] = value.contiguous()
    elif isinstance(step, GemmStep):
        run_gemm(step, plan.buffers, mem)
    elif isinstance(step, ConvStep):
        run_conv(step, plan.buffers, mem)
    elif isinstance(step, HostStep):
        conv = lambda v: view(mem, v) if isinstance(v, Layout) else v  # noqa: E731
        args = map_args(conv, step.args)
        kwargs = {k: map_args(conv, v) for k, v in step.kwargs}
        result = resolve_op(step.target)(*args, **kwargs)
        results = list(result) if isinstance(result, (tuple, list)) else [result]
        for name, value in zip(step.outputs, results):
            if name is not None:  # an output the graph does not use
                mem[name] = value.contiguous(memory_format=_channels_last(value)) if step.keeps_channels_last \
                    else value.contiguous()
    else:
        raise TypeError(f"unknown step {type(step).__name__}")


def _store_channels_last(mem: dict[str, torch.Tensor], plan: Plan, buffer: str, value: torch.Tensor) -> None:
    """`value` in (N, *spatial, C) order (a step that writes channels-last) stored as the buffer's channels-last
    storage."""
    value = value.movedim(-1, 1)
    mem[buffer] = value.to(TORCH_DTYPE[plan.buffers[buffer].dtype]).contiguous(memory_format=_channels_last(value))


def run_recurrent(step: RecurrentStep, x: torch.Tensor, hx: list[torch.Tensor],
                  params: list[torch.Tensor]) -> list[torch.Tensor]:
    """The RecurrentStep as its kernel computes it (per layer: the gate projection of the whole sequence,
    then step by step h W_hh^T + b_hh and the cell, the reverse direction from the last step), in torch:
    checks the plan's wiring and the kernel's formulas against the Model's own recurrent layer."""
    D, H = step.directions, step.hidden
    seq_first = x.transpose(0, 1) if step.batch_first else x  # [T, B, features]
    h_n, c_n, layer_in = [], [], seq_first
    for layer in range(step.layers):
        outs = []
        for d in range(D):
            w_ih, w_hh, b_ih, b_hh = params[4 * (layer * D + d): 4 * (layer * D + d) + 4]
            proj = torch.nn.functional.linear(layer_in, w_ih, b_ih)
            h = hx[0][layer * D + d]
            c = hx[1][layer * D + d] if step.cell == "lstm" else None
            ys = [torch.empty(0)] * step.seq
            for s in range(step.seq):
                t = step.seq - 1 - s if d else s
                x_t, a = proj[t], torch.nn.functional.linear(h, w_hh, b_hh)
                if step.cell == "lstm":
                    i, f, g, o = (x_t + a).split(H, dim=-1)
                    assert c is not None  # an LSTM carries its cell state
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                elif step.cell == "gru":
                    xr, xz, xn = x_t.split(H, dim=-1)
                    ar, az, an = a.split(H, dim=-1)
                    r, z = torch.sigmoid(xr + ar), torch.sigmoid(xz + az)
                    h = (1 - z) * torch.tanh(xn + r * an) + z * h
                else:
                    h = torch.tanh(x_t + a) if step.cell == "rnn_tanh" else torch.relu(x_t + a)
                ys[t] = h
            outs.append(torch.stack(ys))
            h_n.append(h)
            if c is not None:
                c_n.append(c)
        layer_in = torch.cat(outs, dim=-1)
    out = layer_in.transpose(0, 1) if step.batch_first else layer_in
    return [out, torch.stack(h_n)] + ([torch.stack(c_n)] if step.cell == "lstm" else [])


def interpret(plan: Plan, model: torch.nn.Module, inputs: Sequence[Any],
              constants: Mapping[str, torch.Tensor] | None = None) -> list[torch.Tensor]:
    mem = initial_memory(plan, model, inputs, constants)
    with torch.no_grad():
        for step in plan.steps:
            run_step(plan, step, mem)
    return [view(mem, o) if isinstance(o, Layout) else torch.tensor(o.value) for o in plan.outputs]


