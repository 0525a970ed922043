"""Traced FX graph -> Plan: which ops fuse into which kernel, what stays a host call.

Walks the graph in order. An elementwise op joins the open kernel ("group") of
an operand of the same shape when everything else it reads is ready before that
kernel runs (so groups stay in a valid order); otherwise it opens a new one.
Values stay inside a kernel ("lazy") until something outside needs them in
memory, then the kernel gets an extra output. A reduction absorbs the kernel
that computes its input when nothing else uses that kernel's values (prologue),
and later elementwise ops on its result join it (epilogue); a pool does the same
(its prologue runs on every element a window reads). Library ops (GEMM,
conv) and ops without a kernel here become host ATen calls.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch

from kernelwright.agents.context import RunSettings
from kernelwright.agents.offline.depthwise import NotDepthwise, depthwise_window, grouped_conv
from kernelwright.agents.offline.ir import (
    Buffer,
    Const,
    Dag,
    ElementwiseStep,
    Expr,
    HostStep,
    Layout,
    Load,
    Op,
    Plan,
    PoolStep,
    PoolWindow,
    RecurrentStep,
    ReductionStep,
    Special,
    StepOutput,
    contiguous_strides,
    expand_layout,
    map_args,
)
from kernelwright.agents.offline.lowering import IDENTITY, LOWERINGS
from kernelwright.agents.offline.ops import PRIMITIVES
from kernelwright.agents.offline.pooling import NotPoolable, is_pool, pool_window, supported_pool
from kernelwright.agents.offline.reductions import NotReducible, ReductionSpec, is_reduction, reduction_spec
from kernelwright.agents.offline.views import VIEW_OPS, view_layouts

LIBRARY_OPS = ("linear", "matmul", "mm", "bmm", "addmm", "baddbmm", "addbmm", "addmv", "mv", "dot", "einsum",
               "conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d", "tensordot", "scaled_dot_product_attention", "lstm", "gru", "rnn_tanh", "rnn_relu")


RECURRENT_OPS = ("lstm.input", "gru.input", "rnn_tanh.input", "rnn_relu.input")
RECURRENT_SMEM_BYTES = 160 * 1024  # one hidden unit's weights and the whole h a step reads, per block


class NotRecurrent(Exception):
    """A recurrent op the RecurrentStep kernel does not cover (it stays the library call)."""


@dataclass(frozen=True)
class Real:
    layout: Layout
    dtype: str


@dataclass(frozen=True)
class Lazy:
    group: Group
    node: int
    dtype: str


@dataclass(frozen=True)
class Scalar:
    value: float | int | bool
    dtype: str


@dataclass(frozen=True)
class Tup:
    items: tuple[Any, ...]


@dataclass(eq=False)
class Group:
    index: int
    shape: tuple[int, ...]
    nodes: list[Expr] = field(default_factory=list)
    outputs: dict[int, str] = field(default_factory=dict)
    fx_names: set[str] = field(default_factory=set)
    memo: dict[Any, int] = field(default_factory=dict)
    reduction: ReductionSpec | None = None
    pool: PoolWindow | None = None
    pool_weight: Layout | None = None  # a depthwise conv's filters
    prologue: Dag | None = None
    dead: bool = False

    @property
    def elementwise(self) -> bool:
        """A plain elementwise kernel (not a reduction's or a pool's epilogue)."""
        return self.reduction is None and self.pool is None

    def add(self, expr: Expr) -> int:
        key = expr if isinstance(expr, (Load, Const, Special)) else None
        if key is not None and key in self.memo:
            return self.memo[key]
        self.nodes.append(expr)
        if key is not None:
            self.memo[key] = len(self.nodes) - 1
        return len(self.nodes) - 1


class PlanningError(Exception):
    """An op that can't be planned at all (not even kept as ATen)."""


