"""CUDA and host code for a RecurrentStep (a whole LSTM / GRU / RNN, see ir.RecurrentStep).

Per layer the host projects the whole input sequence onto the gates with one library GEMM per direction
(x W_ih^T + b_ih: the large, parallel part), then launches one persistent cooperative kernel that runs every
time step of both directions. Each block owns U hidden units of one direction and keeps their rows of W_hh
in shared memory for the whole sequence (an LSTM's cell state too); a step reads the previous h (written
by all blocks) into shared memory, computes its units' gates (h W_hh^T + b_hh plus the projection), applies
the cell, writes h, and the grid waits at a barrier before the next step. cuDNN's standard algorithm instead
launches a GEMM and a pointwise kernel per step.

The launcher picks U: the fewest units per block (most blocks) that still fit one block per SM, else as many
blocks as are co-resident; all blocks must be resident for the grid barrier (cooperative launch checks it).
The math per element follows torch.nn's definitions, as interp.run_recurrent does on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kernelwright.agents.offline.codegen_elementwise import StepKernel
from kernelwright.agents.offline.ir import Buffer, Layout, RecurrentStep

RECURRENT_DEFAULTS = {"IMPL": "kernel", "THREADS": 256}
IMPLS = ("kernel", "library")  # library: the ATen op (cuDNN), for the tuner to compare
_SPEC = ", ".join(["f32*"] * 12 + ["i32"] * 5)

# h_new (and c, for the LSTM) of unit j, batch row b: x = this row's gate projection (b_ih included),
# a = h W_hh^T for this block's units (gate g of unit u at a[g * U + u]).
_CELLS = {
    "lstm": """
            const float gi = x[j] + a[u] + bhh[j];
            const float gf = x[H + j] + a[U + u] + bhh[H + j];
            const float gg = x[2 * H + j] + a[2 * U + u] + bhh[2 * H + j];
            const float go = x[3 * H + j] + a[3 * U + u] + bhh[3 * H + j];
            const float c = kw_rnn_sigmoid(gf) * c_s[b * U + u] + kw_rnn_sigmoid(gi) * tanhf(gg);
            c_s[b * U + u] = c;
            const float h_new = kw_rnn_sigmoid(go) * tanhf(c);""",
    "gru": """
            const float r = kw_rnn_sigmoid(x[j] + a[u] + bhh[j]);
            const float z = kw_rnn_sigmoid(x[H + j] + a[U + u] + bhh[H + j]);
            const float n = tanhf(x[2 * H + j] + r * (a[2 * U + u] + bhh[2 * H + j]));
            const float h_new = (1.0f - z) * n + z * h_s[b * H + j];""",
    "rnn_tanh": """
            const float h_new = tanhf(x[j] + a[u] + bhh[j]);""",
    "rnn_relu": """
            const float h_new = fmaxf(x[j] + a[u] + bhh[j], 0.0f);""",
}

_TEMPLATE = r"""
#include <cooperative_groups.h>
#define KW_{tag}_THREADS {threads}
__device__ __forceinline__ float kw_rnn_sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

