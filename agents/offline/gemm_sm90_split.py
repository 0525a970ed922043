"""fp32 GEMM at fp32 accuracy on Hopper's own tensor-core path: 3xTF32 as ONE TF32 GEMM over a tripled K.

The offline GEMMs (codegen_gemm) run CUTLASS 2.x's SM80 3xTF32 main loop (`OpMultiplyAddFastF32`): mma.sync, which
an H100 runs at well under its wgmma rate, and on KernelBench's fp32 GEMMs they reach 1.25x-1.41x over eager
(eval/BENCHMARKS.md; issue 19 asks 1.5x). CUTLASS ships no 3xTF32 main loop for SM90's wgmma, but the split needs none:
with a = a_hi + a_lo and b = b_hi + b_lo (each part exactly a TF32 number, rounded to nearest),

    a * b ~= a_hi * b_hi + a_hi * b_lo + a_lo * b_hi,

which is the product of A3 = [a_hi | a_hi | a_lo] (M x 3K) and B3 = [b_hi ; b_lo ; b_hi] (3K x N): one plain TF32
GEMM (CUTLASS 3.x's TMA warp-specialized wgmma kernel from its collective builders) over K' = 3K, accumulating in
fp32. Two copy kernels write the split operands first (B3 K-major, the only layout TF32 wgmma reads), each row of
3K padded to a multiple of 4 with zeros (TMA wants 16-byte strides), into the candidate's scratch buffer; they move
(M + N) * K * 4 * 4 bytes, small beside the GEMM's 6 * M * N * K flops at the sizes where this pays.

Status: built for sm_90a in CI and not yet run on a GPU; nothing proposes it yet. tests/agents/offline/
test_gemm_sm90_split_gpu.py checks it against float64 at the strict fp32 tolerance and prints its time beside eager's
fp32 GEMM and the SM80 split; if it wins there it becomes a GEMM tunable. Limits: fp32 only, C row-major with N a
multiple of 4 (the launcher returns -1 where CUTLASS cannot implement the shape, e.g. an odd N)."""

from __future__ import annotations

SM90_SPLIT_LAUNCHER = "kw_sm90_split_gemm"
# a, b, c, then m, n, k, batch, lda, batch stride of a, ldb, batch stride of b, ldc, batch stride of c, the scratch
# buffer and its size in bytes
SM90_SPLIT_SPEC = "f32*, f32*, f32*, " + ", ".join(["i64"] * 10) + ", u8*, i64"
WORKSPACE_BYTES = 1 << 20  # CUTLASS's own workspace (tile scheduler), after the split operands; checked at launch


