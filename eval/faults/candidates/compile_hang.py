"""Plain CUDA whose build the case makes hang (a fake nvcc that never returns comes first on the worker's PATH)."""
import torch
import torch.nn as nn

from kernelwright.tools.raw_kernel import load_cuda

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

__global__ void touch(float* y, int64_t n) {}

extern "C" int launch(const float* x, float* y, int64_t n, cudaStream_t stream) {
    touch<<<1, 1, 0, stream>>>(y, n);
    return (int)cudaGetLastError();
}
"""

_lib = load_cuda(CUDA_SRC, {"launch": "f32*, f32*, i64"})


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.clamp_min(x, 0) * 2.0 + 1.0
