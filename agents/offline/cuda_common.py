"""Shared CUDA text: the prelude (conversions, vector type, accumulators, warp/block reductions),
index math for strided loads, and the emission of one expression DAG as straight-line C."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kernelwright.agents.offline.ir import Buffer, Const, Dag, Layout, Load, Op, Special
from kernelwright.agents.offline.ops import CTYPE, PRIMITIVES, STORAGE_CTYPE, lit, operand_dtype

PRELUDE = r"""
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <math.h>

#define KW_FULL 0xffffffffu
__device__ __forceinline__ float kw_cvt(__half v) { return __half2float(v); }
__device__ __forceinline__ float kw_cvt(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T kw_cvt(T v) { return v; }
template <typename T> struct KwStore { template <typename V> __device__ static T of(V v) { return (T)v; } };
template <> struct KwStore<__half> { template <typename V> __device__ static __half of(V v) { return __float2half_rn((float)v); } };
template <> struct KwStore<__nv_bfloat16> { template <typename V> __device__ static __nv_bfloat16 of(V v) { return __float2bfloat16_rn((float)v); } };
__device__ __forceinline__ float kw_exp(float x) { return expf(x); }
__device__ __forceinline__ double kw_exp(double x) { return exp(x); }
__device__ __forceinline__ float kw_round_float16(float x) { return __half2float(__float2half_rn(x)); }
__device__ __forceinline__ float kw_round_bfloat16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }
template <typename T, int N> struct alignas(sizeof(T) * N) KwVec { T v[N]; };

static inline int kw_sm_count() {
    static int count = 0;
    if (count == 0) {
        int dev = 0;
        cudaGetDevice(&dev);
        if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || count <= 0) count = 132;
    }
    return count;
}
static inline bool kw_aligned(const void* p, int bytes) { return bytes <= 1 || ((uintptr_t)p % (uintptr_t)bytes) == 0; }

// Accumulators: init / push(value, index) / merge / shfl(offset). Plain structs (usable in __shared__).
template <typename T> struct KwSum {
    T s;
    __device__ void init() { s = 0; }
    __device__ void push(T v, long long) { s += v; }
    __device__ void merge(const KwSum& o) { s += o.s; }
    __device__ KwSum shfl(int off) const { KwSum r; r.s = __shfl_xor_sync(KW_FULL, s, off); return r; }
};
template <typename T> struct KwProd {
    T s;
    __device__ void init() { s = 1; }
    __device__ void push(T v, long long) { s *= v; }
    __device__ void merge(const KwProd& o) { s *= o.s; }
    __device__ KwProd shfl(int off) const { KwProd r; r.s = __shfl_xor_sync(KW_FULL, s, off); return r; }
};
template <typename T, bool MAX> struct KwExt {  // max / min with the first index reaching it; NaN wins
    T m; long long i;
    __device__ void init() { m = MAX ? -INFINITY : INFINITY; i = 0x7fffffffffffffffLL; }
    __device__ bool better(T v, long long j) const {
        if (v != v) return !(m != m) || j < i;
        if (m != m) return false;
        return MAX ? (v > m || (v == m && j < i)) : (v < m || (v == m && j < i));
    }
    __device__ void push(T v, long long j) { if (better(v, j)) { m = v; i = j; } }
    __device__ void merge(const KwExt& o) { if (better(o.m, o.i)) { m = o.m; i = o.i; } }
    __device__ KwExt shfl(int off) const {
        KwExt r; r.m = __shfl_xor_sync(KW_FULL, m, off); r.i = __shfl_xor_sync(KW_FULL, i, off); return r;
    }
};
template <typename T> struct KwWelford {  // mean and sum of squared deviations (Chan's merge)
    T mean, m2, n;
    __device__ void init() { mean = 0; m2 = 0; n = 0; }
    __device__ void push(T v, long long) { n += 1; T d = v - mean; mean += d / n; m2 += d * (v - mean); }
    __device__ void merge(const KwWelford& o) {
        if (o.n == 0) return;
        if (n == 0) { *this = o; return; }
        T tot = n + o.n, d = o.mean - mean;
        mean += d * (o.n / tot);
        m2 += o.m2 + d * d * (n * o.n / tot);
        n = tot;
    }
    __device__ KwWelford shfl(int off) const {
        KwWelford r;
        r.mean = __shfl_xor_sync(KW_FULL, mean, off); r.m2 = __shfl_xor_sync(KW_FULL, m2, off); r.n = __shfl_xor_sync(KW_FULL, n, off);
        return r;
    }
};
template <typename T> struct KwMax {  // plain max for two-pass normalisations; a NaN sticks
    T m;
    __device__ void init() { m = -INFINITY; }
    __device__ void push(T v, long long) { if (v > m || v != v) m = (m != m) ? m : v; }
    __device__ void merge(const KwMax& o) { push(o.m, 0); }
    __device__ KwMax shfl(int off) const { KwMax r; r.m = __shfl_xor_sync(KW_FULL, m, off); return r; }
};
template <typename T> struct KwLse {  // online max and sum of exp(v - max)
    T m, s;
    __device__ void init() { m = -INFINITY; s = 0; }
    __device__ void push(T v, long long) {
        if (v == -INFINITY) return;
        if (v > m) { s = s * kw_exp(m - v) + (T)1; m = v; } else { s += kw_exp(v - m); }
    }
    __device__ void merge(const KwLse& o) {
        if (o.m == -INFINITY) return;
        if (m == -INFINITY) { *this = o; return; }
        if (o.m > m) { s = s * kw_exp(m - o.m) + o.s; m = o.m; } else { s += o.s * kw_exp(o.m - m); }
    }
    __device__ KwLse shfl(int off) const { KwLse r; r.m = __shfl_xor_sync(KW_FULL, m, off); r.s = __shfl_xor_sync(KW_FULL, s, off); return r; }
};

