"""CUDA for a fused elementwise step: one grid-stride kernel over the iteration shape, with
vectorised (16-byte-class) loads/stores for operands that walk memory in order, a scalar tail,
and a scalar kernel the launcher falls back to when a pointer is not aligned."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kernelwright.agents.offline.cuda_common import (
    emit_dag,
    index_type,
    is_linear,
    launcher_signature,
    params_for,
    struct_text,
    vector_name,
    vector_read,
)
from kernelwright.agents.offline.ir import Buffer, ElementwiseStep, Load
from kernelwright.agents.offline.ops import STORAGE_CTYPE


@dataclass(frozen=True)
class StepKernel:
    step: str
    source: str
    launcher: str
    spec: str
    args: tuple[str, ...]  # buffers in launcher order
    scratch_bytes: int = 0  # > 0: the launcher takes a u8* scratch buffer of this size after the buffers
    headers: tuple[str, ...] = ()  # header-only libraries the source includes (load_cuda's `headers`)


ELEMENTWISE_DEFAULTS = {"BLOCK": 256, "VEC": 4, "BPS": 8}


def elementwise_kernel(step: ElementwiseStep, buffers: Mapping[str, Buffer], params: Mapping[str, Any]) -> StepKernel:
    p = {**ELEMENTWISE_DEFAULTS, **params}
    dag, tag = step.dag, step.name
    n = dag.numel
    it = index_type(n, *(buffers[e.layout.buffer].numel for e in dag.nodes if isinstance(e, Load)))
    vec = int(p["VEC"]) if n >= 2 * int(p["VEC"]) else 1
    loads = [(i, e) for i, e in enumerate(dag.nodes) if isinstance(e, Load)]
    outputs = [(o.buffer, buffers[o.buffer].dtype) for o in step.outputs]
    plist = params_for([e for _, e in loads], outputs)
    # Operands read in order with a vector-aligned offset come in as vectors.
    vector_loads = {i: e for i, e in loads if vec > 1 and is_linear(e.layout) and e.layout.offset % vec == 0
                    and e.layout.numel == n}
    vec_reads = {vector_name(e): e for e in vector_loads.values()}

    scalar_lines, scalar_names = emit_dag(dag, "l", it)
    scalar_body = scalar_lines + [f"p.{o.buffer}[l] = KwStore<{STORAGE_CTYPE[buffers[o.buffer].dtype]}>::of({scalar_names[o.node]});"
                                  for o in step.outputs]
    vec_lines, vec_names = emit_dag(dag, "l", it, load_override=lambda i, e: f"kw_cvt({vector_name(e)}.v[j])"
                                    if i in vector_loads else None)
    vec_body = vec_lines + [f"out_{o.buffer}.v[j] = KwStore<{STORAGE_CTYPE[buffers[o.buffer].dtype]}>::of({vec_names[o.node]});"
                            for o in step.outputs]
    V = f"KW_{tag}_VEC"
    vec_in = [vector_read(e, V, it) for e in vec_reads.values()]
    vec_out_decl = [f"KwVec<{STORAGE_CTYPE[dt]}, {V}> out_{b};" for b, dt in outputs]
    vec_out_store = [f"*reinterpret_cast<KwVec<{STORAGE_CTYPE[dt]}, {V}>*>(p.{b} + base) = out_{b};" for b, dt in outputs]
    c_params, spec = launcher_signature(plist)
    assign = "\n".join(f"    p.{q.buffer} = {q.buffer};" for q in plist)
    aligned = " && ".join([f"kw_aligned({e.layout.buffer} + {e.layout.offset}, {V} * (int)sizeof({STORAGE_CTYPE[e.dtype]}))"
                           for e in vec_reads.values()]
                          + [f"kw_aligned({b}, {V} * (int)sizeof({STORAGE_CTYPE[dt]}))" for b, dt in outputs]) or "true"
    source = f"""
// ---- {tag}: fused elementwise over {list(dag.shape)} ({n} elements)
#define KW_{tag}_BLOCK {int(p["BLOCK"])}
#define {V} {vec}
#define KW_{tag}_BPS {int(p["BPS"])}
{struct_text(f"P_{tag}", plist)}
__global__ void __launch_bounds__(KW_{tag}_BLOCK) kw_{tag}_vec(P_{tag} p) {{
    const {it} n_vec = ({it}){n} / {V};
    const {it} stride = ({it})gridDim.x * blockDim.x;
    for ({it} c = ({it})blockIdx.x * blockDim.x + threadIdx.x; c < n_vec; c += stride) {{
        const {it} base = c * {V};
{_indent(vec_in + vec_out_decl, 8)}
#pragma unroll
        for (int j = 0; j < {V}; ++j) {{
            const {it} l = base + j;
            (void)l;
{_indent(vec_body, 12)}
        }}
{_indent(vec_out_store, 8)}
    }}
    for ({it} l = n_vec * {V} + ({it})blockIdx.x * blockDim.x + threadIdx.x; l < ({it}){n}; l += stride) {{
{_indent(scalar_body, 8)}
    }}
}}
__global__ void __launch_bounds__(KW_{tag}_BLOCK) kw_{tag}_scalar(P_{tag} p) {{
    const {it} stride = ({it})gridDim.x * blockDim.x;
    for ({it} l = ({it})blockIdx.x * blockDim.x + threadIdx.x; l < ({it}){n}; l += stride) {{
{_indent(scalar_body, 8)}
    }}
}}
extern "C" int kw_launch_{tag}({c_params}{", " if c_params else ""}cudaStream_t stream) {{
    P_{tag} p;
{assign}
    const bool use_vec = {V} > 1 && ({aligned});
    long long work = use_vec ? {n}LL / {V} : {n}LL;
    if (work <= 0) work = 1;
    long long blocks = (work + KW_{tag}_BLOCK - 1) / KW_{tag}_BLOCK;
    const long long cap = (long long)kw_sm_count() * KW_{tag}_BPS;
    if (blocks > cap) blocks = cap;
    if ({n}LL > 0) {{
        if (use_vec) kw_{tag}_vec<<<(unsigned)blocks, KW_{tag}_BLOCK, 0, stream>>>(p);
        else kw_{tag}_scalar<<<(unsigned)blocks, KW_{tag}_BLOCK, 0, stream>>>(p);
    }}
    return (int)cudaGetLastError();
}}
"""
    return StepKernel(tag, source, f"kw_launch_{tag}", spec, tuple(q.buffer for q in plist))


def _indent(lines: list[str], n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line for line in lines)
