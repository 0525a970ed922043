"""CUDA for a conv step: a CUTLASS implicit-GEMM convolution the candidate builds, between layout copies.

CUTLASS's 2.x conv kernels (fprop for a conv, dgrad for a transposed conv, SM80 tensor cores, which run on
sm_90a) take channels-last tensors; PyTorch's are channels-first. So each call: the input NCHW -> one packed
NHWC tensor per group and the weight -> one KRSC filter per group (redone every call: nothing derived from the
inputs is kept; these copies also write the zero channels that pad a count the operand copies cannot align, the
zeros of a zero-inserted input and a flipped filter, see conv_plan.ConvLaunch), one implicit GEMM per group
into an NHWC buffer, and the result back to NCHW with the bias added on that pass. fp32 runs CUTLASS's 3xTF32
arithmetic (OpMultiplyAddFastF32, fp32 accuracy, as codegen_gemm), bf16/fp16 natively with fp32 accumulation. Where
the precision profile admits TF32 (Plan.allow_tf32: the kernelbench profile, under which eager's cuDNN convolutions
run in TF32 too), an fp32 conv has the GEMM path's MATH tunable, plain TF32 by default (a third of the split's MMAs).
A batch whose tensors exceed CUTLASS's 2 GiB per-tensor limit runs in slices of whole images.

As for GEMMs, the source depends only on the configuration (dtype, operator, 2-D or 3-D, stride support,
iterator, alignments, tile, stages); sizes are launcher arguments, so one build serves every problem of that
configuration. The kernel is an extern "C" __global__ of our own around CUTLASS's kernel body (its plain name
is what traces show and `nm` finds). Tunables: TILE and STAGES, the GEMM path's choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kernelwright.agents.offline.codegen_elementwise import StepKernel
from kernelwright.agents.offline.codegen_gemm import (
    GEMM_HEADERS,
    MATH,
    MATH_CHOICES,
    SMALL_TILE,
    SMEM_LIMIT,
    STAGE_CHOICES,
    MathMode,
    Tile,
    math_mode,
    math_text,
    smem_opt_in,
)
from kernelwright.agents.offline.conv_plan import ConvLaunch, conv_launch, zero_insertion_fits
from kernelwright.agents.offline.gemm_plan import ELEMENT_BYTES
from kernelwright.agents.offline.ir import Buffer, ConvStep
from kernelwright.agents.offline.ops import SPEC, STORAGE_CTYPE

SCRATCH_ALIGN = 256  # bytes: each scratch tensor starts 16-byte (vector) aligned and then some


def default_tile(launch: ConvLaunch) -> str:
    return SMALL_TILE[launch.dtype] if launch.out_channels <= 64 else MATH[launch.dtype].tiles[0]


def conv_dims(step: ConvStep, buffers: Mapping[str, Buffer],
              allow_tf32: bool = False) -> list[tuple[str, tuple[Any, ...], Any]]:
    """(name, choices, default) of the step's tunables (space.plan_space wraps them as TuneDims). `allow_tf32`
    (Plan.allow_tf32): an fp32 conv also gets MATH (plain TF32, the default, or the split), as an fp32 GEMM does."""
    launch = conv_launch(step, buffers)
    mode = MATH[launch.dtype]
    dims: list[tuple[str, tuple[Any, ...], Any]] = [(f"{step.name}.TILE", mode.tiles, default_tile(launch)),
                                                    (f"{step.name}.STAGES", STAGE_CHOICES, mode.default_stages)]
    if allow_tf32 and launch.dtype == "float32":
        dims.append((f"{step.name}.MATH", MATH_CHOICES, MATH_CHOICES[0]))
    if zero_insertion_fits(step, buffers):
        dims.append((f"{step.name}.ZI", (0, 1), 0))  # the dgrad by default: the zero-inserted fprop is measured
    return dims


def scratch_layout(launch: ConvLaunch) -> tuple[int, int, int, int]:
    """Byte offsets of the NHWC input, the KRSC filter and the NHWC output (each one packed tensor per group,
    padded channels included) in the scratch buffer, and its size."""
    size = ELEMENT_BYTES[launch.dtype]
    parts = (launch.groups * launch.n * launch.in_channels * launch.in_spatial, launch.filter_numel,
             launch.groups * launch.n * launch.out_channels * launch.out_spatial)
    offsets, at = [], 0
    for numel in parts:
        offsets.append(at)
        at += -(-numel * size // SCRATCH_ALIGN) * SCRATCH_ALIGN
    return offsets[0], offsets[1], offsets[2], at


def conv_kernel(step: ConvStep, buffers: Mapping[str, Buffer], params: Mapping[str, Any],
                allow_tf32: bool = False) -> StepKernel:
    """`allow_tf32` (Plan.allow_tf32): an fp32 conv may run as plain TF32 (its MATH tunable, TF32 by default). ZI
    (conv_plan.zero_insertion_fits): a 3-D strided transposed conv as the zero-inserted fprop."""
    launch = conv_launch(step, buffers, zero_insert=bool(params.get("ZI")) and zero_insertion_fits(step, buffers))
    mode = math_mode(launch.dtype, params, allow_tf32)
    tile_text = str(params.get("TILE", default_tile(launch)))
    tile = Tile.parse(tile_text if tile_text in mode.tiles else default_tile(launch))
    stages = int(params.get("STAGES", mode.default_stages))
    if stages not in STAGE_CHOICES or tile.smem_bytes(stages, mode.element_bytes) > SMEM_LIMIT:
        stages = mode.default_stages
    iterator = "optimized" if launch.operator == "fprop" or launch.stride_support == "unity" or launch.dims == 2 \
        else "analytic"
    name = (f"kw_conv{launch.dims}d_{launch.operator}_{mode.tag}_{launch.stride_support[0]}{iterator[0]}_"
            f"a{launch.align_a}{launch.align_b}{launch.align_c}_{tile}_s{stages}")
    x_at, w_at, y_at, scratch = scratch_layout(launch)
    ptr = SPEC[launch.dtype]
    numbers = (launch.n, launch.c, launch.k, *launch.dhw, *launch.trs, *launch.zpq, *launch.pad, *launch.stride,
               *launch.dilation, int(step.bias is not None), launch.groups, launch.c_used, launch.k_used,
               *launch.src, *launch.zero_insert, int(launch.flip))
    spec = f"{ptr}, {ptr}, {ptr}, {ptr}, " + ", ".join(["i64"] * (len(numbers) + 3)) + ", i64, u8*"
    args = (step.input.buffer, step.weight.buffer, step.bias.buffer if step.bias else step.weight.buffer,
            step.outputs[0].buffer, *(str(v) for v in numbers), str(x_at), str(w_at), str(y_at), str(scratch))
    return StepKernel(step.name, _source(name, launch, mode, tile, stages, iterator), name, spec, args,
                      scratch_bytes=scratch, headers=GEMM_HEADERS)


CONV_COPY_INDEX = r"""
struct KwConvCopyIn {
    long long n, groups, used, channels;  // images, groups, real and padded channels per group
    long long sd, sh, sw;                 // the source's spatial size
    long long dd, dh, dw;                 // the destination's (zero-inserted: (source - 1) * stride + 1)
    long long zd, zh, zw;                 // zero-insertion strides (1: a plain copy)
};