def padded_k3(k: int) -> int:
    """The split operands' row length: 3K rounded up to a multiple of 4 floats (16-byte TMA strides)."""
    return -(-3 * k // 4) * 4


def scratch_bytes(m: int, n: int, k: int, batch: int = 1) -> int:
    """Bytes of scratch the launcher needs: A3, B3 and CUTLASS's workspace."""
    return batch * (m + n) * padded_k3(k) * 4 + WORKSPACE_BYTES


SM90_SPLIT_CUDA = r"""#include <cutlass/cutlass.h>
#include <cute/tensor.hpp>
#include <cutlass/numeric_types.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>

__device__ __forceinline__ float kw_tf32_rn(float x) {  // the nearest TF32 number (low 13 mantissa bits zero)
    unsigned u;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(u) : "f"(x));
    return __uint_as_float(u);
}

// A (batch, M, K), row stride lda, batch stride sa -> A3 (batch, M, k3p) packed: [hi | hi | lo | zeros]
extern "C" __global__ void kw_sm90_split_rows(const float* __restrict__ a, float* __restrict__ a3, long long m,
                                              long long k, long long k3p, long long lda, long long sa) {
    const long long b = blockIdx.y;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < m * k; i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / k, c = i % k;
        const float x = a[b * sa + r * lda + c];
        const float hi = kw_tf32_rn(x), lo = kw_tf32_rn(x - hi);
        float* row = a3 + (b * m + r) * k3p;
        row[c] = hi; row[k + c] = hi; row[2 * k + c] = lo;
        if (c < k3p - 3 * k) row[3 * k + c] = 0.0f;
    }
}

// B (batch, K, N), row stride ldb, batch stride sb -> B3 (batch, N, k3p) packed, K-major (the layout TF32 wgmma
// reads): [hi ; lo ; hi ; zeros] along K. 32x32 tiles through shared memory, so both sides are coalesced.
extern "C" __global__ void kw_sm90_split_cols(const float* __restrict__ bm, float* __restrict__ b3, long long k,
                                              long long n, long long k3p, long long ldb, long long sb) {
    __shared__ float tile[32][33];
    const long long b = blockIdx.z, k0 = (long long)blockIdx.y * 32, n0 = (long long)blockIdx.x * 32;
    for (int i = threadIdx.y; i < 32; i += 8) {
        const long long kk = k0 + i, nn = n0 + threadIdx.x;
        tile[i][threadIdx.x] = (kk < k && nn < n) ? bm[b * sb + kk * ldb + nn] : 0.0f;
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += 8) {
        const long long nn = n0 + i, kk = k0 + threadIdx.x;
        if (nn < n && kk < k) {
            const float x = tile[threadIdx.x][i];
            const float hi = kw_tf32_rn(x), lo = kw_tf32_rn(x - hi);
            float* col = b3 + (b * n + nn) * k3p;
            col[kk] = hi; col[k + kk] = lo; col[2 * k + kk] = hi;
            if (kk < k3p - 3 * k) col[3 * k + kk] = 0.0f;
        }
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
using KwSplitGemm = cutlass::gemm::device::GemmUniversalAdapter<KwSplitKernel>;

static typename KwSplitGemm::Arguments kw_sm90_split_args(const float* a3, const float* b3, float* c, long long m,
                                                          long long n, long long k3p, long long batch, long long ldc,
                                                          long long sc) {
    typename KwSplitKernel::StrideA sa = cute::make_stride(int64_t(k3p), cute::Int<1>{}, int64_t(m * k3p));
    typename KwSplitKernel::StrideB sb = cute::make_stride(int64_t(k3p), cute::Int<1>{}, int64_t(n * k3p));
    typename KwSplitKernel::StrideC scs = cute::make_stride(int64_t(ldc), cute::Int<1>{}, int64_t(sc));
    typename KwSplitKernel::StrideD sd = cute::make_stride(int64_t(ldc), cute::Int<1>{}, int64_t(sc));
    return typename KwSplitGemm::Arguments{cutlass::gemm::GemmUniversalMode::kGemm,
        {(int)m, (int)n, (int)k3p, (int)batch},
        {reinterpret_cast<const KwSplitElement*>(a3), sa, reinterpret_cast<const KwSplitElement*>(b3), sb},
        {{1.0f, 0.0f}, c, scs, c, sd}};
}

// 0, a CUDA error, or: -1 CUTLASS cannot implement the shape (e.g. N not a multiple of 4), -2 the scratch buffer is
// too small, -3 CUTLASS's initialize or run failed.
extern "C" int kw_sm90_split_gemm(const float* a, const float* bm, float* c, long long m, long long n, long long k,
                                  long long batch, long long lda, long long sa, long long ldb, long long sb,
                                  long long ldc, long long sc, unsigned char* scratch, long long scratch_bytes,
                                  cudaStream_t stream) {
    const long long k3p = (3 * k + 3) / 4 * 4;
    float* a3 = reinterpret_cast<float*>(scratch);
    float* b3 = a3 + batch * m * k3p;
    unsigned char* workspace = reinterpret_cast<unsigned char*>(b3 + batch * n * k3p);
    KwSplitGemm gemm;
    auto args = kw_sm90_split_args(a3, b3, c, m, n, k3p, batch, ldc, sc);
    if (gemm.can_implement(args) != cutlass::Status::kSuccess) return -1;
    if ((long long)(workspace - scratch) + (long long)KwSplitGemm::get_workspace_size(args) > scratch_bytes) return -2;
    kw_sm90_split_rows<<<dim3(1024, (unsigned)batch), 256, 0, stream>>>(a, a3, m, k, k3p, lda, sa);
    kw_sm90_split_cols<<<dim3((unsigned)((n + 31) / 32), (unsigned)((k + 31) / 32), (unsigned)batch), dim3(32, 8), 0,
                         stream>>>(bm, b3, k, n, k3p, ldb, sb);
    if (gemm.initialize(args, workspace, stream) != cutlass::Status::kSuccess) return -3;
    if (gemm.run(stream) != cutlass::Status::kSuccess) return -3;
    return (int)cudaGetLastError();
}
"""
