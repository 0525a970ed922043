"""The offline translator's plan: realised buffers, strided views of them, and steps.

A plan is what the traced op graph becomes before any CUDA is written. Every
tensor that lives in memory is a *buffer* (contiguous, one dtype); every value a
kernel reads is a `Layout` over a buffer (shape, strides, offset), so views,
permutes and broadcasting are all the same thing: strides (0 for a broadcast
dim). Steps run in order: a fused elementwise kernel, a reduction kernel (with
an elementwise prologue feeding it and an epilogue after it), a pooling kernel
(windows over the last two or three dims, likewise with a prologue and an epilogue;
a depthwise convolution is one too), or a
host call (a library GEMM/conv, or an op kept as ATen).

Codegen (CUDA) and the interpreter (torch, CPU) both walk this same structure,
so the interpreter's agreement with the problem's Model validates the
decomposition, broadcasting, dims and op order that the CUDA is written from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from math import prod
from typing import Any, Literal

FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True, slots=True)
class Buffer:
    name: str
    shape: tuple[int, ...]
    dtype: str  # torch dtype name without the prefix: float32, int64, bool, ...
    # attribute: a plain tensor attribute of the Model that forward reassigns (state kept across calls)
    origin: Literal["input", "parameter", "buffer", "attribute", "constant", "step"]
    target: str = ""  # the module attribute (conv.weight) or the input position (input[0])

    @property
    def numel(self) -> int:
        return prod(self.shape)


@dataclass(frozen=True, slots=True)
class Layout:
    """A strided view of a buffer: element (i0, i1, ...) lives at offset + sum(i_d * strides[d])."""

    buffer: str
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int = 0

    @property
    def numel(self) -> int:
        return prod(self.shape)

    def is_contiguous(self) -> bool:
        return self.strides == contiguous_strides(self.shape) or self.numel <= 1

    def is_identity_of(self, buf: Buffer) -> bool:
        return self.offset == 0 and self.shape == buf.shape and self.is_contiguous()


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    out, acc = [], 1
    for size in reversed(shape):
        out.append(acc)
        acc *= size
    return tuple(reversed(out))


def expand_layout(layout: Layout, shape: tuple[int, ...]) -> Layout:
    """Broadcast a layout to `shape` (numpy rules): new leading dims and size-1 dims get stride 0."""
    lead = len(shape) - len(layout.shape)
    if lead < 0:
        raise ValueError(f"cannot broadcast {layout.shape} to {shape}")
    strides = []
    for d, size in enumerate(shape):
        if d < lead:
            strides.append(0)
            continue
        own = layout.shape[d - lead]
        if own == size:
            strides.append(layout.strides[d - lead] if size != 1 else 0)
        elif own == 1:
            strides.append(0)
        else:
            raise ValueError(f"cannot broadcast {layout.shape} to {shape}")
    return Layout(layout.buffer, tuple(shape), tuple(strides), layout.offset)


# ---------------------------------------------------------------- expressions (one DAG per kernel)

@dataclass(frozen=True, slots=True)
class Load:
    """Read a buffer through a layout whose shape is the DAG's iteration shape."""

    layout: Layout
    dtype: str


@dataclass(frozen=True, slots=True)
class Const:
    value: float | int | bool
    dtype: str


@dataclass(frozen=True, slots=True)
class Special:
    """A value the enclosing reduction supplies: 'value' (the reduced value), 'index' (arg index),
    or 'z' (a normalisation's output before its epilogue)."""

    name: Literal["value", "index", "z"]
    dtype: str


@dataclass(frozen=True, slots=True)
class Op:
    op: str  # a primitive of ops.PRIMITIVES
    args: tuple[int, ...]  # indices of earlier nodes of the same DAG
    dtype: str  # the result's dtype
    attrs: tuple[tuple[str, Any], ...] = ()

    def attr(self, name: str, default: Any = None) -> Any:
        return dict(self.attrs).get(name, default)


Expr = Load | Const | Special | Op


@dataclass(frozen=True, slots=True)
class Dag:
    shape: tuple[int, ...]  # the iteration shape every node is evaluated over
    nodes: tuple[Expr, ...]

    @property
    def numel(self) -> int:
        return prod(self.shape)