__global__ void __launch_bounds__(KW_{tag}_THREADS) kw_{tag}_kernel(
        const float* __restrict__ xp0, const float* __restrict__ xp1, const float* __restrict__ whh0,
        const float* __restrict__ whh1, const float* __restrict__ bhh0, const float* __restrict__ bhh1,
        const float* __restrict__ h0, const float* __restrict__ c0, float* __restrict__ out,
        float* __restrict__ hn, float* __restrict__ cn, float* hbuf, int T, int B, int H, int D, int U,
        int batch_first) {
    extern __shared__ float kw_smem[];
    const int G = {gates};
    const int per_dir = (H + U - 1) / U;
    const int d = blockIdx.x / per_dir, j0 = (blockIdx.x % per_dir) * U;
    const int units = min(U, H - j0);
    float* w_s = kw_smem;              // [G * U][H]: this block's rows of W_hh
    float* h_s = w_s + G * U * H;      // [B][H]: the previous step's h, all units
    float* acc_s = h_s + B * H;        // [B][G * U]: h W_hh^T for this block's units
    float* c_s = acc_s + B * G * U;    // [B][U]: the LSTM's cell state of this block's units
    const float* xp = d ? xp1 : xp0;
    const float* whh = d ? whh1 : whh0;
    const float* bhh = d ? bhh1 : bhh0;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = blockDim.x >> 5;
    for (int i = tid; i < G * units * H; i += blockDim.x) {
        const int r = i / H, k = i - r * H, g = r / units, u = r - g * units;
        w_s[(g * U + u) * H + k] = whh[(long long)(g * H + j0 + u) * H + k];
    }
    if (G == 4) {
        for (int i = tid; i < B * units; i += blockDim.x) {
            const int b = i / units, u = i - b * units;
            c_s[b * U + u] = c0[((long long)d * B + b) * H + j0 + u];
        }
    }
    cooperative_groups::grid_group grid = cooperative_groups::this_grid();
    for (int s = 0; s < T; ++s) {
        const int t = d ? T - 1 - s : s;
        __syncthreads();  // the previous step is done with h_s and acc_s
        if (s == 0) {
            const float* hp = h0 + (long long)d * B * H;
            for (int i = tid; i < B * H; i += blockDim.x) h_s[i] = hp[i];
        } else {  // written by other blocks before the barrier: read through L2, never a stale L1 line
            const float* hp = hbuf + ((long long)(s & 1) * D + d) * B * H;
            for (int i = tid; i < B * H; i += blockDim.x) h_s[i] = __ldcg(hp + i);
        }
        __syncthreads();
        for (int p = warp; p < B * G * units; p += nwarps) {
            const int b = p / (G * units), r = p - b * (G * units), g = r / units, u = r - g * units;
            const float* w = w_s + (g * U + u) * H;
            const float* h = h_s + b * H;
            float sum = 0.0f;
            for (int k = lane; k < H; k += 32) sum = fmaf(h[k], w[k], sum);
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_down_sync(KW_FULL, sum, o);
            if (lane == 0) acc_s[b * G * U + g * U + u] = sum;
        }
        __syncthreads();
        for (int i = tid; i < B * units; i += blockDim.x) {
            const int b = i / units, u = i - b * units, j = j0 + u;
            const long long row = batch_first ? (long long)b * T + t : (long long)t * B + b;
            const float* x = xp + row * G * H;
            const float* a = acc_s + b * G * U;
{cell}
            hbuf[((long long)((s + 1) & 1) * D + d) * B * H + b * H + j] = h_new;
            out[row * D * H + d * H + j] = h_new;
            if (s == T - 1) {
                hn[((long long)d * B + b) * H + j] = h_new;
{last_c}
            }
        }
        if (s + 1 < T) grid.sync();
    }
}

extern "C" int kw_launch_{tag}(const float* xp0, const float* xp1, const float* whh0, const float* whh1,
                               const float* bhh0, const float* bhh1, const float* h0, const float* c0, float* out,
                               float* hn, float* cn, float* hbuf, int T, int B, int H, int D, int batch_first,
                               cudaStream_t stream) {
    const int G = {gates};
    int dev = 0, sms = 0, coop = 0, max_smem = 0;
    cudaError_t err = cudaGetDevice(&dev);
    if (err != cudaSuccess) return (int)err;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev);
    cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (!coop) return (int)cudaErrorNotSupported;
    if (T <= 0 || B <= 0 || H <= 0) return 0;
    for (int pass = 0; pass < 2; ++pass) {  // one block per SM if possible, else as many as are resident
        for (int U = 1; U <= H; U *= 2) {
            const size_t smem = sizeof(float) * ((size_t)G * U * H + (size_t)B * H + (size_t)B * G * U + (size_t)B * U);
            if (smem > (size_t)max_smem) break;
            if (smem > 48 * 1024) {
                err = cudaFuncSetAttribute(kw_{tag}_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
                if (err != cudaSuccess) return (int)err;
            }
            int per_sm = 0;
            err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kw_{tag}_kernel, KW_{tag}_THREADS, smem);
            if (err != cudaSuccess) return (int)err;
            const int blocks = D * ((H + U - 1) / U);
            if (per_sm < 1 || blocks > (pass == 0 ? sms : sms * per_sm)) continue;
            void* args[] = {(void*)&xp0, (void*)&xp1, (void*)&whh0, (void*)&whh1, (void*)&bhh0, (void*)&bhh1,
                            (void*)&h0, (void*)&c0, (void*)&out, (void*)&hn, (void*)&cn, (void*)&hbuf,
                            (void*)&T, (void*)&B, (void*)&H, (void*)&D, (void*)&U, (void*)&batch_first};
            return (int)cudaLaunchCooperativeKernel((void*)kw_{tag}_kernel, dim3(blocks), dim3(KW_{tag}_THREADS),
                                                    args, smem, stream);
        }
    }
    return (int)cudaErrorCooperativeLaunchTooLarge;
}
"""


def recurrent_kernel(step: RecurrentStep, params: Mapping[str, Any]) -> StepKernel | None:
    """The step's kernel and launcher; None where the step runs as the library call (IMPL=library)."""
    p = {**RECURRENT_DEFAULTS, **params}
    if p["IMPL"] != "kernel":
        return None
    last_c = "                cn[((long long)d * B + b) * H + j] = c;" if step.cell == "lstm" else ""
    source = (_TEMPLATE.replace("{tag}", step.name).replace("{threads}", str(int(p["THREADS"])))
              .replace("{gates}", str(step.gates)).replace("{cell}", _CELLS[step.cell]).replace("{last_c}", last_c))
    return StepKernel(step.name, source, f"kw_launch_{step.name}", _SPEC, ())


