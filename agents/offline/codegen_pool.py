"""CUDA for a pooling step over [planes, H, W] or [planes, D, H, W] (3-D pools), and depthwise convolutions.

One thread per output, OPT outputs a thread spaced BLOCK apart, so a warp's loads and stores walk the output
width together (coalesced). The window loops have static bounds and are unrolled for small kernels; bounds
checks are emitted only along an axis where some window leaves the input (padding, ceil_mode), and the avg
divisor is a constant unless the windows are clipped. The prologue runs on every element a window reads, in
registers, so the pre-pool tensor never reaches memory; its nodes that are the same over a whole plane
(per-channel batch-norm statistics and the arithmetic on them) run once per output, outside the window loop.
Max propagates NaN and sums accumulate in fp32 (fp64 for double), as ATen's kernels do.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod
from typing import Any

from kernelwright.agents.offline.codegen_elementwise import StepKernel, _indent
from kernelwright.agents.offline.cuda_common import (
    emit_dag,
    index_expr,
    index_type,
    launcher_signature,
    params_for,
    struct_text,
)
from kernelwright.agents.offline.ir import Buffer, Const, Dag, Load, Op, PoolStep, Special
from kernelwright.agents.offline.ops import STORAGE_CTYPE

POOL_DEFAULTS = {"BLOCK": 256, "OPT": 1}
UNROLL_ELEMENTS = 64  # windows up to this many elements are unrolled completely


def plane_invariant(dag: Dag, spatial_dims: int) -> set[int]:
    """Prologue nodes whose value is the same at every position of a plane: no load under them moves along
    the pooled dims."""
    out: set[int] = set()
    for i, e in enumerate(dag.nodes):
        if isinstance(e, Const):
            out.add(i)
        elif isinstance(e, Load):
            spatial = zip(e.layout.strides[-spatial_dims:], e.layout.shape[-spatial_dims:])
            if all(stride == 0 or size == 1 for stride, size in spatial):
                out.add(i)
        elif isinstance(e, Op) and all(a in out for a in e.args):
            out.add(i)
    return out


def _window_loops(step: PoolStep, it: str, at: str, inner: list[str], value: str) -> list[str]:
    """The unrolled window walk: bounds checks where needed, the prologue per element, the accumulation (a
    depthwise window multiplies each element by its weight tap)."""
    w = step.window
    (H, W), (KH, KW), (DH, DW) = w.in_size[-2:], w.kernel[-2:], w.dilation[-2:]
    deep = len(w.in_size) == 3
    check_d, check_h, check_w = deep and not w.inside(-3), not w.inside(-2), not w.inside(-1)
    if w.pool == "avg":
        push = f"acc += ({at}){value};"
    elif w.pool == "max":
        push = f"{{ const {at} v = ({at}){value}; if (v > acc || v != v) acc = v; }}"  # NaN wins, as in ATen
    else:
        if step.weight is None:
            raise ValueError(f"{step.name}: a depthwise window without its weight")
        tap = f"(c * {KH} + i) * {KW} + j" if deep else f"i * {KW} + j"
        push = f"acc += ({at}){value} * ({at})kw_cvt(p.{step.weight.buffer}[wb + {tap}]);"
    conds = (["row_in"] if check_h or check_d else []) + ([f"(unsigned)(iw0 + j * {DW}) < {W}u"] if check_w else [])
    depth_term = f"c * {w.dilation[0] * H * W} + " if deep else ""
    body = [f"const {it} l = lb + ({it})({depth_term}i * {DH * W} + j * {DW});", *inner, push]
    if conds:
        body = [f"if ({' && '.join(conds)}) {{", *["    " + b for b in body], "}"]
    full = prod(w.kernel) <= UNROLL_ELEMENTS
    lines = ["#pragma unroll" if full else "#pragma unroll 1", f"for (int i = 0; i < {KH}; ++i) {{"]
    if check_h or check_d:
        row = ([f"(unsigned)(ih0 + i * {DH}) < {H}u"] if check_h else []) + (["depth_in"] if check_d else [])
        lines.append(f"    const bool row_in = {' && '.join(row)};")
    lines += ["    #pragma unroll" if full or KW <= 16 else "    #pragma unroll 4", f"    for (int j = 0; j < {KW}; ++j) {{",
              *["        " + b for b in body], "    }", "}"]
    if not deep:
        return lines
    depth = [f"const bool depth_in = (unsigned)(id0 + c * {w.dilation[0]}) < {w.in_size[0]}u;"] if check_d else []
    return ["#pragma unroll" if full else "#pragma unroll 1", f"for (int c = 0; c < {w.kernel[0]}; ++c) {{",
            *["    " + b for b in depth + lines], "}"]


def _divide(step: PoolStep, at: str) -> list[str]:
    """`pooled` from `acc`: max and depthwise as is; avg over ATen's divisor (clipped windows get theirs per
    output)."""
    w = step.window
    if w.pool != "avg":
        return [f"const {at} pooled = acc;"]
    fixed = w.static_divisor()
    if fixed is not None:
        return [f"const {at} pooled = acc / ({at}){fixed};"]
    if len(w.in_size) == 3:
        names = ("d", "h", "w")
        ends = ", ".join(f"{n}e = min(i{n}0 + {k}, {size + pad})"
                         for n, k, size, pad in zip(names, w.kernel, w.in_size, w.padding))
        if w.count_include_pad:
            spans = [f"({n}e - i{n}0)" for n in names]
        else:
            spans = [f"(min({n}e, {size}) - max(i{n}0, 0))" for n, size in zip(names, w.in_size)]
        return [f"const int {ends};", f"const int divisor = {' * '.join(spans)};",
                f"const {at} pooled = acc / ({at})divisor;"]
    (H, W), (KH, KW), (PH, PW) = w.in_size, w.kernel, w.padding
    lines = [f"const int he = min(ih0 + {KH}, {H + PH}), we = min(iw0 + {KW}, {W + PW});"]
    if w.count_include_pad:
        lines.append("const int divisor = (he - ih0) * (we - iw0);")
    else:
        lines.append(f"const int divisor = (min(he, {H}) - max(ih0, 0)) * (min(we, {W}) - max(iw0, 0));")
    return lines + [f"const {at} pooled = acc / ({at})divisor;"]


def _output_position(step: PoolStep, it: str) -> list[str]:
    """From the output index q: the window's first input position along each axis, `l0` (the start of the
    input plane the window reads) and, for a depthwise window, `wb` (the start of the output channel's filter).
    q walks (planes, *spatial), or (N, *spatial, C) for a step that writes channels-last."""
    w = step.window
    (OH, OW), (SH, SW), (PH, PW) = w.out_size[-2:], w.stride[-2:], w.padding[-2:]
    lines, at, plane = [], "q", "plane"
    if step.writes_channels_last:  # q walks (N, *spatial, C): the channel first, then the position in its plane
        C = step.prologue.shape[1]
        lines, at, plane = [f"const {it} c = q % {C}, qs = q / {C};"], "qs", "n"
    if len(w.in_size) == 2:
        lines += [f"const {it} ow = {at} % {OW}, r = {at} / {OW}, oh = r % {OH}, {plane} = r / {OH};",
                  f"const int ih0 = (int)oh * {SH} - {PH}, iw0 = (int)ow * {SW} - {PW};"]
    else:
        OD, SD, PD = w.out_size[0], w.stride[0], w.padding[0]
        lines += [f"const {it} ow = {at} % {OW}, r = {at} / {OW}, oh = r % {OH}, rd = r / {OH}, od = rd % {OD}, "
                  f"{plane} = rd / {OD};",
                  f"const int id0 = (int)od * {SD} - {PD}, ih0 = (int)oh * {SH} - {PH}, iw0 = (int)ow * {SW} - {PW};"]
    if step.writes_channels_last:
        lines.append(f"const {it} plane = n * ({it}){step.prologue.shape[1]} + c;")
    source_plane = "plane" if w.multiplier == 1 else f"(plane / ({it}){w.multiplier})"
    lines.append(f"const {it} l0 = {source_plane} * ({it}){prod(w.in_size)};")
    if step.weight is not None:
        filters = step.weight.shape[0]
        channel = "plane" if w.planes * w.multiplier == filters else f"(plane % ({it}){filters})"
        lines.append(f"const {it} wb = {channel} * ({it}){prod(w.kernel)};")
    return lines


def _window_base(step: PoolStep, it: str) -> str:
    """`lb`: where the window's first element (perhaps outside the input) would be."""
    w = step.window
    H, W = w.in_size[-2:]
    if len(w.in_size) == 2:
        return f"const {it} lb = l0 + ({it})ih0 * {W} + iw0;"
    return f"const {it} lb = l0 + (({it})id0 * {H} + ih0) * {W} + iw0;"


def pool_kernel(step: PoolStep, buffers: Mapping[str, Buffer], params: Mapping[str, Any]) -> StepKernel:
    p = {**POOL_DEFAULTS, **params}
    w, tag = step.window, step.name
    n_out = step.epilogue.numel
    loads = [e for e in (*step.prologue.nodes, *step.epilogue.nodes) if isinstance(e, Load)]
    if step.weight is not None:
        loads.append(Load(step.weight, buffers[step.weight.buffer].dtype))
    outputs = [(o.buffer, buffers[o.buffer].dtype) for o in step.outputs]
    plist = params_for(loads, outputs)
    it = index_type(step.prologue.numel, n_out, *(buffers[e.layout.buffer].numel for e in loads))
    at = "double" if step.prologue.nodes[-1].dtype == "float64" else "float"

    hoist = plane_invariant(step.prologue, w.spatial_dims)
    outer: list[str] = []
    inner: list[str] = []
    _, pro_names = emit_dag(step.prologue, "l", it, prefix="x", sink=lambda i: outer if i in hoist else inner,
                            load_override=lambda i, e: (f"kw_cvt(p.{e.layout.buffer}[{index_expr(e.layout, 'l0', it)}])"
                                                        if i in hoist else None))
    special = next((e for e in step.epilogue.nodes if isinstance(e, Special)), None)
    value = "pooled"
    if special is not None and special.dtype in ("float16", "bfloat16"):
        value = f"kw_round_{special.dtype}(pooled)"  # eager stores the pooled value rounded, then goes on
    epi_lines, epi_names = emit_dag(step.epilogue, "q", it, specials={"value": value}, prefix="y")
    stores = [f"p.{o.buffer}[q] = KwStore<{STORAGE_CTYPE[buffers[o.buffer].dtype]}>::of({epi_names[o.node]});"
              for o in step.outputs]
    init = "-INFINITY" if w.pool == "max" else "0"
    per_output = [
        *_output_position(step, it),
        *outer,
        _window_base(step, it),
        f"{at} acc = ({at}){init};",
        *_window_loops(step, it, at, inner, pro_names[-1]),
        *_divide(step, at),
        *epi_lines,
        *stores,
    ]
    c_params, spec = launcher_signature(plist)
    assign = "\n".join(f"    p.{q.buffer} = {q.buffer};" for q in plist)
    B, U = f"KW_{tag}_BLOCK", f"KW_{tag}_OPT"
    extra = f", multiplier {w.multiplier}" if w.pool == "depthwise" else ""
    source = f"""
// ---- {tag}: {w.pool} pool [{w.planes}, {", ".join(map(str, w.in_size))}] -> [{", ".join(map(str, w.out_size))}], kernel {list(w.kernel)}, stride {list(w.stride)}, padding {list(w.padding)}, dilation {list(w.dilation)}{extra}
#define {B} {int(p["BLOCK"])}
#define {U} {int(p["OPT"])}
{struct_text(f"P_{tag}", plist)}
__global__ void __launch_bounds__({B}) kw_{tag}(P_{tag} p) {{
    const {it} q0 = ({it})blockIdx.x * ({B} * {U}) + threadIdx.x;
#pragma unroll
    for (int u = 0; u < {U}; ++u) {{
        const {it} q = q0 + ({it})u * {B};
        if (q >= ({it}){n_out}) break;
{_indent(per_output, 8)}
    }}
}}
extern "C" int kw_launch_{tag}({c_params}{", " if c_params else ""}cudaStream_t stream) {{
    P_{tag} p;
{assign}
    const long long blocks = ({n_out}LL + {B} * {U} - 1) / ({B} * {U});
    kw_{tag}<<<(unsigned)blocks, {B}, 0, stream>>>(p);
    return (int)cudaGetLastError();
}}
"""
    return StepKernel(tag, source, f"kw_launch_{tag}", spec, tuple(q.buffer for q in plist))
