"""A kernel that never finishes (spins on a flag nobody sets)."""
import torch
import torch.nn as nn

from kernelwright.tools.raw_kernel import load_cuda

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

__global__ void spin(const float* x, float* y, int64_t n) {
    volatile float* flag = y;
    while (flag[0] != 12345.f) { }
}

extern "C" int launch(const float* x, float* y, int64_t n, cudaStream_t stream) {
    spin<<<1, 1, 0, stream>>>(x, y, n);
    return (int)cudaGetLastError();
}
"""

_lib = load_cuda(CUDA_SRC, {"launch": "f32*, f32*, i64"})


class ModelNew(nn.Module):
    def forward(self, x):
        x = x.contiguous()
        y = torch.zeros_like(x)
        _lib.launch(x, y, x.numel())
        torch.cuda.synchronize()
        return y
