"""A raw-form candidate: plain CUDA + a launcher spec, no torch headers (builds in ~1 s)."""

import torch
import torch.nn as nn

from kernelwright.tools.raw_kernel import load_cuda

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

__global__ void relu_affine_kernel(const float4* __restrict__ x, float4* __restrict__ y, int64_t n4) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
        float4 v = x[i];
        v.x = fmaxf(v.x, 0.f) * 2.f + 1.f;
        v.y = fmaxf(v.y, 0.f) * 2.f + 1.f;
        v.z = fmaxf(v.z, 0.f) * 2.f + 1.f;
        v.w = fmaxf(v.w, 0.f) * 2.f + 1.f;
        y[i] = v;
    }
}

__global__ void relu_affine_tail(const float* __restrict__ x, float* __restrict__ y, int64_t start, int64_t n) {
    int64_t i = start + blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) y[i] = fmaxf(x[i], 0.f) * 2.f + 1.f;
}

extern "C" int launch_relu_affine(const float* x, float* y, int64_t n, cudaStream_t stream) {
    int64_t n4 = n / 4;
    if (n4 > 0) {
        int threads = 256;
        int64_t blocks = (n4 + threads - 1) / threads;
        if (blocks > 132 * 16) blocks = 132 * 16;
        relu_affine_kernel<<<(unsigned)blocks, threads, 0, stream>>>((const float4*)x, (float4*)y, n4);
    }
    int64_t rest = n - n4 * 4;
    if (rest > 0) relu_affine_tail<<<1, 256, 0, stream>>>(x, y, n4 * 4, n);
    return (int)cudaGetLastError();
}
"""

_lib = load_cuda(CUDA_SRC, {"launch_relu_affine": "f32*, f32*, i64"})


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        y = torch.empty_like(x)
        _lib.launch_relu_affine(x, y, x.numel())
        return y