@dataclass(frozen=True, slots=True)
class StepOutput:
    node: int  # the DAG node whose value is stored
    buffer: str


# ---------------------------------------------------------------- steps

@dataclass(frozen=True, slots=True)
class ElementwiseStep:
    name: str
    dag: Dag
    outputs: tuple[StepOutput, ...]
    kind: Literal["elementwise"] = "elementwise"
    # Its iteration shape is its outputs' (N, C, *spatial) in channels-last order (conv_layout.follow_channels_last):
    # each output holds its buffer's channels-last storage.
    writes_channels_last: bool = False


ReductionKind = Literal["sum", "mean", "max", "min", "argmax", "argmin", "max_with_index", "min_with_index",
                        "prod", "var", "std", "logsumexp", "norm", "softmax", "log_softmax", "layer_norm", "rms_norm",
                        "cumsum", "cumprod"]
SCANS = ("cumsum", "cumprod")  # inclusive prefix sums and products along the reduced dim
NORMALISATIONS = ("softmax", "log_softmax", "layer_norm", "rms_norm", *SCANS)  # one output per input element


@dataclass(frozen=True, slots=True)
class ReductionStep:
    """Reduce the prologue's value over the middle of [outer, reduce, inner] (the logical input's linear index
    is (o * reduce + r) * inner + i). Normalisations write a value per input element; the others one per (o, i)."""

    name: str
    reduction: ReductionKind
    outer: int
    reduce: int
    inner: int
    prologue: Dag  # over the logical input shape; its last node is the reduced value
    epilogue: Dag  # over the output shape; Special nodes stand for the reduction's results
    outputs: tuple[StepOutput, ...]
    attrs: tuple[tuple[str, Any], ...] = ()  # eps, correction, ord
    kind: Literal["reduction"] = "reduction"
    # It iterates its (N, C, *spatial) shape in channels-last order and writes at that order's index
    # (storage_order.reduction_channels_last_order: a normalisation, or a reduction keeping its reduced dims):
    # each output holds its buffer's channels-last storage, as ElementwiseStep.writes_channels_last.
    writes_channels_last: bool = False

    def attr(self, name: str, default: Any = None) -> Any:
        return dict(self.attrs).get(name, default)

    @property
    def is_normalisation(self) -> bool:
        return self.reduction in NORMALISATIONS


PoolKind = Literal["avg", "max", "depthwise"]


@dataclass(frozen=True, slots=True)
class PoolWindow:
    """The geometry of a pool over [planes, H, W] or [planes, D, H, W] (a 1-D pool is H = 1, kernel_h = 1; the
    size tuples have 2 entries, or 3 for a 3-D pool): output (oh, ow) combines input rows
    oh * stride_h - pad_h + i * dilation_h for i < kernel_h (columns and depth likewise); positions outside the
    input are skipped (max, depthwise) or count as zeros (avg, through the divisor, as ATen computes it).
    A depthwise convolution is a "depthwise" pool whose window sums the input times a per-channel weight tap
    (PoolStep.weight); with a channel multiplier m, output plane p reads input plane p // m."""

    pool: PoolKind
    planes: int  # of the input (the output has planes * multiplier)
    in_size: tuple[int, ...]
    out_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...] = (1, 1)
    count_include_pad: bool = True
    divisor_override: int | None = None
    spatial_dims: int = 2  # trailing dims of the logical input that are pooled (1 for a 1-D pool)
    multiplier: int = 1  # depthwise: output channels per input channel

    @property
    def axes(self) -> range:
        return range(len(self.in_size))

    def inside(self, axis: int) -> bool:
        """Every window stays inside the input along `axis` (an index into the size tuples; -1: W, -2: H, -3: D):
        no bounds checks needed."""
        last = (self.out_size[axis] - 1) * self.stride[axis] + (self.kernel[axis] - 1) * self.dilation[axis]
        return self.padding[axis] == 0 and last < self.in_size[axis]

    def static_divisor(self) -> int | None:
        """The avg divisor when it is the same for every output, else None (computed per output)."""
        if self.divisor_override:
            return self.divisor_override
        if all(self.inside(a) for a in self.axes):
            return prod(self.kernel)
        padded = all((self.out_size[a] - 1) * self.stride[a] + self.kernel[a] <= self.in_size[a] + 2 * self.padding[a]
                     for a in self.axes)
        return prod(self.kernel) if self.count_include_pad and padded else None

    def axis_counts(self, axis: int) -> list[tuple[int, int]]:
        """Per output position along `axis`: (window size clipped to the padded input, size clipped to the
        input). ATen's avg divisor is the product over the axes of the first (count_include_pad) or second."""
        size, k, s, pad = self.in_size[axis], self.kernel[axis], self.stride[axis], self.padding[axis]
        out = []
        for o in range(self.out_size[axis]):
            start = o * s - pad
            end = min(start + k, size + pad)
            out.append((end - start, min(end, size) - max(start, 0)))
        return out