// Where destination element (channel r, spatial index c) of one image comes from in that image's source: an offset,
// or -1 for a zero (a padded channel, or a sample the zero insertion adds). Without zero insertion the spatial index
// is the source's. With it, the index is taken apart in 32 bits (one image's spatial size is far below 2^32:
// conv_plan's tensor limit): 64-bit divisions, nine an element, made this copy compute-bound (level1/87 on an H100:
// 16 ms for 4 GB, about 6x its DRAM time). Host code too, so a C++ test checks it (test_conv_copy_index.py).
__host__ __device__ __forceinline__ long long kw_conv_copy_source(const KwConvCopyIn& m, long long r, long long c) {
    if (r >= m.used) return -1;
    const long long src_sp = m.sd * m.sh * m.sw;
    if (m.zd == 1 && m.zh == 1 && m.zw == 1) return r * src_sp + c;
    const unsigned dw = (unsigned)m.dw, dh = (unsigned)m.dh, zw = (unsigned)m.zw, zh = (unsigned)m.zh,
                   zd = (unsigned)m.zd, cc = (unsigned)c;
    const unsigned x = cc % dw, y = (cc / dw) % dh, z = cc / (dw * dh);
    if (x % zw != 0 || y % zh != 0 || z % zd != 0) return -1;
    return r * src_sp + (long long)(((z / zd) * (unsigned)m.sh + y / zh) * (unsigned)m.sw + x / zw);
}
"""  # also compiled as host C++ by tests/agents/offline/test_conv_copy_index.py

_COMMON = r"""
#include <cutlass/cutlass.h>
#include <cutlass/conv/conv2d_problem_size.h>
#include <cutlass/conv/conv3d_problem_size.h>
#include <cutlass/conv/kernel/default_conv2d_fprop.h>
#include <cutlass/conv/kernel/default_conv2d_dgrad.h>
#include <cutlass/conv/kernel/default_conv3d_fprop.h>
#include <cutlass/conv/kernel/default_conv3d_dgrad.h>
#include <cutlass/conv/device/implicit_gemm_convolution.h>
#include <cutlass/epilogue/thread/linear_combination.h>
#ifndef KW_CONV_COMMON
#define KW_CONV_COMMON
// The input NCHW (N, G * used, source spatial) -> one packed channels-last tensor per group (G, N, spatial,
// channels): channels past `used` are zeros, and with zero insertion (stride > 1) so is every position off the
// stride lattice. 32x32 tiles of (channel, position) through shared memory (both sides coalesced when nothing is
// inserted); tiles on the grid's x, the (group, image) pair on y.
""" + CONV_COPY_INDEX + r"""
template <typename T>
__global__ void kw_conv_copy_in(const T* __restrict__ in, T* __restrict__ out, KwConvCopyIn m, long long b0,
                                long long col_tiles) {
    __shared__ T tile[32][33];
    const long long b = b0 + blockIdx.y, g = b / m.n, img = b % m.n;
    const long long rows = m.channels, cols = m.dd * m.dh * m.dw, src_sp = m.sd * m.sh * m.sw;
    const long long r0 = (long long)(blockIdx.x / col_tiles) * 32, c0 = (long long)(blockIdx.x % col_tiles) * 32;
    const T* src = in + (img * m.groups + g) * m.used * src_sp;
    for (int i = threadIdx.y; i < 32; i += 8) {
        const long long r = r0 + i, c = c0 + threadIdx.x;
        if (r < rows && c < cols) {
            const long long at = kw_conv_copy_source(m, r, c);
            tile[i][threadIdx.x] = at < 0 ? KwStore<T>::of(0.0f) : src[at];
        }
    }
    __syncthreads();
    out += b * rows * cols;
    for (int i = threadIdx.y; i < 32; i += 8) {
        const long long c = c0 + i, r = r0 + threadIdx.x;
        if (r < rows && c < cols) out[c * rows + r] = tile[threadIdx.x][i];
    }
}

