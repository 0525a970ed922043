"""CUDA for a reduction step over [outer, reduce, inner].

Three kernel shapes, chosen from the static geometry:
- rows (inner == 1): a warp or a block per row; warp-shuffle then shared-memory combine; for
  normalisations the row stays in registers when it fits (one read of the input, one write);
- columns (inner > 1): a 32-wide tile of inner positions per block, threadIdx.y splits the reduced
  dim, combined through shared memory; coalesced along inner;
- split (few long rows, plain reductions): partial accumulators from many blocks into a scratch
  buffer, then one block per row merges them.
Accumulators are single-pass where one exists: online max/sum-of-exp (softmax, log-softmax,
logsumexp), Welford (layer norm, var, std).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kernelwright.agents.offline.codegen_elementwise import StepKernel, _indent
from kernelwright.agents.offline.cuda_common import (
    emit_dag,
    index_type,
    launcher_signature,
    params_for,
    struct_text,
)
from kernelwright.agents.offline.ir import SCANS, Buffer, Load, ReductionStep
from kernelwright.agents.offline.ops import STORAGE_CTYPE, lit
from kernelwright.agents.offline.reduce_vectors import (
    VEC_WIDTH,
    aligned_check,
    vector_loads,
    vector_loop,
    vector_prologue,
    with_scalar_fallback,
)

REDUCTION_DEFAULTS = {"TPR": 0, "RPB": 0, "CY": 0, "SPLIT": 0, "CACHE": 1, "TWOPASS": 1, "CLUSTER": 0}  # 0: chosen
TWO_PASS_KINDS = ("softmax", "log_softmax", "layer_norm")
MAX_CACHED_ITEMS = 32
# A normalisation row too long for registers is read twice from DRAM (statistics, then the write). Split over a
# thread-block cluster (sm_90+), each block keeps its slice in shared memory and the blocks merge their partial
# statistics through distributed shared memory, so the row is read once. Off in the defaults (a tunable the tuner,
# or agents.offline_fill, tries): it passed on an H100 but lost to the plain kernel on level1/23's softmax.
CLUSTER_CHOICES = (2, 4, 8)  # portable cluster sizes
CLUSTER_SLICE_BYTES = 200 * 1024  # of the 227 KB of shared memory an H100 block may take
SCRATCH_PER_ACC = 32  # bytes; every accumulator struct fits
SMS = 132  # an H100's SMs: the split paths aim at BLOCKS_TO_FILL blocks, four an SM
BLOCKS_TO_FILL = 4 * SMS
# Loads a thread issues before it uses any, in a loop over a row or column too long for registers. Without it, the
# branches of an online push (a new maximum) and stores that may alias the input keep one load in flight per thread
# (seen in the SASS of level1/23's softmax: each load waits on the previous element's push), which leaves a
# long-row kernel latency-bound, below the DRAM bandwidth. Each thread still pushes its elements in the same order.
# Measured on an H100 (session 18): max/min/argmin over a middle dimension 1.38x -> 1.07x of the DRAM floor, softmax
# 1.01x -> 1.28x over eager (eval/BENCHMARKS.md).
LOAD_BATCH = 4


def default_tpr(reduce: int) -> int:
    for tpr in (32, 64, 128, 256, 512):
        if reduce <= tpr * 8:
            return tpr
    return 1024


def default_rpb(reduce: int) -> int:
    """Rows per block of a warp-per-row reduction where no RPB is asked for (the tuner's default too): four short
    rows share a block, since an SM holds at most 32 blocks and 32-thread blocks would fill half its warp slots.
    A row reduction that channels-last order made of a column one (storage_order) has no RPB of its own."""
    return 4 if reduce <= 256 else 1


def default_split(step: ReductionStep) -> int:
    """Split long rows across blocks when there are too few rows to fill the GPU (plain reductions only)."""
    if step.is_normalisation or step.inner != 1 or step.outer >= 2 * SMS or step.reduce < 16384:
        return 0
    return max(2, min(1024, -(-BLOCKS_TO_FILL // step.outer), step.reduce // 4096))


def vec_offered(step: ReductionStep) -> bool:
    """Whether the VEC tunable applies (reduce_vectors.vector_loads has loads for it, and a loop streams them): a split
    reduction or normalisation, a normalisation row too long to cache in registers, or a plain row reduction of at
    least 2 x VEC_WIDTH elements a thread."""
    if step.reduction in SCANS or not vector_loads(step):
        return False
    if default_split(step) or normalisation_split(step):
        return True
    items = -(-step.reduce // default_tpr(step.reduce))
    return items > MAX_CACHED_ITEMS if step.is_normalisation else items >= 2 * VEC_WIDTH


def _normalisation_rows(step: ReductionStep) -> bool:
    """A softmax, log-softmax, layer or RMS norm along contiguous rows (scans count as normalisations but keep
    their own kernel), the shape both long-row tunables apply to."""
    return step.is_normalisation and step.inner == 1 and step.reduction not in SCANS


def normalisation_split(step: ReductionStep) -> int:
    """The SPLIT offered to a normalisation with fewer long rows than the GPU has SMs (KernelBench's layer norm:
    16 rows of 4M, so one block a row leaves 116 of 132 SMs idle): partial statistics from many blocks a row,
    then blocks that merge their row's partials and write their chunk. 0: not offered (enough rows, short rows).
    Off in the defaults (SPLIT 0; the fill's first neighbour tries it): 14.6x over eager on level1/40 on an H100."""
    if not _normalisation_rows(step) or step.outer >= SMS or step.reduce < 65536:
        return 0
    return max(2, min(1024, -(-BLOCKS_TO_FILL // step.outer), step.reduce // 16384))


def default_cy(step: ReductionStep) -> int:
    """Threads along the reduced dim per 32-wide column tile: enough blocks x threads to fill an H100-class
    GPU (~270k threads) without more y-threads than reduced elements."""
    columns = step.outer * -(-step.inner // 32)
    cy = 1
    while cy < 32 and cy * 2 <= step.reduce and (cy < 4 or columns * 32 * cy < 270_000):
        cy *= 2  # at least 4 warps a block (32-thread blocks cap occupancy), more while the GPU isn't full
    return cy


def _acc(step: ReductionStep, at: str) -> str:
    kind = step.reduction
    if kind in ("sum", "mean", "norm", "rms_norm"):
        return f"KwSum<{at}>"
    if kind == "prod":
        return f"KwProd<{at}>"
    if kind in ("max", "argmax", "max_with_index"):
        return f"KwExt<{at}, true>"
    if kind in ("min", "argmin", "min_with_index"):
        return f"KwExt<{at}, false>"
    if kind in ("var", "std", "layer_norm"):
        return f"KwWelford<{at}>"
    return f"KwLse<{at}>"  # logsumexp, softmax, log_softmax


def _push_value(step: ReductionStep, v: str, at: str) -> str:
    if step.reduction == "rms_norm":
        return f"{v} * {v}"
    if step.reduction == "norm":
        order = step.attr("ord", 2.0)
        if order == 1.0:
            return f"({v} < 0 ? -{v} : {v})"
        if order == 2.0:
            return f"{v} * {v}"
        return f"pow(({v} < 0 ? -{v} : {v}), {lit(order, at)})"
    return v


def _final(step: ReductionStep, at: str) -> tuple[str, str]:
    """(value, index) expressions from the merged accumulator `a`."""
    kind, r = step.reduction, step.reduce
    if kind in ("sum", "prod"):
        return "a.s", "0"
    if kind == "mean":
        return f"a.s / ({at}){r}", "0"
    if kind in ("max", "min", "argmax", "argmin", "max_with_index", "min_with_index"):
        return "a.m", "a.i"
    if kind in ("var", "std"):
        denom = f"({at}){max(r - step.attr('correction', 1.0), 0.0)!r}"
        var = f"(a.m2 / {denom})"
        return (var if kind == "var" else f"sqrt({var})"), "0"
    if kind == "logsumexp":
        return "(a.m == -INFINITY ? a.m : a.m + log(a.s))", "0"
    if kind == "norm":
        order = step.attr("ord", 2.0)
        if order == 1.0:
            return "a.s", "0"
        if order == 2.0:
            return "sqrt(a.s)", "0"
        return f"pow(a.s, {lit(1.0 / order, at)})", "0"
    raise ValueError(kind)


def _stats_and_z(step: ReductionStep, at: str) -> tuple[list[str], str]:
    """Statements after the merge, and z as an expression of the prologue value `v`."""
    kind, r = step.reduction, step.reduce
    if kind == "softmax":
        return [f"const {at} mx = a.m, inv = ({at})1 / a.s;"], "kw_exp(v - mx) * inv"
    if kind == "log_softmax":
        return [f"const {at} lse = a.m + log(a.s);"], "v - lse"
    eps = lit(step.attr("eps", 1e-5), at)
    if kind == "layer_norm":
        return [f"const {at} mu = a.mean, rstd = ({at})1 / sqrt(a.m2 / ({at}){r} + {eps});"], "(v - mu) * rstd"
    if kind == "rms_norm":
        return [f"const {at} rstd = ({at})1 / sqrt(a.s / ({at}){r} + {eps});"], "v * rstd"
    raise ValueError(kind)


def reduction_kernel(step: ReductionStep, buffers: Mapping[str, Buffer], params: Mapping[str, Any]) -> StepKernel:
    p = {**REDUCTION_DEFAULTS, **params}
    tag, O, R, I = step.name, step.outer, step.reduce, step.inner  # noqa: E741 - outer, reduce, inner extents
    in_dtype = next((e.dtype for e in step.prologue.nodes[-1:]), "float32")
    at = "double" if in_dtype == "float64" or step.prologue.nodes[-1].dtype == "float64" else "float"
    loads = [e for e in (*step.prologue.nodes, *step.epilogue.nodes) if isinstance(e, Load)]
    outputs = [(o.buffer, buffers[o.buffer].dtype) for o in step.outputs]
    plist = params_for(loads, outputs)
    it = index_type(O * R * I, *(buffers[e.layout.buffer].numel for e in loads))
    pro_lines, pro_names = emit_dag(step.prologue, "l", it, prefix="x")
    epi_lines, epi_names = emit_dag(step.epilogue, "q", it, specials={"value": "value", "index": "index", "z": "z"},
                                    prefix="y")
    stores = [f"p.{o.buffer}[q] = KwStore<{STORAGE_CTYPE[buffers[o.buffer].dtype]}>::of({epi_names[o.node]});"
              for o in step.outputs]
    acc = _acc(step, at)
    helpers = f"""
// ---- {tag}: {step.reduction} over [outer={O}, reduce={R}, inner={I}]
{struct_text(f"P_{tag}", plist)}
__device__ __forceinline__ {at} kw_{tag}_pro(const P_{tag}& p, {it} l) {{
{_indent(pro_lines, 4)}
    return ({at}){pro_names[-1]};
}}
__device__ __forceinline__ void kw_{tag}_epi(const P_{tag}& p, {it} q, {at} value, long long index, {at} z) {{
{_indent(epi_lines, 4)}
{_indent(stores, 4)}
}}
"""
    if I != 1:
        split = 0
    elif step.is_normalisation:  # only where normalisation_split offers it, and only when asked (off in the defaults)
        split = int(p["SPLIT"]) if normalisation_split(step) else 0
    else:
        split = int(p["SPLIT"]) if p["SPLIT"] else default_split(step)
    c_params, spec = launcher_signature(plist)
    assign = "\n".join(f"    p.{q.buffer} = {q.buffer};" for q in plist)
    vectors = vector_loads(step) if int(p.get("VEC") or 1) > 1 else {}  # the VEC tunable: reduce_vectors
    if step.reduction in SCANS:
        body, launch = _scan(step, p, it, at, tag)
    elif I != 1:
        body, launch = _columns(step, p, it, at, acc, tag)
    elif split:
        body, launch = _split(step, it, at, acc, tag, split, vectors)
        c_params += (", " if c_params else "") + "unsigned char* scratch"
        spec += (", " if spec else "") + "u8*"
        assign += "\n    p.scratch = scratch;"
        helpers = helpers.replace(f"struct P_{tag} {{", f"struct P_{tag} {{\n    unsigned char* scratch;", 1)
    else:
        body, launch = _rows(step, p, it, at, acc, tag, vectors)
    source = f"""{helpers}{body}
extern "C" int kw_launch_{tag}({c_params}{", " if c_params else ""}cudaStream_t stream) {{
    P_{tag} p;
{assign}
{launch}
    return (int)cudaGetLastError();
}}
"""
    return StepKernel(tag, source, f"kw_launch_{tag}", spec, tuple(q.buffer for q in plist),
                      scratch_bytes=O * split * SCRATCH_PER_ACC if split else 0)


def _rows(step: ReductionStep, p: Mapping[str, Any], it: str, at: str, acc: str, tag: str,
          vectors: Mapping[int, Load]) -> tuple[str, str]:
    """A block (or with RPB, a warp) a row. `vectors` (the VEC tunable) apply to rows too long to cache, streamed
    once or twice (statistics, then the write) by the one-pass kernel."""
    O, R = step.outer, step.reduce  # noqa: E741 - outer, reduce, inner extents
    cluster = int(p["CLUSTER"])
    needed = cluster_size(step, 8 if at == "double" else 4)
    if cluster and needed and cluster >= needed:
        return _cluster_rows(step, p, it, at, acc, tag, cluster)
    tpr = int(p["TPR"]) or default_tpr(R)
    rpb = (int(p["RPB"]) or default_rpb(R)) if tpr == 32 else 1  # several rows per block only for warp-per-row
    items = -(-R // tpr)
    cached = step.is_normalisation and items <= MAX_CACHED_ITEMS and bool(int(p["CACHE"]))
    if cached:
        vectors = {}  # a cached row is read once, in registers
    if cached and step.reduction in TWO_PASS_KINDS and bool(int(p["TWOPASS"])):
        gather, finish = _two_pass_from_registers(step, it, at, tag)
    else:
        gather, finish = _one_pass(step, it, at, acc, tag, cached, vectors)
    body = f"""{vector_prologue(step, it, at, tag, vectors) if vectors else ""}#define KW_{tag}_TPR {tpr}
#define KW_{tag}_RPB {rpb}
#define KW_{tag}_ITEMS {items}
#define KW_{tag}_CACHED {int(cached)}
{_template(vectors)}__global__ void __launch_bounds__(KW_{tag}_TPR * KW_{tag}_RPB) kw_{tag}(P_{tag} p) {{
    const int lane = threadIdx.x;
    const {it} row = ({it})blockIdx.x * KW_{tag}_RPB + threadIdx.y;
    if (row >= ({it}){O}) return;  // uniform per block when TPR > 32 (RPB is 1 then)
{gather}
{finish}
}}"""
    launch = f"""    dim3 block(KW_{tag}_TPR, KW_{tag}_RPB);
{_launch(f"kw_{tag}", f"(unsigned)(({O}LL + KW_{tag}_RPB - 1) / KW_{tag}_RPB), block", vectors)}"""
    return body, launch


def cluster_size(step: ReductionStep, element_bytes: int = 4) -> int:
    """The smallest cluster whose blocks hold a slice of the row each in shared memory; 0 where the row fits in
    registers (it is read once already), is no normalisation row, or is too long for any cluster."""
    if not _normalisation_rows(step) or -(-step.reduce // default_tpr(step.reduce)) <= MAX_CACHED_ITEMS:
        return 0
    return next((c for c in CLUSTER_CHOICES if -(-step.reduce // c) * element_bytes <= CLUSTER_SLICE_BYTES), 0)


def _cluster_rows(step: ReductionStep, p: Mapping[str, Any], it: str, at: str, acc: str, tag: str,
                  cluster: int) -> tuple[str, str]:
    """One row per cluster of `cluster` blocks: each block reads its slice once into shared memory while pushing
    it into the accumulator; the blocks' partials are merged through distributed shared memory (every block in
    the same order, so all get the same statistics); then each writes its slice from shared memory."""
    O, R = step.outer, step.reduce  # noqa: E741 - outer, reduce extents
    slice_len = -(-R // cluster)
    tpr = int(p["TPR"]) or default_tpr(slice_len)
    push = _push_value(step, "v", at)
    stats, z = _stats_and_z(step, at)
    body = f"""#include <cooperative_groups.h>
#define KW_{tag}_TPR {tpr}
#define KW_{tag}_CL {cluster}
#define KW_{tag}_SLICE {slice_len}
__global__ void __launch_bounds__(KW_{tag}_TPR) kw_{tag}(P_{tag} p) {{  // launched in clusters of KW_{tag}_CL
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    extern __shared__ __align__(16) unsigned char kw_{tag}_smem[];
    {at}* cache = reinterpret_cast<{at}*>(kw_{tag}_smem);
    __shared__ {acc} part;
    const int lane = threadIdx.x;
    const {it} row = ({it})(blockIdx.x / KW_{tag}_CL);
    const int start = (int)cluster.block_rank() * KW_{tag}_SLICE;
    const int stop = min((int){R}, start + KW_{tag}_SLICE);
    {acc} a; a.init();
{_strided_loop("int", "start + lane", "stop", f"KW_{tag}_TPR", at, f"kw_{tag}_pro(p, row * ({it}){R} + r)",
               f"cache[r - start] = v; a.push({push}, r);")}
    a = kw_block_reduce_x<{acc}, KW_{tag}_TPR, 1>(a);
    if (lane == 0) part = a;
    cluster.sync();
    a.init();
    for (unsigned b = 0; b < KW_{tag}_CL; ++b) a.merge(*cluster.map_shared_rank(&part, b));
    cluster.sync();  // no block leaves (freeing its shared memory) before every block has read its partial
{_indent(stats, 4)}
#pragma unroll 4
    for (int r = start + lane; r < stop; r += KW_{tag}_TPR) {{
        const {at} v = cache[r - start];
        kw_{tag}_epi(p, row * ({it}){R} + r, 0, 0, {z});
    }}
#else
    __trap();  // clusters need sm_90: the harness rejects this setting on an older GPU
#endif
}}"""
    launch = f"""    const int smem = KW_{tag}_SLICE * (int)sizeof({at});
    cudaFuncSetAttribute(kw_{tag}, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    cudaLaunchConfig_t cfg = {{}};
    cfg.gridDim = dim3((unsigned)({O}LL * KW_{tag}_CL));
    cfg.blockDim = dim3(KW_{tag}_TPR);
    cfg.dynamicSmemBytes = (size_t)smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = KW_{tag}_CL;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    const cudaError_t launched = cudaLaunchKernelEx(&cfg, kw_{tag}, p);
    if (launched != cudaSuccess) return (int)launched;  // e.g. no room for a cluster of this size"""
    return body, launch


def _strided_loop(ty: str, start: str, stop: str, stride: str, at: str, value: str, use: str) -> str:
    """`for (ty r = start; r < stop; r += stride) { const at v = value; use }`, with LOAD_BATCH values loaded before
    any is used (see LOAD_BATCH); `value` and `use` name the index `r`, `use` the value `v`. Indented 4."""
    b = LOAD_BATCH
    return f"""    {{
        {ty} r0 = {start};
        for (; r0 + ({ty})({b - 1}) * ({stride}) < {stop}; r0 += ({ty})({b}) * ({stride})) {{
            {at} vs[{b}];
#pragma unroll
            for (int u = 0; u < {b}; ++u) {{ const {ty} r = r0 + ({ty})u * ({stride}); vs[u] = {value}; }}
#pragma unroll
            for (int u = 0; u < {b}; ++u) {{ const {ty} r = r0 + ({ty})u * ({stride}); const {at} v = vs[u]; {use} }}
        }}
        for ({ty} r = r0; r < {stop}; r += {stride}) {{ const {at} v = {value}; {use} }}
    }}"""


def _one_pass(step: ReductionStep, it: str, at: str, acc: str, tag: str, cached: bool,
              vectors: Mapping[int, Load]) -> tuple[str, str]:
    """One accumulator over the row (online where the kind has one), merged across the block (VEC_WIDTH at a time
    with `vectors`, uncached only); normalisations then write from the cached values or re-read the row."""
    R = step.reduce
    push = _push_value(step, "v", at)
    if cached:
        load = f"""    {at} vals[KW_{tag}_ITEMS];
#pragma unroll
    for (int k = 0; k < KW_{tag}_ITEMS; ++k) {{
        const int r = lane + k * KW_{tag}_TPR;
        if (r < {R}) {{ const {at} v = kw_{tag}_pro(p, row * ({it}){R} + r); vals[k] = v; a.push({push}, r); }}
    }}"""
    else:
        load = _row_loop("int", "lane", f"{VEC_WIDTH} * lane", str(R), f"KW_{tag}_TPR", f"row * ({it}){R}", at, tag,
                         f"a.push({push}, r);", vectors)
    gather = f"""    {acc} a; a.init();
{load}
    a = kw_block_reduce_x<{acc}, KW_{tag}_TPR, KW_{tag}_RPB>(a);"""
    if not step.is_normalisation:
        value, index = _final(step, at)
        return gather, f"    if (lane == 0) kw_{tag}_epi(p, row, {value}, {index}, 0);"
    stats, z = _stats_and_z(step, at)
    if cached:
        write = f"""#pragma unroll
    for (int k = 0; k < KW_{tag}_ITEMS; ++k) {{
        const int r = lane + k * KW_{tag}_TPR;
        if (r < {R}) {{ const {at} v = vals[k]; kw_{tag}_epi(p, row * ({it}){R} + r, 0, 0, {z}); }}
    }}"""
    else:  # one element per load and store whatever VEC says: a thread's W consecutive values stored one by one
        # made each warp store span 512 bytes, and with every VEC on the H100 fixtures ran 0.53x-0.73x of the
        # defaults (session 19); the statistics' loop keeps the vector loads
        write = _strided_loop("int", "lane", str(R), f"KW_{tag}_TPR", at, f"kw_{tag}_pro(p, row * ({it}){R} + r)",
                              f"kw_{tag}_epi(p, row * ({it}){R} + r, 0, 0, {z});")
    return gather, _indent(stats, 4) + "\n" + write


def _two_pass_from_registers(step: ReductionStep, it: str, at: str, tag: str) -> tuple[str, str]:
    """Softmax, log-softmax and layer norm over a row cached in registers: max (or mean) first, then the sum
    of exponentials (or of squared deviations) from the cached values. One exp per element for softmax (the
    online accumulator takes up to two per push and the write a third) and no per-element division for
    layer norm (Welford divides on every push), for the price of a second block reduction."""
    R, kind = step.reduce, step.reduction

    def loop(body: str) -> str:
        return (f"#pragma unroll\n    for (int k = 0; k < KW_{tag}_ITEMS; ++k) {{\n"
                f"        const int r = lane + k * KW_{tag}_TPR;\n        if (r < {R}) {{ {body} }}\n    }}\n")

    def reduce(var: str, acc: str) -> str:
        return f"    {var} = kw_block_reduce_x<{acc}, KW_{tag}_TPR, KW_{tag}_RPB>({var});\n"

    total = f"KwSum<{at}>"
    load = f"vals[k] = kw_{tag}_pro(p, row * ({it}){R} + r);"
    gather = f"    {at} vals[KW_{tag}_ITEMS];\n"
    if kind == "layer_norm":
        eps = lit(step.attr("eps", 1e-5), at)
        gather += (f"    {total} a; a.init();\n" + loop(load + " a.push(vals[k], r);") + reduce("a", total)
                   + f"    const {at} mu = a.s / ({at}){R};\n"
                   + f"    {total} d; d.init();\n" + loop(f"const {at} c = vals[k] - mu; d.push(c * c, r);")
                   + reduce("d", total) + f"    const {at} rstd = ({at})1 / sqrt(d.s / ({at}){R} + {eps});")
        z = "(vals[k] - mu) * rstd"
    else:
        gather += (f"    KwMax<{at}> a; a.init();\n" + loop(load + " a.push(vals[k], r);") + reduce("a", f"KwMax<{at}>")
                   + f"    const {at} mx = a.m;\n    {total} s; s.init();\n")
        if kind == "softmax":
            gather += (loop("vals[k] = kw_exp(vals[k] - mx); s.push(vals[k], r);") + reduce("s", total)
                       + f"    const {at} inv = ({at})1 / s.s;")
            z = "vals[k] * inv"
        else:
            gather += (loop("s.push(kw_exp(vals[k] - mx), r);") + reduce("s", total)
                       + f"    const {at} lse = mx + log(s.s);")
            z = "vals[k] - lse"
    finish = loop(f"kw_{tag}_epi(p, row * ({it}){R} + r, 0, 0, {z});").rstrip("\n")
    return gather, finish


def _columns(step: ReductionStep, p: Mapping[str, Any], it: str, at: str, acc: str, tag: str) -> tuple[str, str]:
    O, R, I = step.outer, step.reduce, step.inner  # noqa: E741 - outer, reduce, inner extents
    cy = max(1, min(int(p["CY"]) or default_cy(step), 32))
    push = _push_value(step, "v", at)
    element = f"(o * ({it}){R} + r) * ({it}){I} + i"
    if step.is_normalisation:
        stats, z = _stats_and_z(step, at)
        finish = _indent(stats, 4) + "\n    if (live)\n" + _strided_loop(
            "int", "(int)threadIdx.y", str(R), f"KW_{tag}_CY", at, f"kw_{tag}_pro(p, {element})",
            f"kw_{tag}_epi(p, {element}, 0, 0, {z});")
    else:
        value, index = _final(step, at)
        finish = f"    if (live && threadIdx.y == 0) kw_{tag}_epi(p, o * ({it}){I} + i, {value}, {index}, 0);"
    tiles = -(-I // 32)
    body = f"""#define KW_{tag}_CY {cy}
__global__ void __launch_bounds__(32 * KW_{tag}_CY) kw_{tag}(P_{tag} p) {{
    const {it} o = ({it})blockIdx.x / {tiles};
    const {it} i = ({it})(blockIdx.x % {tiles}) * 32 + threadIdx.x;
    const bool live = i < ({it}){I};
    {acc} a; a.init();
    if (live)
{_strided_loop("int", "(int)threadIdx.y", str(R), f"KW_{tag}_CY", at, f"kw_{tag}_pro(p, {element})",
               f"a.push({push}, r);")}
    __shared__ {acc} part[KW_{tag}_CY][32];
    part[threadIdx.y][threadIdx.x] = a;
    __syncthreads();
    a.init();
#pragma unroll
    for (int y = 0; y < KW_{tag}_CY; ++y) a.merge(part[y][threadIdx.x]);
{finish}
}}"""
    launch = f"""    dim3 block(32, KW_{tag}_CY);
    kw_{tag}<<<(unsigned)({O}LL * {tiles}LL), block, 0, stream>>>(p);"""
    return body, launch


def _split(step: ReductionStep, it: str, at: str, acc: str, tag: str, split: int,
           vectors: Mapping[int, Load]) -> tuple[str, str]:
    """Few long rows: SPLIT blocks a row push a chunk each into a partial, then one block a row merges them (or, for a
    normalisation, every block merges them and writes its chunk: _split_apply). With `vectors` (reduce_vectors: the
    VEC tunable), those prologue loads come VEC_WIDTH at a time, the chunks rounded to VEC_WIDTH elements."""
    O, R = step.outer, step.reduce  # noqa: E741 - outer, reduce, inner extents
    tpr = 256
    chunk = -(-R // split)
    if vectors:
        chunk = -(-chunk // VEC_WIDTH) * VEC_WIDTH
    push = _push_value(step, "v", at)
    loop = _row_loop(it, "start + threadIdx.x", f"start + ({it}){VEC_WIDTH} * ({it})threadIdx.x", "stop", str(tpr),
                     f"row * ({it}){R}", at, tag, f"a.push({push}, (long long)r);", vectors)
    body = f"""{vector_prologue(step, it, at, tag, vectors) if vectors else ""}#define KW_{tag}_SPLIT {split}
#define KW_{tag}_CHUNK {chunk}
{_template(vectors)}__global__ void __launch_bounds__({tpr}) kw_{tag}_part(P_{tag} p) {{
    const {it} row = ({it})blockIdx.x / KW_{tag}_SPLIT;
    const {it} part = ({it})blockIdx.x % KW_{tag}_SPLIT;
    const {it} start = part * ({it})KW_{tag}_CHUNK;
    {it} stop = start + ({it})KW_{tag}_CHUNK;
    if (stop > ({it}){R}) stop = ({it}){R};
    {acc} a; a.init();
{loop}
    a = kw_block_reduce_x<{acc}, {tpr}, 1>(a);
    if (threadIdx.x == 0) reinterpret_cast<{acc}*>(p.scratch)[blockIdx.x] = a;
}}"""
    launch_part = _launch(f"kw_{tag}_part", f"(unsigned)({O}LL * KW_{tag}_SPLIT), {tpr}", vectors)
    if step.is_normalisation:
        return _split_apply(step, it, at, acc, tag, tpr, body, launch_part)
    value, index = _final(step, at)
    body += f"""
__global__ void __launch_bounds__(256) kw_{tag}_merge(P_{tag} p) {{
    const {it} row = blockIdx.x;
    {acc} a; a.init();
    for (int s = threadIdx.x; s < KW_{tag}_SPLIT; s += 256) a.merge(reinterpret_cast<const {acc}*>(p.scratch)[row * KW_{tag}_SPLIT + s]);
    a = kw_block_reduce_x<{acc}, 256, 1>(a);
    if (threadIdx.x == 0) kw_{tag}_epi(p, row, {value}, {index}, 0);
}}"""
    return body, f"{launch_part}\n    kw_{tag}_merge<<<(unsigned){O}, 256, 0, stream>>>(p);"


def _split_apply(step: ReductionStep, it: str, at: str, acc: str, tag: str, tpr: int, part: str,
                 launch_part: str) -> tuple[str, str]:
    """A normalisation's second kernel after the partials (`part`, launched by `launch_part`): as many blocks as the
    first, each merging its row's partials in one order (so every block of a row gets the same statistics) and
    writing its chunk, one element per load and store whatever VEC says (as _one_pass's write)."""
    O, R = step.outer, step.reduce  # noqa: E741 - outer, reduce extents
    stats, z = _stats_and_z(step, at)
    write = _strided_loop(it, "start + threadIdx.x", "stop", str(tpr), at, f"kw_{tag}_pro(p, row * ({it}){R} + r)",
                          f"kw_{tag}_epi(p, row * ({it}){R} + r, 0, 0, {z});")
    body = part + f"""
__global__ void __launch_bounds__({tpr}) kw_{tag}_apply(P_{tag} p) {{
    const {it} row = ({it})blockIdx.x / KW_{tag}_SPLIT;
    const {it} start = (({it})blockIdx.x % KW_{tag}_SPLIT) * ({it})KW_{tag}_CHUNK;
    {it} stop = start + ({it})KW_{tag}_CHUNK;
    if (stop > ({it}){R}) stop = ({it}){R};
    {acc} a; a.init();
    for (int s = threadIdx.x; s < KW_{tag}_SPLIT; s += {tpr}) a.merge(reinterpret_cast<const {acc}*>(p.scratch)[row * KW_{tag}_SPLIT + s]);
    a = kw_block_reduce_x<{acc}, {tpr}, 1>(a);
{_indent(stats, 4)}
{write}
}}"""
    return body, f"{launch_part}\n    kw_{tag}_apply<<<(unsigned)({O}LL * KW_{tag}_SPLIT), {tpr}, 0, stream>>>(p);"


def _row_loop(ty: str, scalar_first: str, vector_first: str, stop: str, threads: str, row_base: str, at: str, tag: str,
              use: str, vectors: Mapping[int, Load]) -> str:
    """A thread's loop over its part of a row (`use` naming the element `r` and its prologue value `v`): one
    element per load, LOAD_BATCH in flight (_strided_loop), or with `vectors` also VEC_WIDTH at a time from
    `vector_first` (reduce_vectors.vector_loop), the kernel's KW_VEC flag choosing."""
    scalar = _strided_loop(ty, scalar_first, stop, threads, at, f"kw_{tag}_pro(p, {row_base} + r)", use)
    if not vectors:
        return scalar
    return with_scalar_fallback(vector_loop(ty, vector_first, stop, threads, row_base, at, tag, use), scalar)


def _template(vectors: Mapping[int, Load]) -> str:
    return "template <bool KW_VEC>\n" if vectors else ""


def _launch(kernel: str, config: str, vectors: Mapping[int, Load]) -> str:
    """`kernel<<<config, 0, stream>>>(p)`, or with `vectors` its vector instance where the operands are aligned and
    its scalar one otherwise."""
    if not vectors:
        return f"    {kernel}<<<{config}, 0, stream>>>(p);"
    return (f"    if ({aligned_check(vectors)}) {kernel}<true><<<{config}, 0, stream>>>(p);\n"
            f"    else {kernel}<false><<<{config}, 0, stream>>>(p);")


def _scan(step: ReductionStep, p: Mapping[str, Any], it: str, at: str, tag: str) -> tuple[str, str]:
    """Inclusive prefix sum (cumsum) or product (cumprod): rows (inner == 1) block-wide in tiles of TPR x ITEMS
    (thread-local runs, a warp-shuffle scan of the thread totals, a carry across tiles); columns one thread per
    (outer, inner)."""
    O, R, I = step.outer, step.reduce, step.inner  # noqa: E741 - outer, reduce, inner extents
    prod = step.reduction == "cumprod"
    one, mul = (f"({at})1", "*=") if prod else ("0", "+=")
    if I != 1:
        body = f"""__global__ void __launch_bounds__(256) kw_{tag}(P_{tag} p) {{
    const {it} t = ({it})blockIdx.x * 256 + threadIdx.x;
    if (t >= ({it}){O} * ({it}){I}) return;
    const {it} o = t / ({it}){I}, i = t % ({it}){I};
    {at} run = {one};
    for (int r = 0; r < {R}; ++r) {{
        const {it} l = (o * ({it}){R} + r) * ({it}){I} + i;
        run {mul} kw_{tag}_pro(p, l);
        kw_{tag}_epi(p, l, 0, 0, run);
    }}
}}"""
        return body, f"    kw_{tag}<<<(unsigned)(({O}LL * {I}LL + 255) / 256), 256, 0, stream>>>(p);"
    tpr = int(p.get("TPR") or 0) or min(1024, max(64, 1 << max(0, (-(-R // 8) - 1).bit_length())))
    tpr = max(32, tpr)
    items = int(p.get("ITEMS") or 8)
    staged = bool(int(p.get("STAGE") or 0)) and scan_stage_fits(tpr, items, at)
    if prod:  # no inverse to subtract a thread's own run with (zeros): the previous lane's inclusive product
        exclusive = [f"{at} excl = __shfl_up_sync(KW_FULL, inc, 1);", f"if (lane == 0) excl = {one};"]
        offset = "carry * before * excl"
    else:
        exclusive, offset = [], "carry + before + inc - run"
    excl_text = "".join(f"\n        {line}" for line in exclusive)
    scanned = "offset * v[k]" if prod else "offset + v[k]"
    element = f"row * ({it}){R} + r"
    if staged:  # striped through shared memory: every warp load and store is one contiguous run of the row
        stage_decl = f"\n    __shared__ {at} stage[KW_{tag}_SLOT(KW_{tag}_TPR * KW_{tag}_ITEMS)];"
        gather = f"""        {at} x[KW_{tag}_ITEMS];
#pragma unroll
        for (int k = 0; k < KW_{tag}_ITEMS; ++k) {{
            const int r = base + k * KW_{tag}_TPR + (int)threadIdx.x;
            x[k] = r < {R} ? kw_{tag}_pro(p, {element}) : ({at}){one};
        }}
#pragma unroll
        for (int k = 0; k < KW_{tag}_ITEMS; ++k) stage[KW_{tag}_SLOT(k * KW_{tag}_TPR + (int)threadIdx.x)] = x[k];
        __syncthreads();
        const int own = (int)threadIdx.x * KW_{tag}_ITEMS;
        {at} run = {one}, v[KW_{tag}_ITEMS];
#pragma unroll
        for (int k = 0; k < KW_{tag}_ITEMS; ++k) {{
            run {mul} stage[KW_{tag}_SLOT(own + k)];
            v[k] = run;
        }}"""
        # each thread rewrites only the slots it read; the next tile's striped writes touch only the slots the
        # same thread reads back here, so no barrier closes the tile
        scatter = f"""#pragma unroll
        for (int k = 0; k < KW_{tag}_ITEMS; ++k) stage[KW_{tag}_SLOT(own + k)] = {scanned};
        __syncthreads();
#pragma unroll
        for (int k = 0; k < KW_{tag}_ITEMS; ++k) {{
            const int r = base + k * KW_{tag}_TPR + (int)threadIdx.x;
            if (r < {R}) kw_{tag}_epi(p, {element}, 0, 0, stage[KW_{tag}_SLOT(k * KW_{tag}_TPR + (int)threadIdx.x)]);
        }}"""
        slot = f"\n#define KW_{tag}_SLOT(j) ((j) + (j) / 32)  // a pad word every 32: blocked reads skip bank conflicts"
    else:  # each thread loads its own ITEMS consecutive elements (warp accesses strided by ITEMS)
        stage_decl, slot = "", ""
        gather = f"""        const int start = base + (int)threadIdx.x * KW_{tag}_ITEMS;
        {at} run = {one}, v[KW_{tag}_ITEMS];
#pragma unroll
        for (int k = 0; k < KW_{tag}_ITEMS; ++k) {{
            const int r = start + k;
            run {mul} r < {R} ? kw_{tag}_pro(p, {element}) : ({at}){one};
            v[k] = run;
        }}"""
        scatter = f"""#pragma unroll
        for (int k = 0; k < KW_{tag}_ITEMS; ++k) {{
            const int r = start + k;
            if (r < {R}) kw_{tag}_epi(p, {element}, 0, 0, {scanned});
        }}"""
    body = f"""#define KW_{tag}_TPR {tpr}
#define KW_{tag}_ITEMS {items}{slot}
__global__ void __launch_bounds__(KW_{tag}_TPR) kw_{tag}(P_{tag} p) {{
    const {it} row = blockIdx.x;
    __shared__ {at} warp_total[KW_{tag}_TPR / 32];{stage_decl}
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    {at} carry = {one};
    for (int base = 0; base < {R}; base += KW_{tag}_TPR * KW_{tag}_ITEMS) {{
{gather}
        {at} inc = run;
#pragma unroll
        for (int off = 1; off < 32; off <<= 1) {{
            const {at} y = __shfl_up_sync(KW_FULL, inc, off);
            if (lane >= off) inc {mul} y;
        }}{excl_text}
        if (lane == 31) warp_total[warp] = inc;
        __syncthreads();
        {at} before = {one}, tile = {one};
        for (int w = 0; w < KW_{tag}_TPR / 32; ++w) {{
            const {at} t = warp_total[w];
            if (w < warp) before {mul} t;
            tile {mul} t;
        }}
        __syncthreads();
        const {at} offset = {offset};
{scatter}
        carry {mul} tile;
    }}
}}"""
    return body, f"    kw_{tag}<<<(unsigned){O}, KW_{tag}_TPR, 0, stream>>>(p);"


def scan_stage_fits(tpr: int, items: int, at: str) -> bool:
    """Whether a row scan's tile, padded a word every 32, fits the 48 KB of static shared memory a block may
    declare (the STAGE tunable falls back to direct loads where it does not)."""
    n = tpr * items
    return (n + n // 32) * (8 if at == "double" else 4) <= 48 * 1024
