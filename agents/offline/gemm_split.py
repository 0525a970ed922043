"""fp32 GEMMs on tensor cores at fp32 accuracy: the 3xTF32 split.

Eager PyTorch runs fp32 matmuls on the SIMT units (TF32 is off by default for matmul), about an eighth
of the H100's TF32 tensor-core rate. Plain TF32 keeps only 10 mantissa bits and misses the fp32
tolerance. Splitting each operand into hi = round_tf32(x) and lo = x - hi and summing three TF32
products, hi*hi + lo*hi + hi*lo (lo*lo is below fp32 rounding), keeps the products exact to ~2^-21 at 3/8 of
the tensor-core time. What error remains is the tensor cores' fp32 accumulation: on an H100 at K=2048 the
relative L2 error was 1.5e-5 (SIMT fp32: 5.6e-7, plain TF32: 2.0e-4), inside the harness's fp32 tolerance. The three products are one library GEMM over a tripled K: A' = [hi | lo | hi] along
K, B' = [hi | hi | lo] along K, so A' @ B' is the sum; a small custom kernel writes A' and B'.

A host step qualifies when it is an fp32 linear / matmul / mm / bmm / addmm with plain arguments, or an fp32
conv1d/2d/3d or conv_transpose1d/2d/3d (library convolutions: one the candidate writes itself is a ConvStep,
codegen_conv): a convolution is a GEMM over K = in-channels x taps, so tripling each group's input channels into
[hi | lo | hi] and the weight's into [hi | hi | lo] makes one cuDNN TF32 convolution compute the split's sum. A
transposed convolution sums over its input channels too (its weight is (in, out / groups, taps...), input channels
first), so the same tripling of the input and of the weight's first dim serves it. The mode is a
tunable ("tf32x3" or "fp32") so the tuner can keep the plain GEMM where the split costs more than it saves; its
default comes from split_pays()'s roofline estimate.

The split's remaining error grows with K where the running sums are large next to the result: KernelBench's level-2
GEMMs draw their inputs from [0, 1), so at K=8192 the split came out at relative L2 8.4e-5 to 1.6e-4 on an H100
(one problem's scaled trial failed the strict tolerance), where a CPU emulation of the same split with exact
accumulation gives 7.8e-8. A fourth mode, "tf32x3k", sums K in pieces of K_CHUNK: one batched TF32 GEMM over the
pieces' splits, then the pieces' sum in fp32 on the SIMT units, so each tensor-core sum runs over 3 x K_CHUNK terms
(linear, addmm and 2-D matmul; other matmuls fall back to the plain split). It costs one extra pass over the
pieces' outputs. On an H100 (linear 1024 x 8192 x 8192, inputs in [0, 8)) it came out at relative L2 1.1e-5 in
1.92 ms, where the whole-K split drifted to 8.4e-5 in 1.38 ms and fp32 took 2.72 ms: so from CHUNKED_FROM_K on it is
the default wherever the split pays (the whole-K split and fp32 stay the tuner's choices).

Plain TF32 ("tf32": the library op with TF32 allowed, no split) is a third mode only where the run's precision
profile admits TF32's error (PrecisionProfile.allows_tf32, carried as Plan.allow_tf32): the kernelbench profile,
whose reference itself runs under PyTorch's defaults at atol = rtol = 1e-2. There it is the default above a small
size floor: it is the split's tensor-core speed without its tripled K or extra passes. Under the strict profile
the choices, defaults and emitted code are those of the split alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from math import prod

from kernelwright.agents.offline.conv_layout import channels_last_args
from kernelwright.agents.offline.conv_plan import CONV_TARGETS
from kernelwright.agents.offline.ir import Buffer, HostStep, Layout, Plan

FP32, TF32 = "fp32", "tf32"  # the library GEMM itself: plain fp32, or with TF32 allowed (profiles that admit it)
SPLIT, CHUNKED = "tf32x3", "tf32x3k"  # the split over the whole K, and summed in pieces of K
MODES = (FP32, SPLIT, CHUNKED)  # the choices under a profile that keeps fp32 accuracy (strict)
# Where the profile allows plain TF32: TF32 last. The fill moves every dim up a choice before any down
# (TuneSpace.neighbours_up_first), and under such a profile the other modes only add accuracy (fp32 leaves the
# tensor cores; the split runs three GEMMs: level2/32's convolution took 12.8 ms split against 4.9 ms in TF32 on
# an H100), so from TF32 the fill's first slots go to other dims (a convolution's LAYOUT) and from fp32 (a small
# GEMM's default) up to TF32.
TF32_MODES = (SPLIT, CHUNKED, FP32, TF32)
SPLIT_MODES = (SPLIT, CHUNKED)  # the modes whose candidates need the split kernel and its helpers
K_CHUNK = 1024  # the K of each tensor-core sum in "tf32x3k" (the split triples it)
# From this K on, a GEMM that takes the split sums it in pieces by default: at K=8192 the whole-K split drifted past
# the fp32 tolerance on an H100 (see the module's doc); at K=2048 it stayed at 1.5e-5, and the error grows about
# linearly with K on non-negative inputs.
CHUNKED_FROM_K = 4096
SPLIT_LAUNCHER = "kw_tf32x3_split"
SPLIT_SPEC = "f32*, f32*, i64, i64, i64, i32"
# Below ~1 GFLOP the split's extra memory passes and launch are not repaid by the faster GEMM.
MIN_FLOPS_FOR_SPLIT = 1 << 30
# The roofline split_pays() uses (H100 SXM: 67 TFLOP/s fp32 SIMT, ~470 TF32 dense, 3.35 TB/s; A100's ratios are
# close): flops per byte at which fp32 SIMT stops being memory-bound, and TF32 tensor cores' speed over fp32 SIMT.
RIDGE_FP32 = 20.0
TENSOR_CORE_SPEEDUP = 7.0
SPLIT_MARGIN = 0.8  # the estimate must promise at least 20%: the model is rough
# Plain TF32 costs nothing but switching the backend flags around the call (a few microseconds of host time, the
# GPU's queue hides it while it has work): below 64 MFLOP (about a microsecond of fp32 SIMT) there is nothing to win.
MIN_FLOPS_FOR_TF32 = 1 << 26

_TARGETS = {"aten.linear.default": "linear", "aten.matmul.default": "matmul", "aten.mm.default": "matmul",
            "aten.bmm.default": "matmul", "aten.addmm.default": "addmm",
            # every convolution op conv_plan knows, transposed or not (their overloads take the same arguments)
            **{target: "conv_transpose" if transposed else "conv" for target, (_, transposed) in CONV_TARGETS.items()}}
CONV_KINDS = ("conv", "conv_transpose")  # a step of these kinds gets its library op as the helper's first argument

SPLIT_CUDA = r"""
// ---- 3xTF32 operand split: out = [hi | part1 | part2] along K; bit p of `pattern` set = part p is lo,
// clear = a second copy of hi. A non-finite x keeps hi = x and zeros in both other parts, so every product
// it takes part in is x * (the other operand's hi) alone: inf and NaN come out exactly as in fp32
// (a copy of inf meeting a zero lo would otherwise make a NaN).
__device__ __forceinline__ void kw_tf32_parts(float x, float& hi, float& lo, float& dup) {
    if (!isfinite(x)) { hi = x; lo = 0.0f; dup = 0.0f; return; }
    unsigned u = __float_as_uint(x);
    float h = __uint_as_float((u + 0x1000u) & 0xffffe000u);  // round to nearest TF32 (10 mantissa bits)
    if (!isfinite(h)) h = __uint_as_float(u & 0xffffe000u);  // rounding overflowed to inf: truncate instead
    hi = h;
    lo = x - h;  // exact in fp32
    dup = h;
}