// Per group channels-last (G, N, spatial, channels) -> the output NCHW (N, G * used, spatial), dropping the
// padded channels, with the bias added (a per-channel add: it rides on this pass).
struct KwConvCopyOut {
    long long n, groups, used, channels, spatial;
};

template <typename T>
__global__ void kw_conv_copy_out(const T* __restrict__ in, T* __restrict__ out, const T* __restrict__ bias,
                                 KwConvCopyOut m, long long b0, long long col_tiles) {
    __shared__ T tile[32][33];
    const long long b = b0 + blockIdx.y, g = b / m.n, img = b % m.n;
    const long long rows = m.spatial, cols = m.channels;
    const long long r0 = (long long)(blockIdx.x / col_tiles) * 32, c0 = (long long)(blockIdx.x % col_tiles) * 32;
    in += b * rows * cols;
    for (int i = threadIdx.y; i < 32; i += 8) {
        const long long r = r0 + i, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[i][threadIdx.x] = in[r * cols + c];
    }
    __syncthreads();
    T* dst = out + (img * m.groups + g) * m.used * m.spatial;
    for (int i = threadIdx.y; i < 32; i += 8) {
        const long long c = c0 + i, r = r0 + threadIdx.x;
        if (r < rows && c < m.used) {
            const T v = tile[threadIdx.x][i];
            dst[c * rows + r] = bias ? KwStore<T>::of(kw_cvt(v) + kw_cvt(bias[g * m.used + c])) : v;
        }
    }
}