def recurrent_host_lines(step: RecurrentStep, buffers: Mapping[str, Buffer], kernel: StepKernel | None,
                         layout_expr: Any) -> list[str]:
    """The step on the host: the library call (no kernel), or per layer the gate projections and a launch."""
    def arg(layout: Layout) -> str:
        expr = layout_expr(layout, buffers)
        return expr if expr == layout.buffer else f"{expr}.contiguous()"

    states = [arg(h) for h in step.hx]
    params = [arg(w) for w in step.params]
    outs = list(step.outputs)
    hx = f"[{', '.join(states)}]" if step.cell == "lstm" else states[0]
    if kernel is None:
        lines = [f"_kw_r = torch.ops.aten.{step.cell}.input({arg(step.input)}, {hx}, [{', '.join(params)}], True, "
                 f"{step.layers}, 0.0, False, {step.bidirectional}, {step.batch_first})"]
        return lines + [f"{b} = _kw_r[{i}].contiguous()" for i, b in enumerate(outs)]
    D, B, H, T = step.directions, step.batch, step.hidden, step.seq
    h0 = "_kw_h0"
    c0 = "_kw_c0" if step.cell == "lstm" else h0
    hn, cn = outs[1], (outs[2] if step.cell == "lstm" else outs[1])
    out_shape = lambda width: (B, T, width) if step.batch_first else (T, B, width)  # noqa: E731
    lines = [f"# {step.name}: {step.cell}, {step.layers} layer(s) x {D} direction(s), {T} steps, batch {B}, hidden {H}",
             f"_kw_x = {arg(step.input)}",
             f"{h0} = {states[0]}"] + ([f"{c0} = {states[1]}"] if step.cell == "lstm" else []) + [
             f"_kw_hbuf = torch.empty({(2, D, B, H)}, dtype=torch.float32, device=_kw_dev)"]
    lines += [f"{b} = torch.empty({tuple(buffers[b].shape)}, dtype=torch.float32, device=_kw_dev)" for b in outs]
    for layer in range(step.layers):
        y = outs[0] if layer == step.layers - 1 else "_kw_y"
        if layer < step.layers - 1:
            lines.append(f"_kw_y = torch.empty({out_shape(D * H)}, dtype=torch.float32, device=_kw_dev)")
        proj = []
        for d in range(D):
            w_ih, _, b_ih, _ = params[4 * (layer * D + d): 4 * (layer * D + d) + 4]
            lines.append(f"_kw_p{d} = torch.ops.aten.linear.default(_kw_x, {w_ih}, {b_ih})")
            proj.append(f"_kw_p{d}")
        w_hh = [params[4 * (layer * D + d) + 1] for d in range(D)]
        b_hh = [params[4 * (layer * D + d) + 3] for d in range(D)]
        part = f"[{D * layer}:{D * (layer + 1)}]"
        lines.append(f"_kw_lib.{kernel.launcher}({proj[0]}, {proj[-1]}, {w_hh[0]}, {w_hh[-1]}, {b_hh[0]}, {b_hh[-1]}, "
                     f"{h0}{part}, {c0}{part}, {y}, {hn}{part}, {cn}{part}, _kw_hbuf, {T}, {B}, {H}, {D}, "
                     f"{int(step.batch_first)})")
        lines.append(f"_kw_x = {y}")
    return lines
