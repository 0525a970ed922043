"""CUDA for a GEMM step: a CUTLASS tensor-core GEMM the candidate builds, or a matrix-vector kernel.

The main loop is CUTLASS's (the 2.x device-level GemmUniversal for SM80 tensor cores, which runs on sm_90a):
fp32 operands use its 3xTF32 "fast accurate" arithmetic (OpMultiplyAddFastF32: each operand split into a
TF32 big and small part, three tensor-core products, fp32 accumulation), so fp32 problems run on tensor cores
at fp32 accuracy; bf16 and fp16 run natively with fp32 accumulation. Nothing here writes MMA code. Where the
run's precision profile admits TF32 (Plan.allow_tf32: the kernelbench profile), an fp32 GEMM has a further
tunable, MATH: "tf32" (the default there: CUTLASS's fp32 tensor-op GEMM with OpMultiplyAdd, which feeds the
tensor cores TF32 operands and accumulates in fp32, one product instead of three) or "f32x3" (the split).

The source of one GEMM depends only on its configuration (dtype, operand orders, vector alignments, tile,
stages): sizes, leading dimensions, batch strides, split-K and the triangle are launcher arguments. So one
instantiation serves every problem with the same configuration, and the compile cache (keyed by source)
builds it once. The kernel is a `__global__` of our own (kw_gemm_...) around CUTLASS's kernel body, so
traces name it, and a triangle's tiles that lie wholly outside the triangle return before any work.

A matrix-vector product (N = 1 with contiguous matrix rows, or M = 1 with contiguous columns of B) is
memory-bound: a block per output row streams the row with 16-byte loads and reduces in registers and shared
memory, at the DRAM floor instead of a tensor-core tile that would be mostly padding.

Tunables, per step: MAIN (fp32 at fp32 accuracy, compute-bound only: "sm80", this kernel, or one of
gemm_sm90_split's configurations ("sm90w", "sm90c", "sm90"), the Hopper split, one TF32 wgmma GEMM over split
operands, fastest first on an H100; the first is the fill's first neighbour),
TILE (threadblock and warp tile), STAGES (cp.async pipeline depth), SPLITK (serial split-K slices, for few output
tiles over a long K), MATH (fp32 under a TF32-allowing profile only); for matrix-vector steps TPR (threads per row).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kernelwright.agents.offline.codegen_elementwise import StepKernel
from kernelwright.agents.offline.gemm_plan import ELEMENT_BYTES, GemmLaunch, gemm_launch
from kernelwright.agents.offline.gemm_sm90_split import (
    SM90_CONFIGS,
    SM90_SPLIT_SPEC,
    sm90_split_cuda,
    sm90_split_launcher,
)
from kernelwright.agents.offline.gemm_sm90_split import pieces as sm90_pieces
from kernelwright.agents.offline.gemm_sm90_split import scratch_bytes as sm90_scratch_bytes
from kernelwright.agents.offline.ir import Buffer, GemmStep
from kernelwright.agents.offline.ops import SPEC, STORAGE_CTYPE

SM_COUNT_GUESS = 132  # H100 / H200 SXM; only the split-K default uses it (the tuner measures the rest)
SMEM_LIMIT = 227 * 1024  # bytes of shared memory one block may have on sm_90
GEMM_HEADERS = ("cutlass",)  # what load_cuda must add for these sources (tools.compile.header_libraries)


@dataclass(frozen=True, slots=True)
class Tile:
    """Threadblock tile (m, n, k) and warp tile (m, n; the warp's k is the block's)."""

    m: int
    n: int
    k: int
    warp_m: int
    warp_n: int

    @classmethod
    def parse(cls, text: str) -> Tile:
        block, warp = text.split("_")
        m, n, k = (int(v) for v in block.split("x"))
        wm, wn, _ = (int(v) for v in warp.split("x"))
        return cls(m, n, k, wm, wn)

    def __str__(self) -> str:
        return f"{self.m}x{self.n}x{self.k}_{self.warp_m}x{self.warp_n}x{self.k}"

    def smem_bytes(self, stages: int, element_bytes: int) -> int:
        return stages * (self.m * self.k + self.k * self.n) * element_bytes


@dataclass(frozen=True, slots=True)
class MathMode:
    """How a dtype's GEMM runs on tensor cores."""

    tag: str
    element: str  # CUTLASS element type
    instruction: tuple[int, int, int]
    operator: str
    element_bytes: int
    tiles: tuple[str, ...]  # the TILE choices, the default first
    default_stages: int