template <typename A> __device__ __forceinline__ A kw_warp_reduce(A a) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) a.merge(a.shfl(off));
    return a;
}
// Reduce over the threads of a block that share threadIdx.y (blockDim.x threads, a multiple of 32); all get the result.
template <typename A, int TX, int TY> __device__ __forceinline__ A kw_block_reduce_x(A a) {
    a = kw_warp_reduce(a);
    if (TX <= 32) return a;
    __shared__ A kw_red[TY][TX / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) kw_red[threadIdx.y][warp] = a;
    __syncthreads();
    A r; r.init();
#pragma unroll
    for (int w = 0; w < TX / 32; ++w) r.merge(kw_red[threadIdx.y][w]);
    __syncthreads();
    return r;
}
"""


def index_type(*sizes: int) -> str:
    """32-bit index math when every size fits (cheaper div/mod), else 64-bit."""
    return "int" if max(sizes, default=0) < 2**30 else "long long"


def collapse(shape: tuple[int, ...], strides: tuple[int, ...]) -> list[tuple[int, int]]:
    """(size, stride) dims without size-1 dims, adjacent dims merged when the strides allow."""
    dims = [(s, st) for s, st in zip(shape, strides) if s != 1]
    out: list[tuple[int, int]] = []
    for size, stride in dims:
        if out:
            psize, pstride = out[-1]
            if pstride == stride * size or (pstride == 0 and stride == 0):
                out[-1] = (psize * size, stride)
                continue
        out.append((size, stride))
    return out


def index_expr(layout: Layout, var: str, it: str) -> str:
    """The element offset of `layout` at linear index `var` over layout.shape (static sizes)."""
    dims = collapse(layout.shape, layout.strides)
    terms = []
    inner = 1
    for pos in range(len(dims) - 1, -1, -1):
        size, stride = dims[pos]
        if stride != 0:
            q = var if inner == 1 else f"({var} / ({it}){inner})"
            if inner * size < total_numel(layout.shape):
                q = f"({q} % ({it}){size})"
            terms.append(q if stride == 1 else f"{q} * ({it}){stride}")
        inner *= size
    if layout.offset:
        terms.append(f"({it}){layout.offset}")
    return " + ".join(terms) if terms else "0"


def total_numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def is_linear(layout: Layout) -> bool:
    """The layout walks its buffer in order: element l at offset + l."""
    dims = collapse(layout.shape, layout.strides)
    return len(dims) == 0 and total_numel(layout.shape) == 1 or (len(dims) == 1 and dims[0][1] == 1)


def vector_name(load: Load) -> str:
    """The register a vectorised in-order load reads from: one per buffer and offset (a buffer may be read at two
    offsets in one loop, e.g. the two halves of x.chunk(2, dim=0))."""
    offset = load.layout.offset
    return f"in_{load.layout.buffer}" + (f"_{offset}" if offset else "")


def vector_read(load: Load, width: str, it: str) -> str:
    """The statement that loads `width` elements of an in-order operand from index `base` into its register
    (vector_name), as one KwVec."""
    ctype = STORAGE_CTYPE[load.dtype]
    return (f"const KwVec<{ctype}, {width}> {vector_name(load)} = *reinterpret_cast<const KwVec<{ctype}, {width}>*>"
            f"(p.{load.layout.buffer} + base + ({it}){load.layout.offset});")


@dataclass(frozen=True)
class Param:
    """A kernel parameter (one buffer) in the step's parameter struct."""

    buffer: str
    dtype: str
    output: bool

    def decl(self) -> str:
        const = "" if self.output else "const "
        return f"{const}{STORAGE_CTYPE[self.dtype]}* __restrict__ {self.buffer};"