__global__ void kw_tf32x3_split_vec(const float4* __restrict__ x, float* __restrict__ out, long long n4,
                                    long long ki, int pattern) {
    for (long long v = blockIdx.x * (long long)blockDim.x + threadIdx.x; v < n4; v += (long long)gridDim.x * blockDim.x) {
        float4 in = x[v];
        float4 hi, lo, dup;
        kw_tf32_parts(in.x, hi.x, lo.x, dup.x); kw_tf32_parts(in.y, hi.y, lo.y, dup.y);
        kw_tf32_parts(in.z, hi.z, lo.z, dup.z); kw_tf32_parts(in.w, hi.w, lo.w, dup.w);
        long long e = v * 4, o = e / ki, base = o * 3 * ki + (e - o * ki);
        *reinterpret_cast<float4*>(out + base) = hi;
        *reinterpret_cast<float4*>(out + base + ki) = ((pattern >> 1) & 1) ? lo : dup;
        *reinterpret_cast<float4*>(out + base + 2 * ki) = ((pattern >> 2) & 1) ? lo : dup;
    }
}

__global__ void kw_tf32x3_split_scalar(const float* __restrict__ x, float* __restrict__ out, long long n,
                                       long long ki, int pattern) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        float hi, lo, dup;
        kw_tf32_parts(x[e], hi, lo, dup);
        long long o = e / ki, base = o * 3 * ki + (e - o * ki);
        out[base] = hi;
        out[base + ki] = ((pattern >> 1) & 1) ? lo : dup;
        out[base + 2 * ki] = ((pattern >> 2) & 1) ? lo : dup;
    }
}