# Tiles whose warps fit the register file without spills (ptxas -v on sm_90a, nvcc 13): with 3xTF32 a 64x64
# warp tile spills (each operand fragment is held twice, big and small), so fp32 warps are 64x32 or smaller.
MATH: dict[str, MathMode] = {
    "float32": MathMode("f32x3", "float", (16, 8, 8), "cutlass::arch::OpMultiplyAddFastF32", 4,
                        ("128x64x16_64x32x16", "128x128x16_64x32x16", "64x128x16_32x64x16", "256x64x16_64x32x16",
                         "128x64x32_64x32x32", "64x64x16_32x32x16", "64x64x32_32x32x32"), 3),
    "bfloat16": MathMode("bf16", "cutlass::bfloat16_t", (16, 8, 16), "cutlass::arch::OpMultiplyAdd", 2,
                         ("128x128x32_64x64x32", "128x256x32_64x64x32", "256x128x32_64x64x32", "64x128x32_32x64x32",
                          "128x64x32_64x32x32", "64x64x32_32x32x32", "128x128x64_64x64x64"), 4),
    "float16": MathMode("f16", "cutlass::half_t", (16, 8, 16), "cutlass::arch::OpMultiplyAdd", 2,
                        ("128x128x32_64x64x32", "128x256x32_64x64x32", "256x128x32_64x64x32", "64x128x32_32x64x32",
                         "128x64x32_64x32x32", "64x64x32_32x32x32", "128x128x64_64x64x64"), 4),
}
# Plain TF32 for fp32 operands (only where the precision profile allows it): the fp32 tiles (each fragment held
# once, so they fit the register file with room to spare).
TF32_MATH = MathMode("tf32", "float", (16, 8, 8), "cutlass::arch::OpMultiplyAdd", 4, MATH["float32"].tiles,
                     MATH["float32"].default_stages)
MATH_CHOICES = ("tf32", "f32x3")  # an fp32 GEMM's MATH tunable under a TF32-allowing profile, the default first
STAGE_CHOICES = (3, 4, 5)
# An fp32 GEMM's main loop at fp32 accuracy: CUTLASS 2.x's SM80 3xTF32 kernel (the default, tiles and stages tunable)
# or the Hopper split (gemm_sm90_split: one TF32 wgmma GEMM over split operands, in one of its SM90_CONFIGS). First
# in the GEMM's tunables, so agents.offline_fill's first neighbour tries the fastest Hopper configuration. On an H100
# (session 18) "sm90" won one of KernelBench's five fp32 GEMMs it met: not the default. "sm90w" and "sm90c" were
# 11% faster than it on 4096^3 (session 19) but have not yet run in the bench.
MAIN_CHOICES = ("sm80", *SM90_CONFIGS)
# Below this many flops per byte of A, B and C, MAIN is not offered (sm90_split_may_pay): well under the TF32 tensor
# cores' ridge (~140 on an H100) and above KernelBench's memory-bound GEMMs (small K: 32, tall-skinny: 16).
SM90_MIN_FLOPS_PER_BYTE = 64
SPLITK_CHOICES = (1, 2, 4, 8, 16, 32, 64)
TPR_CHOICES = (64, 128, 256, 512, 1024)
SMALL_TILE = {"float32": "64x64x16_32x32x16", "bfloat16": "64x64x32_32x32x32", "float16": "64x64x32_32x32x32"}


# ---------------------------------------------------------------- tunables

def launch_of(step: GemmStep, buffers: Mapping[str, Buffer]) -> GemmLaunch:
    launch = gemm_launch(step, buffers)
    if launch is None:  # gemm_plan makes GemmSteps only where this holds
        raise ValueError(f"{step.name}: operands are not row- or column-major matrices")
    return launch


def default_tile(launch: GemmLaunch) -> str:
    mode = MATH[launch.dtype]
    return SMALL_TILE[launch.dtype] if min(launch.m, launch.n) <= 64 else mode.tiles[0]


def split_choices(launch: GemmLaunch) -> tuple[int, ...]:
    """Serial split-K slices worth trying: only for a single product, each slice keeping 32+ of K."""
    if launch.batch > 1 or launch.triangle:
        return (1,)
    return tuple(s for s in SPLITK_CHOICES if s == 1 or launch.k >= 32 * s)