def emit_dag(dag: Dag, var: str, it: str, *, specials: Mapping[str, str] | None = None,
             load_override: Callable[[int, Load], str | None] | None = None, prefix: str = "v",
             sink: Callable[[int], list[str]] | None = None) -> tuple[list[str], list[str]]:
    """C statements computing every node at linear index `var`; returns (lines, variable per node).
    `load_override(node, load)` may supply a load's expression (e.g. from a vector register); `sink(node)`
    may name the list a node's statement goes to instead (e.g. hoisted out of a loop)."""
    main: list[str] = []
    names: list[str] = []
    dtypes: list[str] = []
    for i, expr in enumerate(dag.nodes):
        name = f"{prefix}{i}"
        lines = sink(i) if sink else main
        if isinstance(expr, Load):
            text = load_override(i, expr) if load_override else None
            if text is None:
                text = f"kw_cvt(p.{expr.layout.buffer}[{index_expr(expr.layout, var, it)}])"
            lines.append(f"const {CTYPE[expr.dtype]} {name} = ({CTYPE[expr.dtype]}){text};")
        elif isinstance(expr, Const):
            names.append(lit(expr.value, CTYPE[expr.dtype]))  # literals are re-emitted in each operand's type
            dtypes.append(expr.dtype)
            continue
        elif isinstance(expr, Special):
            lines.append(f"const {CTYPE[expr.dtype]} {name} = ({CTYPE[expr.dtype]})({(specials or {})[expr.name]});")
        else:
            lines.append(f"const {CTYPE[expr.dtype]} {name} = {_op_text(dag, expr, names, dtypes)};")
        names.append(name)
        dtypes.append(expr.dtype)
    return main, names


def _op_text(dag: Dag, op: Op, names: list[str], dtypes: list[str]) -> str:
    prim = PRIMITIVES[op.op]
    arg_dtypes = [dtypes[a] for a in op.args]
    operands = []
    for pos, a in enumerate(op.args):
        want = CTYPE[operand_dtype(prim, op, arg_dtypes, pos)]
        node = dag.nodes[a]
        if isinstance(node, Const):
            operands.append(lit(node.value, want))
        else:
            operands.append(names[a] if CTYPE[dtypes[a]] == want else f"(({want}){names[a]})")
    math_type = CTYPE[op.dtype] if prim.operands in ("result", "any") else CTYPE[operand_dtype(prim, op, arg_dtypes, 0)]
    text = prim.c(operands, op, math_type if math_type in ("float", "double") else CTYPE[op.dtype])
    if op.dtype in ("float16", "bfloat16") and op.op != "cast":
        # Eager rounds every half-precision op's result; so do we (a cast chain's rounding is observable).
        return f"kw_round_{op.dtype}({text})"
    return f"({CTYPE[op.dtype]})({text})"


def params_for(loads: list[Load], outputs: list[tuple[str, str]]) -> list[Param]:
    """One parameter per distinct buffer read, then one per buffer written."""
    seen: dict[str, Param] = {}
    for load in loads:
        seen.setdefault(load.layout.buffer, Param(load.layout.buffer, load.dtype, False))
    params = list(seen.values())
    params += [Param(buf, dtype, True) for buf, dtype in outputs]
    return params


def struct_text(name: str, params: list[Param]) -> str:
    body = "\n".join(f"    {p.decl()}" for p in params) or "    int unused;"
    return f"struct {name} {{\n{body}\n}};"


def launcher_signature(params: list[Param]) -> tuple[str, str]:
    """(C parameter list, raw_kernel spec string) for the extern "C" launcher."""
    from kernelwright.agents.offline.ops import SPEC

    c = ", ".join(f"{'' if p.output else 'const '}{STORAGE_CTYPE[p.dtype]}* {p.buffer}" for p in params)
    spec = ", ".join(SPEC[p.dtype] for p in params)
    return c, spec


def buffer_dtypes(buffers: Mapping[str, Buffer], names: list[str]) -> list[tuple[str, str]]:
    return [(n, buffers[n].dtype) for n in names]
