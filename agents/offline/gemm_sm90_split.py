"""fp32 GEMM at fp32 accuracy on Hopper's own tensor-core path: 3xTF32 as ONE TF32 GEMM over a tripled K.

The offline GEMMs (codegen_gemm) run CUTLASS 2.x's SM80 3xTF32 main loop (`OpMultiplyAddFastF32`): mma.sync, which
an H100 runs at well under its wgmma rate, and on KernelBench's fp32 GEMMs they reach 1.25x-1.41x over eager
(eval/BENCHMARKS.md; issue 19 asks 1.5x). CUTLASS ships no 3xTF32 main loop for SM90's wgmma, but the split needs none:
with a = a_hi + a_lo and b = b_hi + b_lo (each part exactly a TF32 number, rounded to nearest),

    a * b ~= a_hi * b_hi + a_hi * b_lo + a_lo * b_hi,

which is the product of A3 = [a_hi | a_hi | a_lo] (M x 3K) and B3 = [b_hi ; b_lo ; b_hi] (3K x N): one plain TF32
GEMM (CUTLASS 3.x's TMA warp-specialized wgmma kernel from its collective builders) over K' = 3K, accumulating in
fp32. A copy kernel writes each split operand first, K-major (the only layout TF32 wgmma reads; A and B may come in
either order, with batch strides and offsets), each row of 3K padded to a multiple of 4 with zeros (TMA wants
16-byte strides), into the candidate's scratch buffer; the copies move (M + N) * K * 4 * 4 bytes, small beside the
GEMM's 6 * M * N * K flops at the sizes where this pays.

Status: run on an H100 (session 18): tests/agents/offline/test_gemm_sm90_split_gpu.py passed against float64 at the
strict fp32 tolerance on four shapes, 1.41x over eager's fp32 GEMM on 4096^3 (73 TFLOP/s; three TF32 products would
take ~0.55x of its time). codegen_gemm offers it as an fp32 GEMM's MAIN tunable ("sm90"), which the fill tried first:
on KernelBench's fp32 GEMMs it won one of five (eval/BENCHMARKS.md). Session 19: all three SM90_CONFIGS passed the
same tests, including the refusal of an unaligned C row; the cooperative 128x256 and 256x128 tiles took 1.57x and
1.56x over eager on 4096^3, so they come first now (not yet run in the bench). Limits: fp32 only, C row-major with
ldc, C's batch stride and C's address 16-byte aligned (the launcher returns -1 otherwise, or where CUTLASS cannot
implement the shape), no triangle."""

from __future__ import annotations

from dataclasses import dataclass

from kernelwright.agents.offline.gemm_split import CHUNKED_FROM_K, K_CHUNK

SM90_SPLIT_LAUNCHER = "kw_sm90_split_gemm"
# a, b, c; m, n, k, batch; A's row, column and batch strides and offset; B's row (k), column (n) and batch strides and
# offset; ldc and C's batch stride (elements); the K of each piece and its split row length (pieces()); the scratch
# size in bytes, then the scratch buffer (the candidate's)
SM90_SPLIT_SPEC = "f32*, f32*, f32*, " + ", ".join(["i64"] * 17) + ", u8*"
WORKSPACE_BYTES = 1 << 20  # CUTLASS's own workspace (tile scheduler), after the split operands; checked at launch


@dataclass(frozen=True, slots=True)
class Sm90Config:
    """One configuration of the TF32 wgmma GEMM: CTA tile (M, N, K in TF32 elements), cluster (M, N) and CUTLASS's
    kernel schedule ("auto": the collective builders choose; "cooperative": two consumer warpgroups share a tile).
    `suffix` keeps each configuration's names apart in one candidate. (A pingpong schedule, the warpgroups
    alternating 128x128 tiles, spilled registers in CUTLASS 4.2's TF32 build: not offered.)"""
    tile: tuple[int, int, int]
    cluster: tuple[int, int]
    schedule: str
    suffix: str