@dataclass(frozen=True, slots=True)
class PoolStep:
    """Pool the prologue's value (over the logical input shape, [planes, H, W] in memory order) per window;
    the epilogue runs once per output with Special 'value' standing for the pooled value. A depthwise step
    also reads `weight`, contiguous [planes * multiplier / batch, *kernel] (one filter per output channel)."""

    name: str
    window: PoolWindow
    prologue: Dag  # over the logical input shape; its last node is the pooled value
    epilogue: Dag  # over the output shape
    outputs: tuple[StepOutput, ...]
    weight: Layout | None = None
    kind: Literal["pool"] = "pool"
    # One thread per output in (N, *spatial, C) order over an (N, C, *spatial) input, its epilogue permuted alike
    # (storage_order.pool_channels_last_order): each output holds its buffer's channels-last storage.
    writes_channels_last: bool = False


def map_loads(dag: Dag, fn: Callable[[Layout], Layout], shape: tuple[int, ...] | None = None) -> Dag:
    """`dag` with every load's layout through `fn` (and its iteration shape `shape`, where given)."""
    return Dag(dag.shape if shape is None else shape,
               tuple(replace(e, layout=fn(e.layout)) if isinstance(e, Load) else e for e in dag.nodes))


def map_args(fn: Any, value: Any) -> Any:
    """`value` (a host argument: a literal, a Layout, or lists/tuples of those) with `fn` applied to each leaf,
    its lists and tuples kept as they are."""
    if isinstance(value, (list, tuple)):
        return type(value)(map_args(fn, v) for v in value)
    return fn(value)


@dataclass(frozen=True, slots=True)
class HostStep:
    """A host-side ATen call: a library op (cuBLAS/cuDNN GEMM or conv) or an op kept as ATen."""

    name: str
    target: str  # aten.conv2d.default
    args: tuple[Any, ...]  # literals, Layout (a tensor argument), lists/tuples of those
    kwargs: tuple[tuple[str, Any], ...]
    outputs: tuple[str | None, ...]  # buffers for tensor outputs, in the op's output order (None: not a tensor)
    library: bool
    kind: Literal["host"] = "host"
    # A convolution whose output stays channels-last (conv_layout.kept_plan): later reads go through layouts
    # re-expressed over that storage.
    keeps_channels_last: bool = False


RecurrentCell = Literal["lstm", "gru", "rnn_tanh", "rnn_relu"]
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


@dataclass(frozen=True, slots=True)
class RecurrentStep:
    """A whole multi-layer recurrent network (aten.lstm/gru/rnn_*.input, batched, float32, with biases, no
    projection, no dropout). Per layer: one library GEMM projects the whole sequence's input onto the gates
    (x W_ih^T + b_ih), then one persistent kernel runs every time step of every direction (h W_hh^T, the
    cell, h and c kept on chip between steps) with a grid-wide barrier between steps."""

    name: str
    cell: RecurrentCell
    input: Layout  # [seq, batch, features], or [batch, seq, features] when batch_first
    hx: tuple[Layout, ...]  # [layers * directions, batch, hidden]: (h0,) or, for an LSTM, (h0, c0)
    params: tuple[Layout, ...]  # per layer and direction: w_ih [G*hidden, in], w_hh [G*hidden, hidden], b_ih, b_hh
    layers: int
    bidirectional: bool
    batch_first: bool
    outputs: tuple[str, ...]  # output [.., .., directions * hidden], h_n (and c_n), as the ATen op returns them
    kind: Literal["recurrent"] = "recurrent"

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def seq(self) -> int:
        return self.input.shape[1 if self.batch_first else 0]

    @property
    def batch(self) -> int:
        return self.input.shape[0 if self.batch_first else 1]

    @property
    def hidden(self) -> int:
        return self.hx[0].shape[-1]

    @property
    def gates(self) -> int:
        return GATES[self.cell]