extern "C" int kw_tf32x3_split(const float* x, float* out, long long outer, long long k, long long inner,
                               int pattern, cudaStream_t stream) {
    long long ki = k * inner, n = outer * ki;
    if (n == 0) return 0;
    const int threads = 256;
    bool vec = ki % 4 == 0 && ((unsigned long long)x % 16) == 0 && ((unsigned long long)out % 16) == 0;
    long long work = vec ? n / 4 : n;
    long long blocks = (work + threads - 1) / threads;
    if (blocks > 8192) blocks = 8192;
    if (vec) kw_tf32x3_split_vec<<<(unsigned)blocks, threads, 0, stream>>>(reinterpret_cast<const float4*>(x), out, n / 4, ki, pattern);
    else kw_tf32x3_split_scalar<<<(unsigned)blocks, threads, 0, stream>>>(x, out, n, ki, pattern);
    return (int)cudaGetLastError();
}
"""

# The backend flags for TF32 inside a `with _kw_tf32():` block only (both the split and plain TF32 use it).
TF32_BLOCK_PYTHON = '''
class _kw_tf32:
    """TF32 for fp32 matmuls and convolutions inside the block only (the split keeps fp32 accuracy)."""

    def __enter__(self):
        self.saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True

    def __exit__(self, *exc):
        torch.set_float32_matmul_precision(self.saved[0])
        torch.backends.cudnn.allow_tf32 = self.saved[1]
'''

# Python emitted into the candidate (needs the candidate's _kw_lib); A gets [hi, lo, hi], B gets [hi, hi, lo].
SPLIT_PYTHON = f'''
_KW_A_PARTS, _KW_B_PARTS = 0b010, 0b100
_KW_K_CHUNK = {K_CHUNK}


def _kw_split3(t, along_last, pattern):
    """t with its K dim tripled into TF32 hi/lo parts (K is the last dim, or the second-to-last)."""
    t = t.contiguous()
    if along_last:
        k, inner, shape = t.shape[-1], 1, (*t.shape[:-1], 3 * t.shape[-1])
    else:
        k, inner, shape = t.shape[-2], t.shape[-1], (*t.shape[:-2], 3 * t.shape[-2], t.shape[-1])
    out = torch.empty(shape, dtype=t.dtype, device=t.device)
    _kw_lib.kw_tf32x3_split(t, out, t.numel() // max(1, k * inner), k, inner, pattern)
    return out

''' + TF32_BLOCK_PYTHON + '''

def _kw_linear_tf32x3(x, w, b=None):
    xs, ws = _kw_split3(x, True, _KW_A_PARTS), _kw_split3(w, True, _KW_B_PARTS)
    with _kw_tf32():
        return torch.ops.aten.linear.default(xs, ws, b)


def _kw_matmul_tf32x3(a, b):
    a3, b3 = _kw_split3(a, True, _KW_A_PARTS), _kw_split3(b, False, _KW_B_PARTS)
    with _kw_tf32():
        return torch.matmul(a3, b3)


def _kw_addmm_tf32x3(bias, a, b):
    a3, b3 = _kw_split3(a, True, _KW_A_PARTS), _kw_split3(b, False, _KW_B_PARTS)
    with _kw_tf32():
        return torch.ops.aten.addmm.default(bias, a3, b3)


def _kw_gemm_tf32x3k(a, b, b_is_nk):
    """a (M, K) @ B as the split summed in pieces of K: one batched TF32 GEMM over each piece's [hi | lo | hi]
    and [hi | hi | lo] (a short tensor-core sum each), then the pieces' sum in fp32. B is b (K, N), or b (N, K)
    transposed when `b_is_nk` (a linear's weight). K is zero-padded to a whole number of pieces."""
    k = a.shape[-1]
    c = max(1, -(-k // _KW_K_CHUNK))
    kc = -(-k // c)
    pad = kc * c - k
    if pad:
        a = torch.nn.functional.pad(a, (0, pad))
        b = torch.nn.functional.pad(b, (0, pad) if b_is_nk else (0, 0, 0, pad))
    a3 = _kw_split3(a.reshape(a.shape[0], c, kc).transpose(0, 1), True, _KW_A_PARTS)  # (c, M, 3kc)
    if b_is_nk:
        b3 = _kw_split3(b.reshape(b.shape[0], c, kc).transpose(0, 1), True, _KW_B_PARTS).transpose(1, 2)
    else:
        b3 = _kw_split3(b.reshape(c, kc, b.shape[-1]), False, _KW_B_PARTS)  # (c, 3kc, N)
    with _kw_tf32():
        pieces = torch.bmm(a3, b3)  # (c, M, N)
    return pieces.sum(0)


def _kw_linear_tf32x3k(x, w, b=None):
    out = _kw_gemm_tf32x3k(x.reshape(-1, x.shape[-1]), w, True).reshape(*x.shape[:-1], w.shape[0])
    return out + b if b is not None else out


def _kw_matmul_tf32x3k(a, b):
    if a.dim() != 2 or b.dim() != 2:
        return _kw_matmul_tf32x3(a, b)  # batched or broadcast: the plain split
    return _kw_gemm_tf32x3k(a, b, False)


def _kw_addmm_tf32x3k(bias, a, b):
    return _kw_gemm_tf32x3k(a, b, False) + bias


def _kw_conv_tf32x3(conv, x, w, *rest, cl=False):
    """conv(x, w, *rest) as one TF32 convolution over tripled input channels: each group's channels become
    [hi | lo | hi] in x and [hi | hi | lo] in w, so the group's sum over its channels is the three products' sum.
    `rest`: the op's own further arguments, as the step passes them (bias, stride, padding, dilation, groups).
    `cl`: the tripled operands go to channels-last memory first (conv_layout)."""
    groups = rest[4] if len(rest) > 4 else 1
    n, c, co, cg = x.shape[0], x.shape[1], w.shape[0], w.shape[1]
    x3 = _kw_split3(x.reshape(n * groups, cg, -1), False, _KW_A_PARTS).reshape(n, 3 * c, *x.shape[2:])
    w3 = _kw_split3(w.reshape(co, cg, -1), False, _KW_B_PARTS).reshape(co, 3 * cg, *w.shape[2:])
    with _kw_tf32():
        return conv(_kw_cl(x3), _kw_cl(w3), *rest) if cl else conv(x3, w3, *rest)


def _kw_conv_transpose_tf32x3(conv, x, w, *rest, cl=False):
    """conv_transpose(x, w, *rest) as one TF32 transposed convolution over tripled input channels: its weight is
    (in, out / groups, taps...), so each group's input channels become [hi | lo | hi] in x and [hi | hi | lo] in
    w's first dim. `rest`: bias, stride, padding, output_padding, groups, dilation, as the step passes them.
    `cl`: as for _kw_conv_tf32x3."""
    groups = rest[4] if len(rest) > 4 else 1
    n, c = x.shape[0], x.shape[1]
    cg = c // groups
    x3 = _kw_split3(x.reshape(n * groups, cg, -1), False, _KW_A_PARTS).reshape(n, 3 * c, *x.shape[2:])
    w3 = _kw_split3(w.reshape(groups, cg, -1), False, _KW_B_PARTS).reshape(3 * c, *w.shape[1:])
    with _kw_tf32():
        return conv(_kw_cl(x3), _kw_cl(w3), *rest) if cl else conv(x3, w3, *rest)
'''

# Plain TF32 (only where the precision profile allows it): the library op itself with TF32 on.
TF32_CALL_PYTHON = '''

def _kw_tf32_call(op, *args):
    """op(*args) in plain TF32 (fp32 accumulate): the run's precision profile admits TF32's error."""
    with _kw_tf32():
        return op(*args)
'''

HELPER_FOR = {"linear": "_kw_linear_tf32x3", "matmul": "_kw_matmul_tf32x3", "addmm": "_kw_addmm_tf32x3",
              "conv": "_kw_conv_tf32x3", "conv_transpose": "_kw_conv_transpose_tf32x3"}
CHUNKED_HELPER_FOR = {"linear": "_kw_linear_tf32x3k", "matmul": "_kw_matmul_tf32x3k", "addmm": "_kw_addmm_tf32x3k"}


def gemm_kind(step: HostStep, buffers: Mapping[str, Buffer]) -> str | None:
    """'linear' | 'matmul' | 'addmm' | 'conv' | 'conv_transpose' when the step can take the 3xTF32 path, else None."""
    kind = _TARGETS.get(step.target)
    if kind is None or step.kwargs:
        return None
    if kind in CONV_KINDS:
        return kind if _plain_conv(step, buffers) else None
    tensors = [a for a in step.args if isinstance(a, Layout)]
    if len(tensors) != len(step.args) or any(buffers[t.buffer].dtype != "float32" for t in tensors):
        return None
    if kind == "linear" and (len(tensors) not in (2, 3) or len(tensors[1].shape) != 2 or len(tensors[0].shape) < 1):
        return None
    if kind == "matmul" and (len(tensors) != 2 or min(len(t.shape) for t in tensors) < 2):
        return None
    if kind == "addmm" and (len(tensors) != 3 or any(len(t.shape) != 2 for t in tensors[1:])):
        return None
    return kind


def _plain_conv(step: HostStep, buffers: Mapping[str, Buffer]) -> bool:
    """A batched fp32 convolution with numeric padding (the split reshapes the input by groups)."""
    x, w = step.args[0], step.args[1] if len(step.args) > 1 else None
    bias = step.args[2] if len(step.args) > 2 else None
    if not (isinstance(x, Layout) and isinstance(w, Layout)) or len(x.shape) != len(w.shape):
        return False
    if bias is not None and not isinstance(bias, Layout):
        return False
    if any(isinstance(a, Layout) for a in step.args[3:]) or (len(step.args) > 4 and isinstance(step.args[4], str)):
        return False  # padding="same"/"valid" is fine for the library but simpler to leave alone
    tensors = [t for t in (x, w, bias) if isinstance(t, Layout)]
    return all(buffers[t.buffer].dtype == "float32" for t in tensors) and len(step.outputs) == 1


def _operands(step: HostStep, kind: str) -> tuple[list[int], list[int]]:
    """The two GEMM operands' shapes (A with K last, B), as the step passes them."""
    tensors = [a for a in step.args if isinstance(a, Layout)]
    a, b = (tensors[1], tensors[2]) if kind == "addmm" else (tensors[0], tensors[1])
    return list(a.shape), list(b.shape)


def gemm_flops(step: HostStep, kind: str, buffers: Mapping[str, Buffer] | None = None) -> int:
    """`buffers`: needed for a convolution (its output's size)."""
    a, b = _operands(step, kind)
    if kind == "conv_transpose":
        return 2 * prod(a) * prod(b[1:])  # each input element meets out-channels of its group x taps
    if kind == "conv":
        assert buffers is not None, "a convolution's flops need the plan's buffers"
        out = buffers[str(step.outputs[0])].numel
        return 2 * out * prod(b[1:])  # each output element: in-channels of its group x taps
    if kind == "linear":
        return 2 * prod(a) * b[0]
    batch = max(prod(a[:-2]), prod(b[:-2]))
    return 2 * batch * a[-2] * a[-1] * b[-1]


def gemm_elements(step: HostStep, kind: str, buffers: Mapping[str, Buffer] | None = None) -> tuple[int, int, int]:
    """Elements of A, B and the output (batch broadcast included)."""
    a, b = _operands(step, kind)
    if kind in CONV_KINDS:
        assert buffers is not None, "a convolution's output size needs the plan's buffers"
        return prod(a), prod(b), buffers[str(step.outputs[0])].numel
    flops = gemm_flops(step, kind)
    k = a[-1]
    return prod(a), prod(b), flops // (2 * k) if k else 0


def split_pays(step: HostStep, kind: str, buffers: Mapping[str, Buffer] | None = None) -> bool:
    """A roofline estimate of both paths, in units where fp32 SIMT does 1 flop and DRAM moves
    1 / RIDGE_FP32 bytes per unit of time: the split pays when its tensor-core GEMM plus the extra operand
    passes (read A and B, write and read them three times over) beat the plain fp32 GEMM. A memory-bound GEMM
    (a GEMV, a batch of two rows against a huge weight) never takes it: it would only move more bytes. cuBLAS
    also picked a less accurate TF32 kernel for such a shape on an H100 (batch 2, K=16384, N=49152: relative L2
    error 1.6e-4 against fp64, over the fp32 tolerance, while every compute-bound shape tried stayed under 4e-5)."""
    flops = gemm_flops(step, kind, buffers)
    if flops < MIN_FLOPS_FOR_SPLIT:
        return False
    a, b, c = gemm_elements(step, kind, buffers)
    plain = max(flops, 4 * (a + b + c) * RIDGE_FP32)
    split = 4 * 4 * (a + b) * RIDGE_FP32 + max(3 * flops / TENSOR_CORE_SPEEDUP, 4 * (3 * (a + b) + c) * RIDGE_FP32)
    return split < SPLIT_MARGIN * plain


def mode_choices(allow_tf32: bool = False, kind: str | None = None) -> tuple[str, ...]:
    """The GEMM modes a step of `kind` may take: plain TF32 only where the run's precision profile allows it, the
    split in pieces of K only for linear, addmm and matmul (a convolution's K is its channels x taps)."""
    modes = TF32_MODES if allow_tf32 else MODES
    return modes if kind in CHUNKED_HELPER_FOR else tuple(m for m in modes if m != CHUNKED)


def default_mode(step: HostStep, kind: str, buffers: Mapping[str, Buffer] | None = None, *,
                 allow_tf32: bool = False) -> str:
    """A grouped convolution keeps fp32 by default: cuDNN ran one (8x128x28x28, 4 groups of 32 channels, 3x3) on
    an H100 without tensor cores even with TF32 allowed (TF32 as accurate as fp32 and no faster), so the split's
    tripled channels cost twice fp32's time there (0.44 vs 0.23 ms); the tuner may still try it. A dense one
    (10x256x56x56, 3x3) took 0.50 ms split against 1.22 ms in fp32.

    `allow_tf32` (the profile admits TF32's error): plain TF32 above MIN_FLOPS_FOR_TF32, for every kind, grouped
    convolutions included: where cuDNN takes no tensor cores it runs the same kernel as fp32, so unlike the
    split's tripled channels plain TF32 costs nothing there (the dense conv above took 0.18 ms in TF32), and a
    memory-bound GEMM moves the same bytes either way. The split and fp32 stay choices for the tuner.

    A dense convolution takes the split above MIN_FLOPS_FOR_SPLIT without split_pays()'s roofline: cuDNN's fp32
    convolutions ran far below the fp32 roofline on an H100 (level2/15's conv_transpose3d, 7.2 GFLOP: 2.5 ms, about
    4% of the SIMT peak, where the roofline called it memory-bound and kept fp32, and the problem ran at 0.44x of
    eager), and the split was the faster on every dense shape measured (1.2x-4.4x). The split leaves the output's
    bytes as they are and triples only the input's. The first generation's fused_scalar variant keeps fp32, so the
    bench still measures both."""
    if allow_tf32:
        return TF32 if gemm_flops(step, kind, buffers) >= MIN_FLOPS_FOR_TF32 else FP32
    if kind in CONV_KINDS:
        dense = _groups(step) == 1
        return SPLIT if dense and gemm_flops(step, kind, buffers) >= MIN_FLOPS_FOR_SPLIT else FP32
    if not split_pays(step, kind, buffers):
        return FP32
    return CHUNKED if kind in CHUNKED_HELPER_FOR and _operands(step, kind)[0][-1] >= CHUNKED_FROM_K else SPLIT


def _groups(step: HostStep) -> object:
    return step.args[6] if len(step.args) > 6 else 1  # groups is the 7th argument of conv and conv_transpose alike


def host_call_expr(kind: str, args: list[str], target: str, mode: str = SPLIT, *,
                   channels_last: bool = False) -> str:
    """The helper call for a step of `target` in `mode`: "tf32x3" (the split; a convolution is given its library
    op), "tf32x3k" (the split summed in pieces of K) or "tf32" (the library op itself inside the TF32 block). `channels_last`: a convolution's operands go to
    channels-last memory (conv_layout) before the library call."""
    if mode == CHUNKED and kind in CHUNKED_HELPER_FOR:
        return f"{CHUNKED_HELPER_FOR[kind]}({', '.join(args)})"
    if mode == TF32:
        return f"_kw_tf32_call({', '.join([f'torch.ops.{target}'] + (channels_last_args(args) if channels_last else args))})"
    lead = [f"torch.ops.{target}"] if kind in CONV_KINDS else []
    return f"{HELPER_FOR[kind]}({', '.join(lead + args + (['cl=True'] if channels_last else []))})"


def uses_split(modes: Iterable[Mapping[str, str]]) -> bool:
    """Whether any shape's steps take a split mode (gemm_modes' dicts): the candidate then needs the split kernel
    (SPLIT_CUDA) and its Python helpers."""
    return _uses(modes, SPLIT_MODES)


def uses_tf32(modes: Iterable[Mapping[str, str]]) -> bool:
    """Whether any shape's steps take plain TF32: the candidate then needs the TF32 block and call helpers."""
    return _uses(modes, (TF32,))


def _uses(modes: Iterable[Mapping[str, str]], wanted: tuple[str, ...]) -> bool:
    return any(m in wanted for per_shape in modes for m in per_shape.values())


def gemm_python(split_used: bool, tf32_used: bool) -> str:
    """The Python helpers a candidate needs for its GEMM modes (empty when every GEMM is plain fp32)."""
    if not tf32_used:
        return SPLIT_PYTHON if split_used else ""
    return (SPLIT_PYTHON if split_used else TF32_BLOCK_PYTHON) + TF32_CALL_PYTHON


def gemm_modes(plan: Plan, params: Mapping[str, object]) -> dict[str, str]:
    """Per qualifying host step, its GEMM mode: the "<step>.GEMM" tunable if set, else the default. A mode the
    plan's precision does not allow (plain TF32 in a strict plan) falls back to fp32."""
    out: dict[str, str] = {}
    for step in plan.steps:
        if isinstance(step, HostStep) and (kind := gemm_kind(step, plan.buffers)):
            default = default_mode(step, kind, plan.buffers, allow_tf32=plan.allow_tf32)
            mode = str(params.get(f"{step.name}.GEMM", default))
            out[step.name] = mode if mode in mode_choices(plan.allow_tf32, kind) else FP32
    return out
