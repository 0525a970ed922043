"""Writes far past its output buffer: an illegal memory access (sticky CUDA error) in the worker."""
import torch
import torch.nn as nn

from kernelwright.tools.raw_kernel import load_cuda

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

__global__ void bad_write(float* y, int64_t n) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) y[i + ((int64_t)1 << 40)] = 1.f;
}

extern "C" int launch(const float* x, float* y, int64_t n, cudaStream_t stream) {
    bad_write<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(y, n);
    return (int)cudaGetLastError();
}
"""

_lib = load_cuda(CUDA_SRC, {"launch": "f32*, f32*, i64"})


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        _lib.launch(x, y, x.numel())
        torch.cuda.synchronize()
        return y