# MAIN choices of codegen_gemm (the name is the tunable's value), fastest first as measured on an H100 (session 19,
# 4096^3 at the strict tolerance; eager fp32 2.65 ms): "sm90w" 1.685 ms (1.57x over eager), "sm90c" 1.706 ms (1.56x),
# "sm90" 1.892 ms (1.41x); cuBLAS in plain TF32 took 0.343 ms. The first is agents.offline_fill's first neighbour.
SM90_CONFIGS = {
    "sm90w": Sm90Config((128, 256, 32), (1, 2), "cooperative", "_c128w"),
    "sm90c": Sm90Config((256, 128, 32), (2, 1), "cooperative", "_c256"),
    "sm90": Sm90Config((128, 128, 32), (1, 2), "auto", ""),
}
_SCHEDULES = {  # kernel schedule, epilogue schedule
    "auto": ("cutlass::gemm::collective::KernelScheduleAuto", "cutlass::epilogue::collective::EpilogueScheduleAuto"),
    "cooperative": ("cutlass::gemm::KernelTmaWarpSpecializedCooperative",
                    "cutlass::epilogue::TmaWarpSpecializedCooperative"),
}


def sm90_split_launcher(config: Sm90Config) -> str:
    return SM90_SPLIT_LAUNCHER.replace("kw_sm90_split", f"kw_sm90{config.suffix}_split")


def sm90_split_cuda(config: Sm90Config) -> str:
    """The source of one configuration: SM90_SPLIT_CUDA with its tile, cluster and schedules, and every name it
    defines suffixed (two configurations may meet in one candidate, one per GEMM step)."""
    m, n, k = config.tile
    schedule, epilogue = _SCHEDULES[config.schedule]
    text = (SM90_SPLIT_CUDA
            .replace("Shape<_128, _128, _32>", f"Shape<_{m}, _{n}, _{k}>")
            .replace("Shape<_1, _2, _1>", f"Shape<_{config.cluster[0]}, _{config.cluster[1]}, _1>")
            .replace("cutlass::gemm::collective::KernelScheduleAuto", schedule)
            .replace("cutlass::epilogue::collective::EpilogueScheduleAuto", epilogue))
    if not config.suffix:
        return text
    return (text.replace("kw_sm90_split", f"kw_sm90{config.suffix}_split").replace("KwSplit", f"KwSplit{config.suffix}")
            .replace("kw_tf32_rn", f"kw_tf32_rn{config.suffix}"))


def k_piece(k: int) -> int:
    """The K of each tensor-core sum: the whole K below CHUNKED_FROM_K, else pieces of K_CHUNK (gemm_split's
    measured bound: a tensor-core sum over 3 x 8192 terms of KernelBench's positive inputs drifted past the strict
    tolerance; pieces of 1024 held). The pieces' GEMMs then add into C in fp32 (beta = 1 after the first)."""
    return k if k < CHUNKED_FROM_K else K_CHUNK