// The weight -> one channels-last filter per group (G, K, taps, C), zeros past the real channels. `flip`: the
// weight is a transposed conv's (G * C, K, taps) and the filter that conv's as a forward one over the
// zero-inserted input: its two channel roles swapped and its taps reversed (every kernel dim flipped).
template <typename T>
__global__ void kw_conv_filter(const T* __restrict__ w, T* __restrict__ out, long long k, long long c,
                               long long k_used, long long c_used, long long taps, int flip, long long total) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const long long ci = i % c, tap = (i / c) % taps, ki = (i / (c * taps)) % k, g = i / (c * taps * k);
        T v = KwStore<T>::of(0.0f);
        if (ci < c_used && ki < k_used)
            v = flip ? w[((g * c_used + ci) * k_used + ki) * taps + (taps - 1 - tap)]
                     : w[((g * k_used + ki) * c_used + ci) * taps + tap];
        out[i] = v;
    }
}

template <typename T>
static int kw_conv_copy_in_launch(const T* in, T* out, const KwConvCopyIn& m, cudaStream_t stream) {
    const long long rows = m.channels, cols = m.dd * m.dh * m.dw, batch = m.groups * m.n;
    if (batch == 0 || rows == 0 || cols == 0) return 0;
    const long long col_tiles = (cols + 31) / 32, tiles = (rows + 31) / 32 * col_tiles;
    for (long long b0 = 0; b0 < batch; b0 += 65535) {  // the grid's y holds 65535 at most
        const long long nb = batch - b0 < 65535 ? batch - b0 : 65535;
        kw_conv_copy_in<T><<<dim3((unsigned)tiles, (unsigned)nb), dim3(32, 8), 0, stream>>>(in, out, m, b0, col_tiles);
    }
    return (int)cudaGetLastError();
}

template <typename T>
static int kw_conv_copy_out_launch(const T* in, T* out, const T* bias, const KwConvCopyOut& m, cudaStream_t stream) {
    const long long rows = m.spatial, cols = m.channels, batch = m.groups * m.n;
    if (batch == 0 || rows == 0 || cols == 0) return 0;
    const long long col_tiles = (cols + 31) / 32, tiles = (rows + 31) / 32 * col_tiles;
    for (long long b0 = 0; b0 < batch; b0 += 65535) {
        const long long nb = batch - b0 < 65535 ? batch - b0 : 65535;
        kw_conv_copy_out<T><<<dim3((unsigned)tiles, (unsigned)nb), dim3(32, 8), 0, stream>>>(in, out, bias, m, b0,
                                                                                             col_tiles);
    }
    return (int)cudaGetLastError();
}

template <typename T>
static int kw_conv_filter_launch(const T* w, T* out, long long groups, long long k, long long c, long long k_used,
                                 long long c_used, long long taps, int flip, cudaStream_t stream) {
    const long long total = groups * k * c * taps;
    if (total == 0) return 0;
    const long long blocks = (total + 255) / 256 < (1ll << 20) ? (total + 255) / 256 : (1ll << 20);
    kw_conv_filter<T><<<(unsigned)blocks, 256, 0, stream>>>(w, out, k, c, k_used, c_used, taps, flip, total);
    return (int)cudaGetLastError();
}
#endif
"""

_TEMPLATE = r"""
// ---- {name}: {dtype} {dims}-D {operator} ({what}), implicit GEMM on tensor cores ({math})
using {name}_t = typename cutlass::conv::kernel::DefaultConv{dims}d{Operator}<
    {element}, {layout}, {element}, {layout}, {element}, {layout}, float,
    cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
    cutlass::gemm::GemmShape<{tm}, {tn}, {tk}>, cutlass::gemm::GemmShape<{wm}, {wn}, {tk}>,
    cutlass::gemm::GemmShape<{im}, {in_}, {ik}>,
    cutlass::epilogue::thread::LinearCombination<{element}, {align_c}, float, float>,
    {swizzle}, {stages}, {operator_tag},
    cutlass::conv::IteratorAlgorithm::k{Iterator}, cutlass::conv::StrideSupport::k{Stride}{alignments}>::Kernel;

// C linkage: the symbol is the plain name (traces, `nm`), not one mangled over CUTLASS's template arguments.
extern "C" __global__ void __launch_bounds__({name}_t::kThreadCount) {name}_kernel(typename {name}_t::Params params) {{
    extern __shared__ int kw_conv_smem[];
    {name}_t op;
    op(params, *reinterpret_cast<typename {name}_t::SharedStorage*>(kw_conv_smem));
}}