def default_split(launch: GemmLaunch, tile: Tile) -> int:
    """Enough slices that the output tiles times the slices cover the SMs about twice, each slice 16+ K-steps."""
    choices = split_choices(launch)
    tiles = -(-launch.m // tile.m) * -(-launch.n // tile.n)
    split = 1
    while (split * 2 in choices and tiles * split * 2 <= 2 * SM_COUNT_GUESS
           and launch.k // (split * 2) >= 16 * tile.k):
        split *= 2
    return split


def default_tpr(launch: GemmLaunch) -> int:
    k = launch.k
    tpr = 64
    while tpr < 512 and tpr * 32 < k:
        tpr *= 2
    return tpr


def math_mode(dtype: str, params: Mapping[str, Any], allow_tf32: bool = False) -> MathMode:
    """The step's math: plain TF32 for fp32 where the profile allows it and MATH does not ask for the split."""
    if allow_tf32 and dtype == "float32" and params.get("MATH", MATH_CHOICES[0]) == TF32_MATH.tag:
        return TF32_MATH
    return MATH[dtype]


def math_text(mode: MathMode, dtype: str) -> str:
    """The arithmetic a kernel's source comment names (GEMMs and convolutions alike)."""
    return {"f32x3": "3xTF32: fp32 accuracy", "tf32": "TF32 operands, fp32 accumulation"}.get(
        mode.tag, f"{dtype}, fp32 accumulation")


def gemm_dims(step: GemmStep, buffers: Mapping[str, Buffer],
              allow_tf32: bool = False) -> list[tuple[str, tuple[Any, ...], Any]]:
    """(name, choices, default) of the step's tunables (space.plan_space wraps them as TuneDims). `allow_tf32`
    (Plan.allow_tf32): an fp32 GEMM also gets MATH (plain TF32 or the split)."""
    launch = launch_of(step, buffers)
    if launch.gemv:
        return [(f"{step.name}.TPR", TPR_CHOICES, default_tpr(launch))]
    mode = MATH[launch.dtype]
    tile = default_tile(launch)
    dims: list[tuple[str, tuple[Any, ...], Any]] = []
    if sm90_split_fits(launch, allow_tf32) and sm90_split_may_pay(launch):
        dims.append((f"{step.name}.MAIN", MAIN_CHOICES, MAIN_CHOICES[0]))
    dims += [(f"{step.name}.TILE", mode.tiles, tile), (f"{step.name}.STAGES", STAGE_CHOICES, mode.default_stages)]
    splits = split_choices(launch)
    if len(splits) > 1:
        dims.append((f"{step.name}.SPLITK", splits, default_split(launch, Tile.parse(tile))))
    if allow_tf32 and launch.dtype == "float32":
        dims.append((f"{step.name}.MATH", MATH_CHOICES, MATH_CHOICES[0]))
    return dims


# ---------------------------------------------------------------- kernels

def gemm_kernel(step: GemmStep, buffers: Mapping[str, Buffer], params: Mapping[str, Any],
                allow_tf32: bool = False) -> StepKernel:
    """`allow_tf32` (Plan.allow_tf32): an fp32 GEMM may run as plain TF32 (its MATH tunable, TF32 by default)."""
    launch = launch_of(step, buffers)
    if launch.gemv:
        return _gemv_kernel(step, launch, params)
    if params.get("MAIN") in SM90_CONFIGS and sm90_split_fits(launch, allow_tf32):
        return _sm90_split_kernel(step, launch, str(params["MAIN"]))
    return _cutlass_kernel(step, launch, params, allow_tf32)


def sm90_split_fits(launch: GemmLaunch, allow_tf32: bool = False) -> bool:
    """Whether the Hopper split (gemm_sm90_split) can run this GEMM: fp32 at fp32 accuracy (a TF32-admitting
    profile has plain TF32 instead), no triangle, C rows 16-byte aligned (TMA)."""
    return (launch.dtype == "float32" and not allow_tf32 and not launch.gemv and not launch.triangle
            and launch.ldc % 4 == 0 and launch.stride_c % 4 == 0)


def sm90_split_may_pay(launch: GemmLaunch) -> bool:
    """Whether MAIN offers the Hopper split: only where the GEMM is compute-bound (SM90_MIN_FLOPS_PER_BYTE flops per
    byte of A, B and C). It copies both operands, tripled, into scratch before its main loop; a memory-bound GEMM
    (small K, tall-skinny) gains nothing from a faster main loop and pays the copies, and its scratch can grow past
    the operands themselves (a pointwise conv of level1/87 as a GEMM, 21 flops a byte: 12.9 GB)."""
    operand_bytes = ELEMENT_BYTES[launch.dtype] * launch.batch * (
        launch.m * launch.k + launch.k * launch.n + launch.m * launch.n)
    return launch.flops >= SM90_MIN_FLOPS_PER_BYTE * operand_bytes


def _sm90_split_kernel(step: GemmStep, launch: GemmLaunch, main: str) -> StepKernel:
    a_row, a_col = (launch.a.ld, 1) if launch.a.order == "row" else (1, launch.a.ld)
    b_row, b_col = (launch.b.ld, 1) if launch.b.order == "row" else (1, launch.b.ld)
    numbers = (launch.m, launch.n, launch.k, launch.batch, a_row, a_col, launch.stride_a, launch.offset_a,
               b_row, b_col, launch.stride_b, launch.offset_b, launch.ldc, launch.stride_c, *sm90_pieces(launch.k))
    scratch = sm90_scratch_bytes(launch.m, launch.n, launch.k, launch.batch)
    config = SM90_CONFIGS[main]
    return StepKernel(step.name, sm90_split_cuda(config), sm90_split_launcher(config), SM90_SPLIT_SPEC,
                      (step.a.buffer, step.b.buffer, step.outputs[0].buffer, *(str(v) for v in numbers), str(scratch)),
                      scratch_bytes=scratch, headers=GEMM_HEADERS)


def _cutlass_kernel(step: GemmStep, launch: GemmLaunch, params: Mapping[str, Any], allow_tf32: bool) -> StepKernel:
    mode = math_mode(launch.dtype, params, allow_tf32)
    tile_text = str(params.get("TILE", default_tile(launch)))
    tile = Tile.parse(tile_text if tile_text in mode.tiles else default_tile(launch))
    stages = int(params.get("STAGES", mode.default_stages))
    if tile.smem_bytes(stages, mode.element_bytes) > SMEM_LIMIT:
        stages = mode.default_stages
    split = int(params.get("SPLITK", default_split(launch, tile)))
    if split not in split_choices(launch):
        split = 1
    name = (f"kw_gemm_{mode.tag}_{launch.a.order[0]}{launch.b.order[0]}_"
            f"a{launch.align_a}{launch.align_b}{launch.align_c}_{tile}_s{stages}")
    # serial split-K: one semaphore (int) per output tile; the scratch buffer is never empty (a u8* argument)
    workspace = max(16, 4 * -(-launch.m // tile.m) * -(-launch.n // tile.n) if split > 1 else 0)
    ptr = SPEC[launch.dtype]
    spec = f"{ptr}, {ptr}, {ptr}, " + ", ".join(["i64"] * 12) + ", i32, i32, i64, i64, u8*"
    args = (step.a.buffer, step.b.buffer, step.outputs[0].buffer,
            *(str(v) for v in (launch.m, launch.n, launch.k, launch.batch, launch.a.ld, launch.b.ld, launch.ldc,
                               launch.stride_a, launch.stride_b, launch.stride_c, launch.offset_a, launch.offset_b,
                               split, launch.triangle, launch.diagonal, workspace)))
    return StepKernel(step.name, _cutlass_source(name, launch, mode, tile, stages), name, spec, args,
                      scratch_bytes=workspace, headers=GEMM_HEADERS)


def _layout(order: str) -> str:
    return "cutlass::layout::RowMajor" if order == "row" else "cutlass::layout::ColumnMajor"


_COMMON = r"""
#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal.h>
#include <cutlass/epilogue/thread/linear_combination.h>
#ifndef KW_GEMM_COMMON
#define KW_GEMM_COMMON
// torch.triu / tril of a product: zero each row's elements outside the kept triangle (the GEMM wrote whole
// tiles across the diagonal and skipped tiles wholly outside it). triangle 1: keep col - row >= diagonal;
// 2: keep col - row <= diagonal. One block per row of the (batch * rows, cols) output.
template <typename T>
__global__ void kw_gemm_triangle_zero(T* __restrict__ c, long long rows, long long cols, int triangle, long long diagonal) {
    const long long r = blockIdx.x, i = r % rows;
    long long lo = 0, hi = cols;
    if (triangle == 1) hi = i + diagonal < cols ? (i + diagonal > 0 ? i + diagonal : 0) : cols;
    else lo = i + diagonal + 1 < cols ? (i + diagonal + 1 > 0 ? i + diagonal + 1 : 0) : cols;
    T* row = c + r * cols;
    for (long long j = lo + threadIdx.x; j < hi; j += blockDim.x) row[j] = KwStore<T>::of(0.0f);
}

// True when this block's output tile holds no element of the kept triangle (it then does no work).
template <typename Kernel>
__device__ __forceinline__ bool kw_gemm_tile_outside(typename Kernel::Params const& params, int triangle, long long diagonal) {
    typename Kernel::ThreadblockSwizzle swizzle;
    cutlass::gemm::GemmCoord tile = swizzle.get_tile_offset(params.swizzle_log_tile);
    const long long row0 = (long long)tile.m() * Kernel::Mma::Shape::kM, col0 = (long long)tile.n() * Kernel::Mma::Shape::kN;
    const long long row1 = row0 + Kernel::Mma::Shape::kM - 1, col1 = col0 + Kernel::Mma::Shape::kN - 1;
    return triangle == 1 ? col1 - row0 < diagonal : col0 - row1 > diagonal;
}
#endif
"""

_CUTLASS_TEMPLATE = r"""
// ---- {name}: {dtype} GEMM, A {order_a}-major, B {order_b}-major, C row-major, on tensor cores ({math})
using {name}_t = typename cutlass::gemm::device::GemmUniversal<
    {element}, {layout_a}, {element}, {layout_b}, {element}, cutlass::layout::RowMajor, float,
    cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
    cutlass::gemm::GemmShape<{tm}, {tn}, {tk}>, cutlass::gemm::GemmShape<{wm}, {wn}, {tk}>,
    cutlass::gemm::GemmShape<{im}, {in_}, {ik}>,
    cutlass::epilogue::thread::LinearCombination<{element}, {align_c}, float, float>,
    cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<8>, {stages}, {align_a}, {align_b},
    {operator}>::GemmKernel;

// C linkage: the symbol is the plain name, which traces show and `nm` finds in the candidate's library (the
// C++ name, mangled over CUTLASS's template arguments, is too deep for nm's demangler).
extern "C" __global__ void __launch_bounds__({name}_t::kThreadCount) {name}_kernel(typename {name}_t::Params params,
                                                                                     int triangle, long long diagonal) {{
    if (triangle && kw_gemm_tile_outside<{name}_t>(params, triangle, diagonal)) return;
    extern __shared__ int kw_gemm_smem[];
    {name}_t::invoke(params, *reinterpret_cast<typename {name}_t::SharedStorage*>(kw_gemm_smem));
}}

// C[p] = A[p] @ B[p] for p < batch (batch strides in elements; offsets added to A and B); split > 1: serial
// split-K over a single product (workspace: one int per output tile, zeroed here).
extern "C" int {name}(const {storage}* a, const {storage}* b, {storage}* c, long long m, long long n, long long k,
                      long long batch, long long lda, long long ldb, long long ldc, long long stride_a,
                      long long stride_b, long long stride_c, long long offset_a, long long offset_b, int split,
                      int triangle, long long diagonal, long long workspace_bytes, unsigned char* workspace,
                      cudaStream_t stream) {{
    using Kernel = {name}_t;
    using Element = {element};
    const Element* pa = reinterpret_cast<const Element*>(a + offset_a);
    const Element* pb = reinterpret_cast<const Element*>(b + offset_b);
    Element* pc = reinterpret_cast<Element*>(c);
    if (!kw_aligned(pa, {align_a} * (int)sizeof(Element)) || !kw_aligned(pb, {align_b} * (int)sizeof(Element))
        || !kw_aligned(pc, {align_c} * (int)sizeof(Element))) return (int)cudaErrorMisalignedAddress;
    const bool split_k = split > 1 && batch == 1;
    typename Kernel::Arguments args(
        split_k || batch == 1 ? cutlass::gemm::GemmUniversalMode::kGemm : cutlass::gemm::GemmUniversalMode::kBatched,
        cutlass::gemm::GemmCoord((int)m, (int)n, (int)k), split_k ? split : (int)batch, {{1.0f, 0.0f}},
        pa, pb, pc, pc, stride_a, stride_b, stride_c, stride_c, lda, ldb, ldc, ldc);
    if (Kernel::can_implement(args) != cutlass::Status::kSuccess) return (int)cudaErrorInvalidValue;
    typename Kernel::Params params(args, kw_sm_count(), 1);
    if ((long long)params.get_workspace_size() > workspace_bytes) return (int)cudaErrorInvalidValue;
    if (params.init_workspace(split_k ? workspace : nullptr, stream) != cutlass::Status::kSuccess) return (int)cudaErrorUnknown;
{smem_opt_in}
    {name}_kernel<<<params.get_grid_dims(), Kernel::kThreadCount, smem, stream>>>(params, triangle, diagonal);
    if (triangle && batch * m > 0)
        kw_gemm_triangle_zero<{storage}><<<(unsigned)(batch * m), 256, 0, stream>>>(c, m, n, triangle, diagonal);
    return (int)cudaGetLastError();
}}
"""


def _cutlass_source(name: str, launch: GemmLaunch, mode: MathMode, tile: Tile, stages: int) -> str:
    im, in_, ik = mode.instruction
    math = math_text(mode, launch.dtype)
    return _COMMON + _CUTLASS_TEMPLATE.format(
        name=name, dtype=launch.dtype, order_a=launch.a.order, order_b=launch.b.order, math=math,
        element=mode.element, layout_a=_layout(launch.a.order), layout_b=_layout(launch.b.order),
        tm=tile.m, tn=tile.n, tk=tile.k, wm=tile.warp_m, wn=tile.warp_n, im=im, in_=in_, ik=ik,
        align_a=launch.align_a, align_b=launch.align_b, align_c=launch.align_c, stages=stages,
        operator=mode.operator, storage=STORAGE_CTYPE[launch.dtype], smem_opt_in=smem_opt_in(name, "e"))


# ---------------------------------------------------------------- matrix-vector

@dataclass(frozen=True, slots=True)
class GemvOperands:
    """out[p, r] = sum_k mat[p, r, k] * vec[p, k]: rows contiguous along k."""

    mat: str
    vec: str
    rows: int
    row_stride: int
    mat_batch_stride: int
    mat_offset: int
    vec_stride: int
    vec_batch_stride: int
    vec_offset: int


def gemv_operands(step: GemmStep, launch: GemmLaunch) -> GemvOperands:
    if launch.n == 1 and launch.a.order == "row":  # A (M, K) @ b (K, 1)
        vec_stride = launch.b.ld if launch.b.order == "row" else 1
        return GemvOperands(step.a.buffer, step.b.buffer, launch.m, launch.a.ld, launch.stride_a, launch.offset_a,
                            vec_stride, launch.stride_b, launch.offset_b)
    # a (1, K) @ B (K, N) with B's columns contiguous: out[n] = B.T[n, :] . a
    vec_stride = 1 if launch.a.order == "row" else launch.a.ld
    return GemvOperands(step.b.buffer, step.a.buffer, launch.n, launch.b.ld, launch.stride_b, launch.offset_b,
                        vec_stride, launch.stride_a, launch.offset_a)


_GEMV_TEMPLATE = r"""
// ---- {name}: {dtype} matrix-vector product, memory-bound: one block per output row streams the row
// (16-byte loads when everything is aligned), fp32 accumulation, a warp-shuffle then shared-memory reduction.
template <int VEC>
__global__ void {name}_kernel(const {storage}* __restrict__ mat, const {storage}* __restrict__ vec,
                              {storage}* __restrict__ out, long long rows, long long k, long long row_stride,
                              long long mat_batch_stride, long long vec_stride, long long vec_batch_stride) {{
    const long long r = blockIdx.x, p = blockIdx.y;
    const {storage}* row = mat + p * mat_batch_stride + r * row_stride;
    const {storage}* v = vec + p * vec_batch_stride;
    float acc = 0.0f;
    if (VEC > 1) {{
        const long long nv = k / VEC;
        const KwVec<{storage}, VEC>* row_v = reinterpret_cast<const KwVec<{storage}, VEC>*>(row);
        const KwVec<{storage}, VEC>* v_v = reinterpret_cast<const KwVec<{storage}, VEC>*>(v);
#pragma unroll 4
        for (long long i = threadIdx.x; i < nv; i += blockDim.x) {{
            const KwVec<{storage}, VEC> x = row_v[i], y = v_v[i];
#pragma unroll
            for (int j = 0; j < VEC; ++j) acc += kw_cvt(x.v[j]) * kw_cvt(y.v[j]);
        }}
    }} else {{
#pragma unroll 4
        for (long long i = threadIdx.x; i < k; i += blockDim.x) acc += kw_cvt(row[i]) * kw_cvt(v[i * vec_stride]);
    }}
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(KW_FULL, acc, off);
    __shared__ float partial[32];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) partial[warp] = acc;
    __syncthreads();
    if (warp == 0) {{
        acc = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.0f;
        for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(KW_FULL, acc, off);
        if (lane == 0) out[p * rows + r] = KwStore<{storage}>::of(acc);
    }}
}}

extern "C" int {name}(const {storage}* mat, const {storage}* vec, {storage}* out, long long rows, long long k,
                      long long batch, long long row_stride, long long mat_batch_stride, long long mat_offset,
                      long long vec_stride, long long vec_batch_stride, long long vec_offset, int threads,
                      cudaStream_t stream) {{
    if (rows == 0 || batch == 0) return 0;
    mat += mat_offset;
    vec += vec_offset;
    constexpr int V = {vec_width};
    const bool vectorised = V > 1 && vec_stride == 1 && k % V == 0 && row_stride % V == 0
        && (batch == 1 || (mat_batch_stride % V == 0 && vec_batch_stride % V == 0))
        && kw_aligned(mat, V * (int)sizeof({storage})) && kw_aligned(vec, V * (int)sizeof({storage}));
    const dim3 grid((unsigned)rows, (unsigned)batch);
    if (vectorised) {name}_kernel<V><<<grid, threads, 0, stream>>>(mat, vec, out, rows, k, row_stride, mat_batch_stride, vec_stride, vec_batch_stride);
    else {name}_kernel<1><<<grid, threads, 0, stream>>>(mat, vec, out, rows, k, row_stride, mat_batch_stride, vec_stride, vec_batch_stride);
    return (int)cudaGetLastError();
}}
"""


def _gemv_kernel(step: GemmStep, launch: GemmLaunch, params: Mapping[str, Any]) -> StepKernel:
    ops = gemv_operands(step, launch)
    tpr = int(params.get("TPR", default_tpr(launch)))
    tpr = tpr if tpr in TPR_CHOICES else default_tpr(launch)
    tag = MATH[launch.dtype].tag.removesuffix("x3")
    name = f"kw_gemv_{tag}"
    storage = STORAGE_CTYPE[launch.dtype]
    source = _GEMV_TEMPLATE.format(name=name, dtype=launch.dtype, storage=storage,
                                   vec_width=16 // MATH[launch.dtype].element_bytes)
    ptr = SPEC[launch.dtype]
    spec = f"{ptr}, {ptr}, {ptr}, " + ", ".join(["i64"] * 9) + ", i32"
    args = (ops.mat, ops.vec, step.outputs[0].buffer,
            *(str(v) for v in (ops.rows, launch.k, launch.batch, ops.row_stride, ops.mat_batch_stride, ops.mat_offset,
                               ops.vec_stride, ops.vec_batch_stride, ops.vec_offset, tpr)))
    return StepKernel(step.name, source, name, spec, args)


def smem_opt_in(name: str, err: str) -> str:
    """Launcher lines that size `Kernel`'s shared memory as `smem` and, above the 48 KiB default, raise the limit
    of `<name>_kernel` once per device (an error comes back in `err`). Shared by the GEMM and conv launchers."""
    return f"""    constexpr int smem = (int)sizeof(typename Kernel::SharedStorage);
    static unsigned long long configured = 0;  // one bit per device that has the shared-memory limit raised
    int dev = 0;
    cudaGetDevice(&dev);
    if (smem >= (48 << 10) && dev < 64 && !((configured >> dev) & 1ull)) {{
        cudaError_t {err} = cudaFuncSetAttribute({name}_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        if ({err} != cudaSuccess) return (int){err};
        configured |= 1ull << dev;
    }}"""