def padded_k3(k: int) -> int:
    """A piece's split row length: 3 x its K, rounded up to a multiple of 4 floats (16-byte TMA strides)."""
    return -(-3 * k // 4) * 4


def pieces(k: int) -> tuple[int, int]:
    """The launcher's K of each piece and its split row length (the one place that pads it)."""
    piece = k_piece(k)
    return piece, padded_k3(piece)


def scratch_bytes(m: int, n: int, k: int, batch: int = 1) -> int:
    """Bytes of scratch the launcher needs: A3 and B3 (each piece padded alike), and CUTLASS's workspace."""
    piece, row = pieces(k)
    return batch * -(-k // piece) * (m + n) * row * 4 + WORKSPACE_BYTES


SM90_SPLIT_CUDA = r"""#include <cutlass/cutlass.h>
#include <cute/tensor.hpp>
#include <cutlass/numeric_types.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>

__device__ __forceinline__ float kw_tf32_rn(float x) {  // the nearest TF32 number (low 13 mantissa bits zero)
    unsigned u;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(u) : "f"(x));
    return __uint_as_float(u);
}

// One operand, `rows` x k (element (r, c) at src[b * batch_stride + r * row_stride + c * k_stride]), into split rows,
// K-major, one block of rows per piece of `kc` columns: dst[((b * pieces + j) * rows + r) * k3p + ...] holds piece j
// of row r as [hi | hi | lo | zeros] (lo_slot 2: A) or [hi | lo | hi | zeros] (lo_slot 1: B), each part as long as
// the piece (the last may be shorter). 32x32 tiles through shared memory: read along whichever of r and c is
// contiguous, written along k.
extern "C" __global__ void kw_sm90_split_operand(const float* __restrict__ src, float* __restrict__ dst,
                                                 long long rows, long long k, long long kc, long long k3p,
                                                 long long row_stride, long long k_stride, long long batch_stride,
                                                 int lo_slot) {
    __shared__ float tile[32][33];  // [row][k]
    const long long b = blockIdx.z, c0 = (long long)blockIdx.x * 32, r0 = (long long)blockIdx.y * 32;
    const float* s = src + b * batch_stride;
    for (int i = threadIdx.y; i < 32; i += 8) {
        if (k_stride == 1) {  // rows contiguous along k: threadIdx.x walks k
            const long long r = r0 + i, c = c0 + threadIdx.x;
            tile[i][threadIdx.x] = (r < rows && c < k) ? s[r * row_stride + c] : 0.0f;
        } else {  // columns contiguous (or neither): threadIdx.x walks the rows
            const long long r = r0 + threadIdx.x, c = c0 + i;
            tile[threadIdx.x][i] = (r < rows && c < k) ? s[r * row_stride + c * k_stride] : 0.0f;
        }
    }
    __syncthreads();
    const long long pieces = (k + kc - 1) / kc;
    for (int i = threadIdx.y; i < 32; i += 8) {
        const long long r = r0 + i, c = c0 + threadIdx.x;
        if (r >= rows || c >= k) continue;
        const float x = tile[i][threadIdx.x];
        const float hi = kw_tf32_rn(x), lo = kw_tf32_rn(x - hi);
        const long long j = c / kc, cc = c % kc, len = (j + 1) * kc <= k ? kc : k - j * kc;
        float* row = dst + ((b * pieces + j) * rows + r) * k3p;
        row[cc] = hi; row[len + cc] = lo_slot == 1 ? lo : hi; row[2 * len + cc] = lo_slot == 2 ? lo : hi;
        for (long long q = 3 * len + cc; q < k3p; q += len) row[q] = 0.0f;  // the piece's padding
    }
}

using namespace cute;
using KwSplitElement = cutlass::tfloat32_t;  // fp32 storage; the split wrote exact TF32 numbers
using KwSplitTile = Shape<_128, _128, _32>;
using KwSplitCluster = Shape<_1, _2, _1>;
using KwSplitEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, KwSplitTile, KwSplitCluster,
    cutlass::epilogue::collective::EpilogueTileAuto, float, float,
    float, cutlass::layout::RowMajor, 4, float, cutlass::layout::RowMajor, 4,
    cutlass::epilogue::collective::EpilogueScheduleAuto>::CollectiveOp;
using KwSplitMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
    KwSplitElement, cutlass::layout::RowMajor, 4, KwSplitElement, cutlass::layout::ColumnMajor, 4, float,
    KwSplitTile, KwSplitCluster,
    cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename KwSplitEpilogue::SharedStorage))>,
    cutlass::gemm::collective::KernelScheduleAuto>::CollectiveOp;
using KwSplitKernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, KwSplitMainloop, KwSplitEpilogue>;
// C linkage: traces and `nm` name the kernel kw_sm90_split_tf32_gemm (CUTLASS's own device_kernel<...> name is too
// deep for nm's demangler, and a name with "cutlass" in it would read as a library kernel in the kernel policy).
extern "C" __global__ void __launch_bounds__(KwSplitKernel::MaxThreadsPerBlock, KwSplitKernel::MinBlocksPerMultiprocessor)
kw_sm90_split_tf32_gemm(CUTLASS_GRID_CONSTANT typename KwSplitKernel::Params const params) {
    extern __shared__ char kw_sm90_split_smem[];
    KwSplitKernel op;
    op(params, kw_sm90_split_smem);
}

static typename KwSplitKernel::Arguments kw_sm90_split_args(const float* a3, const float* b3, float* c, long long m,
                                                            long long n, long long k3p, long long batch,
                                                            long long pieces, long long ldc, long long sc,
                                                            float beta) {
    typename KwSplitKernel::StrideA sa = cute::make_stride(int64_t(k3p), cute::Int<1>{}, int64_t(pieces * m * k3p));
    typename KwSplitKernel::StrideB sb = cute::make_stride(int64_t(k3p), cute::Int<1>{}, int64_t(pieces * n * k3p));
    typename KwSplitKernel::StrideC scs = cute::make_stride(int64_t(ldc), cute::Int<1>{}, int64_t(sc));
    typename KwSplitKernel::StrideD sd = cute::make_stride(int64_t(ldc), cute::Int<1>{}, int64_t(sc));
    return typename KwSplitKernel::Arguments{cutlass::gemm::GemmUniversalMode::kGemm,
        {(int)m, (int)n, (int)k3p, (int)batch},
        {reinterpret_cast<const KwSplitElement*>(a3), sa, reinterpret_cast<const KwSplitElement*>(b3), sb},
        {{1.0f, beta}, c, scs, c, sd}};
}

// C[p] = A[p] @ B[p], K in pieces of kc, each split into rows of k3p (3 kc padded; the caller's pieces()) whose GEMM
// adds into C after the first. Returns 0, a CUDA error, or:
// -1 CUTLASS cannot implement the shape (e.g. ldc not a multiple of 4), -2 the scratch buffer is too small, -3
// CUTLASS's workspace set-up failed.
extern "C" int kw_sm90_split_gemm(const float* a, const float* bm, float* c, long long m, long long n, long long k,
                                  long long batch, long long a_row, long long a_col, long long a_batch,
                                  long long a_offset, long long b_row, long long b_col, long long b_batch,
                                  long long b_offset, long long ldc, long long c_batch, long long kc, long long k3p,
                                  long long scratch_bytes, unsigned char* scratch, cudaStream_t stream) {
    const long long pieces = (k + kc - 1) / kc;
    float* a3 = reinterpret_cast<float*>(scratch);
    float* b3 = a3 + batch * pieces * m * k3p;
    unsigned char* workspace = reinterpret_cast<unsigned char*>(b3 + batch * pieces * n * k3p);
    auto args = kw_sm90_split_args(a3, b3, c, m, n, k3p, batch, pieces, ldc, c_batch, 0.0f);
    // C's rows must start 16 bytes apart (the epilogue's vector stores). Checked here: CUTLASS's can_implement let a
    // row of 1001 floats through on the H100 (session 18), and its epilogue stores assume the alignment it declared.
    if (ldc % 4 != 0 || c_batch % 4 != 0 || (reinterpret_cast<unsigned long long>(c) & 15) != 0) return -1;
    if (!KwSplitKernel::can_implement(args)) return -1;
    if ((long long)(workspace - scratch) + (long long)KwSplitKernel::get_workspace_size(args) > scratch_bytes) return -2;
    const unsigned k_tiles = (unsigned)((k + 31) / 32);
    // A: rows m along its row stride, k along its column stride; B: rows n along its column stride, k along its rows
    kw_sm90_split_operand<<<dim3(k_tiles, (unsigned)((m + 31) / 32), (unsigned)batch), dim3(32, 8), 0, stream>>>(
        a + a_offset, a3, m, k, kc, k3p, a_row, a_col, a_batch, 2);
    kw_sm90_split_operand<<<dim3(k_tiles, (unsigned)((n + 31) / 32), (unsigned)batch), dim3(32, 8), 0, stream>>>(
        bm + b_offset, b3, n, k, kc, k3p, b_col, b_row, b_batch, 1);
    const int smem = (int)KwSplitKernel::SharedStorageSize;
    cudaError_t err = cudaFuncSetAttribute(kw_sm90_split_tf32_gemm, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (err != cudaSuccess) return (int)err;
    for (long long j = 0; j < pieces; ++j) {  // the pieces' sums meet in C in fp32, on the epilogue's SIMT adds
        args = kw_sm90_split_args(a3 + j * m * k3p, b3 + j * n * k3p, c, m, n, k3p, batch, pieces, ldc, c_batch,
                                  j == 0 ? 0.0f : 1.0f);
        if (KwSplitKernel::initialize_workspace(args, workspace, stream) != cutlass::Status::kSuccess) return -3;
        const typename KwSplitKernel::Params params = KwSplitKernel::to_underlying_arguments(args, workspace);
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = KwSplitKernel::get_grid_shape(params);
        cfg.blockDim = KwSplitKernel::get_block_shape();
        cfg.dynamicSmemBytes = (size_t)smem;
        cfg.stream = stream;
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeClusterDimension;
        attr[0].val.clusterDim.x = cute::size<0>(KwSplitCluster{});
        attr[0].val.clusterDim.y = cute::size<1>(KwSplitCluster{});
        attr[0].val.clusterDim.z = cute::size<2>(KwSplitCluster{});
        cfg.attrs = attr;
        cfg.numAttrs = 1;
        err = cudaLaunchKernelEx(&cfg, kw_sm90_split_tf32_gemm, params);
        if (err != cudaSuccess) return (int)err;
    }
    return (int)cudaGetLastError();
}
"""