def _dtype(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def _target_name(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return f"{target._opname}.{target._overloadname}"
    return getattr(target, "__name__", str(target))


class Planner:
    def __init__(self, program: Any, *, fuse_reductions: bool = True, prefix: str = "",
                 attributes: frozenset[str] = frozenset(), preview: bool):
        self.program = program
        self.preview = preview  # RunSettings.offline_preview: 3-D pools and depthwise convs get kernels
        self.attributes = attributes  # buffers that are plain tensor attributes in the problem's Model
        self.prefix = prefix  # step names are <prefix>k<n> (one plan per input shape in a candidate)
        self.fuse_reductions = fuse_reductions
        self.buffers: dict[str, Buffer] = {}
        self.producer: dict[str, int] = {}  # buffer -> index of the step that writes it (-1: given)
        self.slots: list[Group | HostStep | RecurrentStep] = []
        self.env: dict[str, Any] = {}
        self.kept: list[str] = []
        self.notes: list[str] = []
        self.users: dict[str, set[str]] = {}

    # ---------------------------------------------------------------- buffers and values
    def new_buffer(self, shape: tuple[int, ...], dtype: str, producer: int, origin: str = "step", target: str = "") -> str:
        name = f"b{len(self.buffers)}"
        self.buffers[name] = Buffer(name, tuple(shape), dtype, origin, target)  # type: ignore[arg-type]
        self.producer[name] = producer
        return name

    def real_for(self, buffer: str) -> Real:
        buf = self.buffers[buffer]
        return Real(Layout(buffer, buf.shape, contiguous_strides(buf.shape), 0), buf.dtype)

    def materialise(self, val: Any) -> Real:
        if isinstance(val, Real):
            return val
        if isinstance(val, Lazy):
            g = val.group
            if val.node not in g.outputs:
                g.outputs[val.node] = self.new_buffer(g.shape, val.dtype, g.index)
            return self.real_for(g.outputs[val.node])
        if isinstance(val, Scalar):
            g = self.new_group(())
            return self.materialise(Lazy(g, g.add(Const(val.value, val.dtype)), val.dtype))
        raise PlanningError(f"cannot materialise {type(val).__name__}")

    def ready_before(self, val: Any, index: int) -> bool:
        if isinstance(val, Real):
            return self.producer[val.layout.buffer] < index
        if isinstance(val, Lazy):
            return val.group.index <= index  # same group: computed in it; earlier: gets an output
        if isinstance(val, Tup):
            return all(self.ready_before(v, index) for v in val.items if v is not None)
        return True

    def new_group(self, shape: tuple[int, ...]) -> Group:
        g = Group(len(self.slots), tuple(shape))
        self.slots.append(g)
        return g

    def operand(self, g: Group, val: Any) -> int:
        if isinstance(val, Lazy) and val.group is g:
            return val.node
        if isinstance(val, (int, float, bool)):
            return g.add(Const(val, "bool" if isinstance(val, bool) else ("int64" if isinstance(val, int) else "float32")))
        if isinstance(val, Scalar):
            return g.add(Const(val.value, val.dtype))
        real = self.materialise(val)
        return g.add(Load(expand_layout(real.layout, g.shape), real.dtype))

    # ---------------------------------------------------------------- graph walk
    def run(self) -> Plan:
        sig = self.program.graph_signature
        kinds = {s.arg.name: (s.kind.name.lower(), s.target) for s in sig.input_specs}
        user_inputs: list[str | None] = []
        graph = self.program.graph
        for node in graph.nodes:
            self.users[node.name] = {u.name for u in node.users}
        for node in graph.nodes:
            if node.op == "placeholder":
                kind, target = kinds.get(node.name, ("user_input", None))
                val = node.meta.get("val")
                if not isinstance(val, torch.Tensor):
                    self.env[node.name] = val
                    if kind == "user_input":
                        user_inputs.append(None)
                    continue
                origin = {"user_input": "input", "parameter": "parameter", "buffer": "buffer",
                          "constant_tensor": "constant"}.get(kind, "input")
                if origin == "buffer" and target in self.attributes:
                    origin = "attribute"
                name = self.new_buffer(tuple(val.shape), _dtype(val), -1, origin,
                                       target or f"input[{len(user_inputs)}]")
                self.env[node.name] = self.real_for(name)
                if origin == "input":
                    user_inputs.append(name)
            elif node.op == "call_function":
                self.env[node.name] = self.call(node)
            elif node.op == "output":
                outs, updates = self.split_outputs(node.args[0])
                outputs = tuple(self.output_of(self.env[o.name]) if isinstance(o, torch.fx.Node) else Const(o, "float32")
                                for o in outs)
                state = tuple((target, self.materialise(self.env[o.name]).layout) for target, o in updates)
        return Plan(self.buffers, tuple(user_inputs), self.finish(), outputs, tuple(dict.fromkeys(self.kept)),
                    tuple(self.notes), self.output_kind(), state)

    def split_outputs(self, outs: Any) -> tuple[list[Any], list[tuple[str, torch.fx.Node]]]:
        """The graph's outputs: forward's own, and (target, value) for each buffer forward leaves changed."""
        specs = self.program.graph_signature.output_specs
        user, updates = [], []
        for spec, value in zip(specs, outs):
            kind = spec.kind.name.lower()
            if kind == "user_output":
                user.append(value)
            elif kind == "buffer_mutation" and isinstance(value, torch.fx.Node):
                updates.append((spec.target, value))
            else:
                raise PlanningError(f"forward changes {spec.target or 'an input'} in place ({kind}): not supported")
        return user, updates

    def output_kind(self) -> Literal["single", "tuple", "list"]:
        spec = self.program.call_spec.out_spec
        if spec is None or spec.is_leaf():
            return "single"
        if spec.type in (tuple, list) and all(c.is_leaf() for c in spec.children()):
            return "tuple" if spec.type is tuple else "list"
        raise PlanningError(f"nested forward outputs ({spec.type.__name__} of containers) are not supported")

    def output_of(self, val: Any) -> Layout | Const:
        if isinstance(val, Scalar):
            return self.materialise(val).layout
        return self.materialise(val).layout

    def call(self, node: torch.fx.Node) -> Any:
        target = node.target
        if target is operator.getitem:
            item = self.env[_node_arg(node, 0).name].items[node.args[1]]
            self.pass_through(node, item)
            return item
        name = _target_name(target)
        args = tuple(self.resolve(a) for a in node.args)
        kwargs = {k: self.resolve(v) for k, v in node.kwargs.items()}
        val = node.meta.get("val")
        if name in IDENTITY:
            self.pass_through(node, args[0])
            return args[0]
        if name == "copy.default" and _same_meta(val, node.args[1]):  # dst.copy_(src), functionalised: src's value
            self.pass_through(node, args[1])
            return args[1]
        if name == "scalar_tensor.default":
            return Scalar(args[0], _dtype(val))
        if name.partition(".")[0] in VIEW_OPS and isinstance(args[0], (Real, Lazy)):
            return self.view(node, name, args, kwargs)
        if name == "_native_batch_norm_legit_no_training.default" and isinstance(val, (tuple, list)):
            x, weight, bias, mean, var, momentum, eps = args
            try:
                out = self.elementwise(node, "batch_norm.default", (x, weight, bias, mean, var, False, momentum, eps),
                                       {"ndim": len(val[0].shape)}, meta=val[0])
                return Tup((out, None, None))
            except NotImplementedError as exc:
                self.notes.append(f"{name}: {exc}; kept as ATen")
        elif name in LOWERINGS and isinstance(val, torch.Tensor):
            try:
                return self.elementwise(node, name, args, kwargs)
            except NotImplementedError as exc:
                self.notes.append(f"{name}: {exc}; kept as ATen")
        elif is_reduction(name) and isinstance(val, (torch.Tensor, tuple, list)) and self.fuse_reductions:
            try:
                return self.reduce(node, name, args, kwargs)
            except NotReducible as exc:
                self.notes.append(f"{name}: {exc}; kept as ATen")
        elif is_pool(name):
            try:
                return self.pool(node, name, args, kwargs)
            except NotPoolable as exc:
                self.notes.append(f"{name}: {exc}; kept as ATen")
        return self.host(node, name, args, kwargs)

    @staticmethod
    def pass_through(node: torch.fx.Node, val: Any) -> None:
        """A no-op node on a lazy value counts as part of its group (so prologue absorption sees through it)."""
        if isinstance(val, Lazy):
            val.group.fx_names.add(node.name)

    def resolve(self, a: Any) -> Any:
        if isinstance(a, torch.fx.Node):
            return self.env[a.name]
        if isinstance(a, (list, tuple)):
            return type(a)(self.resolve(x) for x in a)
        return a

    # ---------------------------------------------------------------- elementwise
    def elementwise(self, node: torch.fx.Node, name: str, args: tuple, kwargs: dict, meta: Any = None) -> Lazy:
        val = node.meta["val"] if meta is None else meta
        shape, dtype = tuple(val.shape), _dtype(val)
        vals = [v for v in _flatten((args, kwargs)) if isinstance(v, (Real, Lazy, Scalar))]
        g = self.pick_group(shape, vals)
        emitter = _Emitter(self, g, dtype)
        out = LOWERINGS[name](emitter, *args, **kwargs)
        g.fx_names.add(node.name)
        return Lazy(g, out, dtype)

    def pick_group(self, shape: tuple[int, ...], vals: list[Any]) -> Group:
        candidates = sorted({id(v.group): v.group for v in vals if isinstance(v, Lazy) and v.group.shape == shape
                             and not v.group.dead}.values(), key=lambda g: -g.index)
        for g in candidates:
            if all(self.ready_before(v, g.index) for v in vals):
                return g
        # Siblings: the latest elementwise group of this shape that already reads one of our inputs.
        buffers = {v.layout.buffer for v in vals if isinstance(v, Real)}
        for slot in reversed(self.slots):
            if (isinstance(slot, Group) and not slot.dead and slot.elementwise and slot.shape == shape
                    and any(isinstance(e, Load) and e.layout.buffer in buffers for e in slot.nodes)
                    and all(self.ready_before(v, slot.index) for v in vals)):
                return slot
        return self.new_group(shape)

    # ---------------------------------------------------------------- reductions
    def reduce(self, node: torch.fx.Node, name: str, args: tuple, kwargs: dict) -> Any:
        src = args[0]
        if not isinstance(src, (Real, Lazy)):
            raise NotReducible("reduction of a non-tensor")
        in_meta = _node_arg(node, 0).meta["val"]
        in_shape, in_dtype = tuple(in_meta.shape), _dtype(in_meta)
        if in_dtype not in ("float32", "float16", "bfloat16", "float64"):
            raise NotReducible(f"reduction over {in_dtype}")
        spec = reduction_spec(name, args, kwargs, in_shape, in_dtype)
        val = node.meta["val"]
        metas = list(val) if isinstance(val, (tuple, list)) else [val]
        out_shape = tuple(metas[0].shape)
        g, prologue = self.with_prologue(src, node.name, in_shape, out_shape, [v for _, v in spec.affine])
        g.reduction, g.prologue = spec, prologue
        g.fx_names.add(node.name)
        results = []
        for role, meta in zip(spec.results, metas):
            results.append(Lazy(g, g.add(Special(role, _dtype(meta))), _dtype(meta)))  # type: ignore[arg-type]
        if spec.results == ("z",):
            # A normalisation's affine runs in fp32 and rounds once, as eager's fused kernels do.
            out_dtype = _dtype(metas[0])
            wide = "float64" if out_dtype == "float64" else "float32"
            emitter = _Emitter(self, g, wide)
            z = g.add(Special("z", wide))
            for role, v in spec.affine:
                operand = emitter.channel(v, len(in_shape)) if role.startswith("channel") else emitter.v(v)
                z = emitter.op("mul" if role.endswith("weight") else "add", [z, operand])
            if out_dtype != wide:
                z = emitter.op("cast", [z], dtype=out_dtype)
            results[0] = Lazy(g, z, out_dtype)
        return Tup(tuple(results)) if isinstance(val, (tuple, list)) else results[0]

    def with_prologue(self, src: Any, consumer: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                      extra: list[Any]) -> tuple[Group, Dag]:
        """The group of a kernel that reads `src` through a prologue (over `in_shape`), and that prologue: the
        elementwise group computing `src` when it can be taken over, else a load of `src`."""
        absorbed = self.absorbable(src, consumer, extra)
        if absorbed is not None:
            absorbed.dead = True
            g = Group(absorbed.index, out_shape)
            self.slots[absorbed.index] = g
            return g, Dag(in_shape, tuple(absorbed.nodes[: src.node + 1]))
        g = self.new_group(out_shape)
        pro = Group(-1, in_shape)
        self.operand(pro, src)
        return g, Dag(in_shape, tuple(pro.nodes))

    # ---------------------------------------------------------------- pooling
    def pool(self, node: torch.fx.Node, name: str, args: tuple, kwargs: dict) -> Lazy:
        supported_pool(name, preview=self.preview)
        src, in_meta, val = args[0], _node_arg(node, 0).meta.get("val"), node.meta.get("val")
        if not isinstance(src, (Real, Lazy)) or not isinstance(in_meta, torch.Tensor) or not isinstance(val, torch.Tensor):
            raise NotPoolable("pooling that is not one tensor to one tensor")
        in_shape, out_shape, dtype = tuple(in_meta.shape), tuple(val.shape), _dtype(val)
        window = pool_window(name, args[1:], kwargs, in_shape, out_shape, _dtype(in_meta), preview=self.preview)
        g, prologue = self.with_prologue(src, node.name, in_shape, out_shape, [])
        g.pool, g.prologue = window, prologue
        g.fx_names.add(node.name)
        return Lazy(g, g.add(Special("value", dtype)), dtype)

    def depthwise(self, node: torch.fx.Node, name: str, args: tuple, kwargs: dict) -> Lazy:
        """A depthwise conv as a pool group (ir.PoolWindow "depthwise"): the elementwise chain computing its
        input becomes the prologue, its bias a per-channel add in the epilogue, where what follows joins it."""
        src, weight = args[0], args[1]
        bias = args[2] if len(args) > 2 else None
        in_meta, w_meta, val = _node_arg(node, 0).meta.get("val"), _node_arg(node, 1).meta.get("val"), node.meta.get("val")
        if not (isinstance(src, (Real, Lazy)) and isinstance(weight, (Real, Lazy)) and isinstance(in_meta, torch.Tensor)
                and isinstance(w_meta, torch.Tensor) and isinstance(val, torch.Tensor)):
            raise NotDepthwise("a conv that is not tensors to one tensor")
        if bias is not None and not isinstance(bias, (Real, Lazy)):
            raise NotDepthwise("a bias that is not a tensor")
        in_shape, out_shape, dtype = tuple(in_meta.shape), tuple(val.shape), _dtype(val)
        window = depthwise_window(name, args[3:], kwargs, in_shape, tuple(w_meta.shape), out_shape,
                                  (_dtype(in_meta), _dtype(w_meta), dtype))
        filters = self.materialise(weight).layout
        if not filters.is_identity_of(self.buffers[filters.buffer]):
            raise NotDepthwise("a weight that is a strided view")
        g, prologue = self.with_prologue(src, node.name, in_shape, out_shape, [weight] + ([bias] if bias is not None else []))
        g.pool, g.prologue, g.pool_weight = window, prologue, Layout(
            filters.buffer, (filters.shape[0], *filters.shape[2:]), (filters.strides[0], *filters.strides[2:]))
        g.fx_names.add(node.name)
        value = g.add(Special("value", dtype))
        if bias is None:
            return Lazy(g, value, dtype)
        emit = _Emitter(self, g, dtype)
        return Lazy(g, emit.op("add", [value, emit.channel(bias, len(out_shape))]), dtype)

    def absorbable(self, src: Any, consumer: str, extra: list[Any]) -> Group | None:
        """The elementwise group computing `src`, when a reduction or pool can take it over as its prologue."""
        if not isinstance(src, Lazy):
            return None
        g = src.group
        if not g.elementwise or g.dead or g.outputs or src.node != len(g.nodes) - 1:
            return None
        if any(u not in g.fx_names and u != consumer for n in g.fx_names for u in self.users.get(n, ())):
            return None
        if not all(self.ready_before(v, g.index) and not (isinstance(v, Lazy) and v.group is g) for v in extra):
            return None
        return g

    # ---------------------------------------------------------------- views and host calls
    def view(self, node: torch.fx.Node, name: str, args: tuple, kwargs: dict) -> Any:
        src = args[0]
        val = node.meta["val"]
        if isinstance(src, Lazy) and isinstance(val, torch.Tensor) and tuple(val.shape) == src.group.shape:
            self.pass_through(node, src)
            return src  # a view that changes nothing (e.g. view to the same shape)
        real = self.materialise(src)
        layouts = view_layouts(node.target, real.layout, self.buffers[real.layout.buffer], args[1:], kwargs)
        if layouts is None:  # not expressible as a view of this layout: copy to contiguous, then view
            g = self.new_group(real.layout.shape)
            copied = self.materialise(Lazy(g, self.operand(g, real), real.dtype))
            layouts = view_layouts(node.target, copied.layout, self.buffers[copied.layout.buffer], args[1:], kwargs)
            if layouts is None:
                return self.host(node, name, args, kwargs)
        if isinstance(layouts, list):
            return Tup(tuple(Real(layout, real.dtype) for layout in layouts))
        return Real(layouts, real.dtype)

    def host(self, node: torch.fx.Node, name: str, args: tuple, kwargs: dict) -> Any:
        if self.preview and grouped_conv(name, args, kwargs):
            try:
                return self.depthwise(node, name, args, kwargs)
            except NotDepthwise as exc:
                self.notes.append(f"{name}: {exc}; kept as the library call")
        if _conv_bias_to_fold(name, args, kwargs, node.meta.get("val")):
            return self.conv_then_bias(node, name, args, kwargs)
        if name in RECURRENT_OPS:
            try:
                return self.recurrent(node, name, args, kwargs)
            except NotRecurrent as exc:
                self.notes.append(f"{name}: {exc}; kept as the library call")
        conv = lambda v: self.materialise(v).layout if isinstance(v, (Real, Lazy)) else (  # noqa: E731
            self.materialise(v).layout if isinstance(v, Scalar) else v)
        host_args = map_args(conv, args)
        host_kwargs = tuple((k, map_args(conv, v)) for k, v in kwargs.items())
        index = len(self.slots)
        val = node.meta.get("val")
        metas = list(val) if isinstance(val, (tuple, list)) else [val]
        outs = tuple(self.new_buffer(tuple(m.shape), _dtype(m), index) if isinstance(m, torch.Tensor) else None
                     for m in metas)
        library = name.partition(".")[0] in LIBRARY_OPS
        if not library:
            self.kept.append(f"aten.{name}")
        self.slots.append(HostStep(f"{self.prefix}h{index}", f"aten.{name}", host_args, host_kwargs, outs, library))
        results = tuple(self.real_for(b) if b is not None else None for b in outs)
        return Tup(results) if isinstance(val, (tuple, list)) else results[0]

    def recurrent(self, node: torch.fx.Node, name: str, args: tuple, kwargs: dict) -> Tup:
        """The whole recurrent network as a RecurrentStep (see ir.RecurrentStep), where it is supported."""
        cell = name.partition(".")[0]
        val = node.meta.get("val")
        if kwargs or len(args) != 9 or not isinstance(val, (tuple, list)):
            raise NotRecurrent("an unexpected call form")
        x, hx, params, has_biases, layers, dropout, train, bidirectional, batch_first = args
        states = list(hx) if isinstance(hx, (list, tuple)) else [hx]
        metas = list(val)
        if not all(isinstance(v, (Real, Lazy)) for v in [x, *states, *params]):
            raise NotRecurrent("a non-tensor operand")
        if any(_dtype(m) != "float32" for m in metas) or metas[0].dim() != 3:
            raise NotRecurrent("only batched float32 sequences have a kernel")
        if not has_biases:
            raise NotRecurrent("a recurrent layer without biases")
        if train and dropout:
            raise NotRecurrent("dropout between layers")
        if len({tuple(m.shape) for m in metas[1:]}) != 1 or len(params) != 4 * layers * (2 if bidirectional else 1):
            raise NotRecurrent("an LSTM with projections (proj_size)")
        batch, hidden = metas[1].shape[1], metas[1].shape[2]
        gates = 4 if cell == "lstm" else 3 if cell == "gru" else 1
        if (batch * hidden + gates * hidden) * 4 > RECURRENT_SMEM_BYTES:
            raise NotRecurrent(f"batch x hidden = {batch} x {hidden} does not fit one block's shared memory")
        lay = lambda v: self.materialise(v).layout  # noqa: E731
        index = len(self.slots)
        outs = tuple(self.new_buffer(tuple(m.shape), "float32", index) for m in metas)
        self.slots.append(RecurrentStep(f"{self.prefix}r{index}", cell, lay(x), tuple(lay(s) for s in states),  # type: ignore[arg-type]
                                        tuple(lay(p) for p in params), int(layers), bool(bidirectional),
                                        bool(batch_first), outs))
        return Tup(tuple(self.real_for(b) for b in outs))

    def conv_then_bias(self, node: torch.fx.Node, name: str, args: tuple, kwargs: dict) -> Lazy:
        """The library conv without its bias, and the bias as a lazy per-channel add. ATen adds a conv's bias
        in a kernel of its own (a full pass over the output); lazily, it joins whatever elementwise chain,
        reduction prologue or pool window follows, at no extra pass."""
        val = node.meta["val"]
        out = self.host(node, name, args[:2] + (None,) + args[3:], kwargs)
        g = self.new_group(tuple(val.shape))
        emit = _Emitter(self, g, _dtype(val))
        added = emit.op("add", [emit.v(out), emit.channel(args[2], len(val.shape))])
        g.fx_names.add(node.name)
        return Lazy(g, added, _dtype(val))

    # ---------------------------------------------------------------- finishing
    def finish(self) -> tuple:
        steps: list = []
        for slot in self.slots:
            if isinstance(slot, (HostStep, RecurrentStep)):
                steps.append(slot)
                continue
            if slot.dead or not slot.outputs:
                continue
            nodes, remap = _prune(slot.nodes, sorted(slot.outputs))
            outputs = tuple(StepOutput(remap[n], b) for n, b in sorted(slot.outputs.items()))
            dag = Dag(slot.shape, nodes)
            if slot.elementwise:
                steps.append(ElementwiseStep(f"{self.prefix}k{slot.index}", dag, outputs))
                continue
            if slot.prologue is None:  # reduce() and pool() always give their group one
                raise AssertionError(f"group {slot.index} reduces or pools without a prologue")
            pro_nodes = _prune(list(slot.prologue.nodes), [len(slot.prologue.nodes) - 1])[0]
            prologue = Dag(slot.prologue.shape, pro_nodes)
            if slot.pool is not None:
                steps.append(PoolStep(f"{self.prefix}k{slot.index}", slot.pool, prologue, dag, outputs, slot.pool_weight))
            elif slot.reduction is not None:
                r = slot.reduction
                steps.append(ReductionStep(f"{self.prefix}k{slot.index}", r.kind, r.outer, r.reduce, r.inner,
                                           prologue, dag, outputs, r.attrs))
        return tuple(steps)


_CONV_OPS = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def _conv_bias_to_fold(name: str, args: tuple, kwargs: dict, val: Any) -> bool:
    """A batched float conv with a bias vector (args[2]), whose output's dim 1 is the channel dim."""
    if name.partition(".")[0] not in _CONV_OPS or kwargs or len(args) < 3 or not isinstance(args[2], (Real, Lazy)):
        return False
    weight = args[1]
    if not isinstance(val, torch.Tensor) or not isinstance(weight, (Real, Lazy)) or not val.is_floating_point():
        return False
    weight_ndim = len(weight.layout.shape) if isinstance(weight, Real) else len(weight.group.shape)
    return val.dim() == weight_ndim  # batched: (N, C, *spatial); unbatched input puts channels first


class _Emitter:
    """Adds a lowering's nodes to one group."""

    def __init__(self, planner: Planner, group: Group, out_dtype: str):
        self.planner, self.group, self.out_dtype = planner, group, out_dtype

    def v(self, value: Any) -> int:
        return self.planner.operand(self.group, value)

    def const(self, value: float | int | bool, dtype: str | None = None) -> int:
        return self.group.add(Const(value, dtype or self.out_dtype))

    def op(self, name: str, args: list[int], dtype: str | None = None, **attrs: Any) -> int:
        if name not in PRIMITIVES:
            raise NotImplementedError(f"no primitive {name}")
        if dtype is None:
            dtype = "bool" if name in ("eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not",
                                       "isnan", "isinf") else self.out_dtype
        return self.group.add(Op(name, tuple(args), dtype, tuple(sorted(attrs.items()))))

    def channel(self, value: Any, ndim: int) -> int:
        """A (C,) vector broadcast along dim 1 of an ndim tensor."""
        real = self.planner.materialise(value)
        lay = real.layout
        if len(lay.shape) != 1:
            raise NotImplementedError("per-channel operand is not a vector")
        shaped = Layout(lay.buffer, (lay.shape[0],) + (1,) * max(ndim - 2, 0), (lay.strides[0],) + (0,) * max(ndim - 2, 0),
                        lay.offset)
        return self.group.add(Load(expand_layout(shaped, self.group.shape), real.dtype))


def _prune(nodes: list[Expr] | tuple[Expr, ...], roots: list[int]) -> tuple[tuple[Expr, ...], dict[int, int]]:
    """Keep the nodes the roots need, renumbered in order."""
    need: set[int] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n in need:
            continue
        need.add(n)
        expr = nodes[n]
        if isinstance(expr, Op):
            stack.extend(expr.args)
    remap = {old: new for new, old in enumerate(sorted(need))}
    out = []
    for old in sorted(need):
        expr = nodes[old]
        if isinstance(expr, Op):
            expr = Op(expr.op, tuple(remap[a] for a in expr.args), expr.dtype, expr.attrs)
        out.append(expr)
    return tuple(out), remap


def _same_meta(val: Any, src: Any) -> bool:
    meta = src.meta.get("val") if isinstance(src, torch.fx.Node) else None
    return (isinstance(val, torch.Tensor) and isinstance(meta, torch.Tensor) and val.shape == meta.shape
            and val.dtype == meta.dtype)


def _flatten(x: Any) -> list[Any]:
    if isinstance(x, dict):
        return [y for v in x.values() for y in _flatten(v)]
    if isinstance(x, (list, tuple)):
        return [y for v in x for y in _flatten(v)]
    return [x]


def build_plan(program: Any, *, fuse_reductions: bool = True, prefix: str = "",
               attributes: frozenset[str] = frozenset(), preview: bool = RunSettings.offline_preview) -> Plan:
    """`attributes`: buffers of the program that are plain tensor attributes of the problem's Model (state
    forward reassigns, registered as buffers only to trace it). `preview` (RunSettings.offline_preview): kernel
    families not yet verified on a GPU (3-D pools, depthwise convs) are planned; off, they stay ATen calls."""
    return Planner(program, fuse_reductions=fuse_reductions, prefix=prefix, attributes=attributes,
                   preview=preview).run()


def _node_arg(node: torch.fx.Node, index: int) -> torch.fx.Node:
    # fx types args as any Argument; getitem, reductions and pools take a traced tensor (a Node) first
    return cast(torch.fx.Node, node.args[index])