GemmTriangle = Literal["upper", "lower"]


@dataclass(frozen=True, slots=True)
class GemmStep:
    """out[p] = a[p] @ b[p] on the candidate's own GEMM kernel, for p < batch: `a` is a (batch, M, K) view,
    `b` a (batch, K, N) view (a batch stride of 0: one matrix shared by every product), and the single output a
    contiguous buffer holding (batch, M, N). `triangle` keeps only the upper (col - row >= diagonal) or lower
    (col - row <= diagonal) part of each product and zeros the rest, as torch.triu / torch.tril do."""

    name: str
    a: Layout
    b: Layout
    outputs: tuple[StepOutput, ...]
    triangle: GemmTriangle | None = None
    diagonal: int = 0
    kind: Literal["gemm"] = "gemm"

    @property
    def batch(self) -> int:
        return self.a.shape[0]

    @property
    def mnk(self) -> tuple[int, int, int]:
        return self.a.shape[1], self.b.shape[2], self.a.shape[2]


@dataclass(frozen=True, slots=True)
class ConvStep:
    """A 1-, 2- or 3-D convolution on the candidate's own implicit-GEMM kernel, with its bias: `input` is
    (N, C, *spatial) and the single output (N, K, *out_spatial), both contiguous. Forward: `weight` is
    (K, C / groups, *kernel); transposed (conv_transposeNd): (C, K / groups, *kernel), and output_padding widens
    the output."""

    name: str
    input: Layout
    weight: Layout
    bias: Layout | None
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    output_padding: tuple[int, ...]
    transposed: bool
    outputs: tuple[StepOutput, ...]
    groups: int = 1
    kind: Literal["conv"] = "conv"

    @property
    def dims(self) -> int:
        return len(self.stride)


Step = ElementwiseStep | ReductionStep | PoolStep | HostStep | RecurrentStep | GemmStep | ConvStep


@dataclass(frozen=True, slots=True)
class Plan:
    buffers: dict[str, Buffer]
    user_inputs: tuple[str | None, ...]  # buffer per forward argument (None: a non-tensor argument)
    steps: tuple[Step, ...]
    outputs: tuple[Layout | Const, ...]
    kept_aten_ops: tuple[str, ...] = ()  # non-library ATen ops the candidate still calls
    notes: tuple[str, ...] = field(default_factory=tuple)
    output_kind: Literal["single", "tuple", "list"] = "single"  # how forward returns its outputs
    # Model state forward leaves behind: (buffer or attribute target, its new value), written back after the
    # outputs are computed; such state is read afresh on every call.
    state_updates: tuple[tuple[str, Layout], ...] = ()
    # The run's precision profile admits plain TF32 for fp32 GEMMs and convolutions (PrecisionProfile.allows_tf32,
    # passed down by plans_for): a further GEMM mode for the tuner (gemm_split).
    allow_tf32: bool = False
    # A CUDA graph may replay the forward (RunSettings.offline_graphs and graph_launch.graph_offered, set by
    # plans_for): the tunable launch.GRAPH.
    graph_launch: bool = False
    # A convolution's output may stay channels-last (RunSettings.offline_channels_last_kept, set by plans_for):
    # the LAYOUT tunable's choice conv_layout.CHANNELS_LAST_KEPT.
    channels_last_kept: bool = False

    def mutated(self, buf: Buffer) -> bool:
        return buf.origin in ("buffer", "attribute") and any(t == buf.target for t, _ in self.state_updates)

    @property
    def custom_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.kind != "host")

    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for s in self.steps:
            key = s.kind if s.kind != "host" else ("library" if s.library else "aten")
            kinds[key] = kinds.get(key, 0) + 1
        return {"steps": kinds, "kept_aten_ops": list(self.kept_aten_ops), "notes": list(self.notes)}