// x: the step's input (NCHW), w: its weight (KCRS; a transposed conv's (C_in, C_out / groups, ...) is CUTLASS's
// KCRS of the conv it is the gradient of), y: its output (NCHW). The sizes are one group's as CUTLASS sees them
// (c and k padded with zero channels; c_used and k_used real). The scratch holds x and w channels-last, one
// packed tensor per group, and the result.
extern "C" int {name}(const {storage}* x, const {storage}* w, const {storage}* bias, {storage}* y, long long n,
                      long long c, long long k, long long d, long long h, long long wd, long long t, long long r,
                      long long s, long long z, long long p, long long q, long long pad_d, long long pad_h,
                      long long pad_w, long long stride_d, long long stride_h, long long stride_w, long long dil_d,
                      long long dil_h, long long dil_w, long long has_bias, long long groups, long long c_used,
                      long long k_used, long long src_d, long long src_h, long long src_w, long long zi_d,
                      long long zi_h, long long zi_w, long long flip, long long x_at, long long w_at,
                      long long y_at, long long scratch_bytes, unsigned char* scratch, cudaStream_t stream) {{
    using Kernel = {name}_t;
    using Element = {element};
    const bool fprop = {fprop};
    const long long in_ch = fprop ? c : k, out_ch = fprop ? k : c;
    const long long in_used = fprop ? c_used : k_used, out_used = fprop ? k_used : c_used;
    const long long act = d * h * wd, grad = z * p * q;
    const long long in_sp = fprop ? act : grad, out_sp = fprop ? grad : act;
    {storage}* x_cl = reinterpret_cast<{storage}*>(scratch + x_at);
    {storage}* w_cl = reinterpret_cast<{storage}*>(scratch + w_at);
    {storage}* y_cl = reinterpret_cast<{storage}*>(scratch + y_at);
    if (y_at + groups * n * out_ch * out_sp * (long long)sizeof({storage}) > scratch_bytes) return (int)cudaErrorInvalidValue;
    const KwConvCopyIn copy_in{{n, groups, in_used, in_ch, src_d, src_h, src_w, fprop ? d : z, fprop ? h : p,
                                fprop ? wd : q, zi_d, zi_h, zi_w}};
    int e = kw_conv_copy_in_launch<{storage}>(x, x_cl, copy_in, stream);
    if (e) return e;
    e = kw_conv_filter_launch<{storage}>(w, w_cl, groups, k, c, k_used, c_used, t * r * s, (int)flip, stream);
    if (e) return e;
    // CUTLASS 2.x indexes one tensor with 32-bit offsets: slices of whole images, each under 2 GiB per tensor
    const long long image = (in_ch * in_sp > out_ch * out_sp ? in_ch * in_sp : out_ch * out_sp) * (long long)sizeof(Element);
    const long long per_slice = ((1ll << 31) - 1) / image;
    if (per_slice < 1) return (int)cudaErrorInvalidValue;
{smem_opt_in}
    for (long long g = 0; g < groups; ++g) {{  // one implicit GEMM per group, on that group's packed tensors
      for (long long n0 = 0; n0 < n; n0 += per_slice) {{
        const int nb = (int)(n - n0 < per_slice ? n - n0 : per_slice);
        Element* in_ptr = reinterpret_cast<Element*>(x_cl + (g * n + n0) * in_ch * in_sp);
        Element* out_ptr = reinterpret_cast<Element*>(y_cl + (g * n + n0) * out_ch * out_sp);
        Element* filter = reinterpret_cast<Element*>(w_cl + g * k * t * r * s * c);
        Element* act_ptr = fprop ? in_ptr : out_ptr;
        Element* grad_ptr = fprop ? out_ptr : in_ptr;
{problem}
        const {layout} act_layout = {layout}::packed({act_extent});
        const {layout} filter_layout = {layout}::packed({filter_extent});
        const {layout} grad_layout = {layout}::packed({grad_extent});
        const {layout} out_layout = fprop ? grad_layout : act_layout;
        typename Kernel::Arguments args(problem,
            {{fprop ? act_ptr : grad_ptr, fprop ? act_layout : grad_layout}}, {{filter, filter_layout}},
            {{out_ptr, out_layout}}, {{out_ptr, out_layout}}, {{1.0f, 0.0f}});
        if (cutlass::conv::device::ImplicitGemmConvolution<Kernel>::can_implement(args) != cutlass::Status::kSuccess)
            return (int)cudaErrorInvalidValue;
        typename Kernel::Params params(args, nullptr);
        typename Kernel::ThreadblockSwizzle swizzle;
        {name}_kernel<<<swizzle.get_grid_shape(params.grid_tiled_shape), Kernel::kThreadCount, smem, stream>>>(params);
        e = (int)cudaGetLastError();
        if (e) return e;
      }}
    }}
    const KwConvCopyOut copy_out{{n, groups, out_used, out_ch, out_sp}};
    return kw_conv_copy_out_launch<{storage}>(y_cl, y, has_bias ? bias : nullptr, copy_out, stream);
}}
"""

_PROBLEM_2D = """        const cutlass::conv::Conv2dProblemSize problem(nb, (int)h, (int)wd, (int)c, (int)k, (int)r, (int)s, (int)p,
            (int)q, (int)pad_h, (int)pad_w, (int)stride_h, (int)stride_w, (int)dil_h, (int)dil_w,
            cutlass::conv::Mode::kCrossCorrelation);"""
_PROBLEM_3D = """        const cutlass::conv::Conv3dProblemSize problem(nb, (int)d, (int)h, (int)wd, (int)c, (int)k, (int)t, (int)r,
            (int)s, (int)z, (int)p, (int)q, (int)pad_d, (int)pad_h, (int)pad_w, (int)stride_d, (int)stride_h,
            (int)stride_w, (int)dil_d, (int)dil_h, (int)dil_w, cutlass::conv::Mode::kCrossCorrelation);"""


def _source(name: str, launch: ConvLaunch, mode: MathMode, tile: Tile, stages: int, iterator: str) -> str:
    im, in_, ik = mode.instruction
    three = launch.dims == 3
    strided_dgrad = launch.operator == "dgrad" and launch.stride_support == "strided" and not three
    swizzle = ("cutlass::conv::threadblock::StridedDgradIdentityThreadblockSwizzle<1>" if strided_dgrad
               else "cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<4>")
    if three:
        extents = ("cutlass::Tensor5DCoord((int)nb, (int)d, (int)h, (int)wd, (int)c)",
                   "cutlass::Tensor5DCoord((int)k, (int)t, (int)r, (int)s, (int)c)",
                   "cutlass::Tensor5DCoord((int)nb, (int)z, (int)p, (int)q, (int)k)")
    else:
        extents = ("cutlass::Tensor4DCoord((int)nb, (int)h, (int)wd, (int)c)",
                   "cutlass::Tensor4DCoord((int)k, (int)r, (int)s, (int)c)",
                   "cutlass::Tensor4DCoord((int)nb, (int)p, (int)q, (int)k)")
    what = "a transposed convolution as the data gradient of a convolution" if launch.operator == "dgrad" else "a convolution"
    math = math_text(mode, launch.dtype)
    return _COMMON + _TEMPLATE.format(
        name=name, dtype=launch.dtype, dims=launch.dims, operator=launch.operator, what=what, math=math,
        Operator="Fprop" if launch.operator == "fprop" else "Dgrad", element=mode.element,
        layout="cutlass::layout::TensorNDHWC" if three else "cutlass::layout::TensorNHWC",
        tm=tile.m, tn=tile.n, tk=tile.k, wm=tile.warp_m, wn=tile.warp_n, im=im, in_=in_, ik=ik,
        align_a=launch.align_a, align_b=launch.align_b, align_c=launch.align_c, swizzle=swizzle, stages=stages,
        operator_tag=mode.operator, Iterator=iterator.capitalize(),
        Stride="Unity" if launch.stride_support == "unity" else "Strided", storage=STORAGE_CTYPE[launch.dtype],
        fprop="true" if launch.operator == "fprop" else "false", problem=_PROBLEM_3D if three else _PROBLEM_2D,
        act_extent=extents[0], filter_extent=extents[1], grad_extent=extents[2],
        alignments="" if three else f", {launch.align_a}, {launch.align_b}",  # 3-D kernels load 16 bytes only
        smem_opt_in=smem_opt_in(name, "err"))
