"""Vector loads for reductions along contiguous rows (the VEC tunable of codegen_reduce): a reduction's prologue
read VEC_WIDTH elements at a time where its operands walk their buffers in the reduction's own order.

Row reductions and normalisations stream their rows with one element per load (codegen_reduce._strided_loop); on
KernelBench's long rows (losses over 4 GB operands, normalisations over rows of 256K-4M) those kernels ran at
1.25x-2.9x of the DRAM floor. Here each thread loads VEC_WIDTH consecutive elements of each in-order operand as one
KwVec (16 bytes of fp32), two vectors in flight, and pushes them in order. Other loads of the prologue (broadcasts,
gathers) stay element by element. The kernels that use it (a template flag the launcher sets from the pointers'
alignment) keep the scalar loop for a misaligned pointer. Only loops that accumulate use it: a normalisation's write
loop stays scalar (codegen_reduce._one_pass says why)."""

from __future__ import annotations

from collections.abc import Mapping

from kernelwright.agents.offline.codegen_elementwise import _indent
from kernelwright.agents.offline.cuda_common import emit_dag, is_linear, vector_name, vector_read
from kernelwright.agents.offline.ir import Load, ReductionStep

VEC_WIDTH = 4


def vector_loads(step: ReductionStep) -> dict[int, Load]:
    """The prologue loads (node -> load) that may come VEC_WIDTH at a time: ones that walk their buffer in the
    reduction's own order over all of it (element l at offset + l, the offset a multiple of VEC_WIDTH). Empty where
    there is none, the reduced dimension is not the innermost, or rows are not a multiple of VEC_WIDTH long (a
    row's vectors would straddle two rows)."""
    n = step.outer * step.reduce
    if step.inner != 1 or step.reduce % VEC_WIDTH:
        return {}
    return {i: e for i, e in enumerate(step.prologue.nodes) if isinstance(e, Load) and is_linear(e.layout)
            and e.layout.offset % VEC_WIDTH == 0 and e.layout.numel == n}


def vector_prologue(step: ReductionStep, it: str, at: str, tag: str, vectors: Mapping[int, Load]) -> str:
    """kw_<tag>_pro<W>(p, base, out): the prologue at base .. base + W - 1 (W = VEC_WIDTH), its `vectors` loaded as
    one KwVec each (one per buffer and offset), the other loads element by element."""
    w = VEC_WIDTH
    vec_in = [vector_read(e, str(w), it) for e in {vector_name(e): e for e in vectors.values()}.values()]
    lines, names = emit_dag(step.prologue, "l", it, prefix="x",
                            load_override=lambda i, e: f"kw_cvt({vector_name(e)}.v[j])" if i in vectors else None)
    return f"""__device__ __forceinline__ void kw_{tag}_pro{w}(const P_{tag}& p, {it} base, {at} out[{w}]) {{
{_indent(vec_in, 4)}
#pragma unroll
    for (int j = 0; j < {w}; ++j) {{
        const {it} l = base + j;
{_indent(lines, 8)}
        out[j] = ({at}){names[-1]};
    }}
}}
"""


def vector_loop(ty: str, first: str, stop: str, threads: str, row_base: str, at: str, tag: str, use: str) -> str:
    """`for (ty r = first; r < stop; r += threads) { const at v = <prologue at row_base + r>; use }` W elements at
    a time: the thread starts at `first` (its chunk's start + W x its index), loads kw_<tag>_pro<W> at row_base + r0,
    steps W x `threads`, two vectors in flight, and runs `use` (naming `r` and `v`) for each element in order.
    `first` and `stop` must be multiples of W. Indented 4, in a block of its own."""
    w, stride = VEC_WIDTH, f"({ty})({VEC_WIDTH} * ({threads}))"

    def use_all(x: str, first_r: str) -> str:
        return (f"#pragma unroll\n        for (int j = 0; j < {w}; ++j) {{ const {ty} r = {first_r} + j; "
                f"const {at} v = {x}[j]; {use} }}")

    return f"""    {{
        {ty} r0 = {first};
        for (; r0 + {stride} < {stop}; r0 += 2 * {stride}) {{
            {at} x0[{w}], x1[{w}];
            kw_{tag}_pro{w}(p, {row_base} + r0, x0);
            kw_{tag}_pro{w}(p, {row_base} + r0 + {stride}, x1);
    {use_all("x0", "r0")}
    {use_all("x1", f"r0 + {stride}")}
        }}
        if (r0 < {stop}) {{
            {at} x0[{w}];
            kw_{tag}_pro{w}(p, {row_base} + r0, x0);
    {use_all("x0", "r0")}
        }}
    }}"""


def aligned_check(vectors: Mapping[int, Load]) -> str:
    """The launcher's condition for the vector kernels: every vector operand's first element 16-byte aligned
    (VEC_WIDTH elements)."""
    return " && ".join(dict.fromkeys(f"kw_aligned(p.{e.layout.buffer} + {e.layout.offset}, {VEC_WIDTH} * "
                                     f"(int)sizeof(*p.{e.layout.buffer}))" for e in vectors.values()))


def with_scalar_fallback(vector: str, scalar: str) -> str:
    """A kernel body's loop as `if constexpr (KW_VEC) vector else scalar` (the kernel a template on KW_VEC)."""
    return f"    if constexpr (KW_VEC) {{\n{_indent(vector.splitlines(), 4)}\n    }} else {{\n" \
           f"{_indent(scalar.splitlines(), 4)}\n    }}"