def describe(plan: Plan) -> str:
    """A readable listing of the plan (for notes, logs and debugging)."""
    lines = []
    for name, buf in plan.buffers.items():
        if buf.origin != "step":
            lines.append(f"{name}: {buf.origin} {buf.target} {buf.dtype}{list(buf.shape)}")
    for step in plan.steps:
        if isinstance(step, HostStep):
            lines.append(f"{step.name}: {'library' if step.library else 'aten'} {step.target} -> {list(step.outputs)}")
            continue
        if isinstance(step, RecurrentStep):
            lines.append(f"{step.name}: {step.cell} layers={step.layers} directions={step.directions} seq={step.seq} "
                         f"batch={step.batch} hidden={step.hidden} batch_first={step.batch_first} -> {list(step.outputs)}")
            continue
        if isinstance(step, GemmStep):
            m, n, k = step.mnk
            tri = f" {step.triangle}(diagonal={step.diagonal})" if step.triangle else ""
            lines.append(f"{step.name}: gemm batch={step.batch} m={m} n={n} k={k}{tri}")
            lines.extend(f"    {role} {lay.buffer} strides={list(lay.strides)} off={lay.offset}"
                         for role, lay in (("a", step.a), ("b", step.b)))
            lines.append("    -> " + ", ".join(o.buffer for o in step.outputs))
            continue
        if isinstance(step, ConvStep):
            lines.append(f"{step.name}: conv{step.dims}d{' transposed' if step.transposed else ''} "
                         f"{step.input.buffer}{list(step.input.shape)} * {step.weight.buffer}{list(step.weight.shape)}"
                         f"{' + ' + step.bias.buffer if step.bias else ''} stride={list(step.stride)} "
                         f"padding={list(step.padding)} dilation={list(step.dilation)}"
                         + (f" output_padding={list(step.output_padding)}" if step.transposed else "")
                         + (f" groups={step.groups}" if step.groups != 1 else "")
                         + f" -> {step.outputs[0].buffer}")
            continue
        if isinstance(step, ReductionStep):
            lines.append(f"{step.name}: {step.reduction}[{step.outer}, {step.reduce}, {step.inner}] {dict(step.attrs)}")
            lines.extend("    pro " + _expr(i, e) for i, e in enumerate(step.prologue.nodes))
            dag = step.epilogue
        elif isinstance(step, PoolStep):
            w = step.window
            lines.append(f"{step.name}: {w.pool}_pool [{w.planes}, {', '.join(map(str, w.in_size))}] -> {list(w.out_size)} "
                         f"kernel={list(w.kernel)} stride={list(w.stride)} padding={list(w.padding)} "
                         f"dilation={list(w.dilation)} count_include_pad={w.count_include_pad}"
                         + (f" divisor={w.divisor_override}" if w.divisor_override else "")
                         + (f" weight={step.weight.buffer} multiplier={w.multiplier}" if step.weight else ""))
            lines.extend("    pro " + _expr(i, e) for i, e in enumerate(step.prologue.nodes))
            dag = step.epilogue
        else:
            lines.append(f"{step.name}: elementwise {list(step.dag.shape)}")
            dag = step.dag
        lines.extend("    " + _expr(i, e) for i, e in enumerate(dag.nodes))
        lines.append("    -> " + ", ".join(f"%{o.node}:{o.buffer}" for o in step.outputs))
    lines.append("outputs: " + ", ".join(o.buffer if isinstance(o, Layout) else repr(o.value) for o in plan.outputs))
    return "\n".join(lines)


def _expr(i: int, e: Expr) -> str:
    if isinstance(e, Load):
        return f"%{i} = load {e.layout.buffer} strides={list(e.layout.strides)} off={e.layout.offset} {e.dtype}"
    if isinstance(e, Const):
        return f"%{i} = const {e.value!r}"
    if isinstance(e, Special):
        return f"%{i} = {e.name} {e.dtype}"
    attrs = f" {dict(e.attrs)}" if e.attrs else ""
    return f"%{i} = {e.op}({', '.join(f'%{a}' for a in e.args)}){attrs} {e.dtype}"
