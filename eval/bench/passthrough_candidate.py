"""The passthrough candidate: the problem's own Model, its outputs copied through a custom CUDA kernel.

What the harness benchmark evaluates where the offline translator writes nothing. It is honest (it computes
the reference's result, it hides nothing) and it drives every stage of the harness: library GEMM/conv calls
are allowed, so such problems pass; where PyTorch's own kernels do the work the integrity check may reject it
as reference_op_called, and that verdict is a fair result for the benchmark, not a failure of it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from kernelwright.agents.offline.codegen_host import REFERENCE_CLASS, reference_module_source
from kernelwright.tools.problem.files import read_source

# Byte copy, 16 bytes a thread where both pointers are 16-byte aligned, so one kernel serves every dtype.
COPY_CUDA = r"""
#include <cuda_runtime.h>
#include <stdint.h>

__global__ void kw_copy16(const uint4* __restrict__ src, uint4* __restrict__ dst, int64_t n16) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n16; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

__global__ void kw_copy1(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, int64_t start, int64_t n) {
    for (int64_t i = start + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

static unsigned kw_blocks(int64_t work) {
    int64_t blocks = (work + 255) / 256;
    return (unsigned)(blocks < 1 ? 1 : (blocks > 4096 ? 4096 : blocks));
}

extern "C" int kw_copy_bytes(const uint8_t* src, uint8_t* dst, int64_t n, cudaStream_t stream) {
    int64_t start = 0;
    if ((((uintptr_t)src | (uintptr_t)dst) & 15) == 0 && n >= 16) {
        int64_t n16 = n / 16;
        kw_copy16<<<kw_blocks(n16), 256, 0, stream>>>((const uint4*)src, (uint4*)dst, n16);
        start = n16 * 16;
    }
    if (n > start) kw_copy1<<<kw_blocks(n - start), 256, 0, stream>>>(src, dst, start, n);
    return (int)cudaGetLastError();
}
"""

_TEMPLATE = '''"""Passthrough candidate for {name}, written by kernelwright.eval.bench.harness.

ModelNew runs the problem's own Model and copies each output through a custom CUDA copy kernel.
Why not the offline translator: {why}
"""
import torch
import torch.nn as nn

from kernelwright.tools.raw_kernel import load_cuda

# ---- the problem's module with Model renamed: ModelNew builds one (same constructor, same seed).
{reference}

_KW_CUDA_SRC = r"""{cuda}"""

_kw_lib = load_cuda(_KW_CUDA_SRC, {{"kw_copy_bytes": "u8*, u8*, i64"}})


def _kw_copy(value):
    if not isinstance(value, torch.Tensor) or not value.is_cuda:
        return value
    src = value.contiguous()
    out = torch.empty_like(src)
    if src.numel():
        _kw_lib.kw_copy_bytes(src.reshape(-1).view(torch.uint8), out.reshape(-1).view(torch.uint8),
                              src.numel() * src.element_size())
    return out


class ModelNew(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.kw_ref = {reference_class}(*args, **kwargs)

    def forward({params}):
        out = self.kw_ref({call})
        if isinstance(out, (tuple, list)):
            return type(out)(_kw_copy(o) for o in out)
        return _kw_copy(out)
'''


def passthrough_source(problem: str | Path, why: str) -> str:
    """The candidate file's text for `problem` (a KernelBench-format file); `why` goes into its docstring."""
    path = Path(problem)
    text = read_source(path, "problem")
    params, call = _forward_signature(ast.parse(text))
    return _TEMPLATE.format(name=path.name, why=" ".join(why.split())[:300].replace('"""', "'''"),
                            reference=reference_module_source(text), cuda=COPY_CUDA, reference_class=REFERENCE_CLASS,
                            params=params, call=call)


def _forward_signature(tree: ast.Module) -> tuple[str, str]:
    """(parameter list, call arguments) copied from Model.forward, so ModelNew has the same arity and defaults;
    (*args, **kwargs) when Model has no forward of its own."""
    model = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Model"), None)
    forward = next((n for n in (model.body if model else []) if isinstance(n, ast.FunctionDef) and n.name == "forward"),
                   None)
    if forward is None:
        return "self, *args, **kwargs", "*args, **kwargs"
    args = forward.args
    for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
        if a is not None:
            a.annotation = None  # annotations may name things the candidate does not import
    positional = [a.arg for a in (*args.posonlyargs, *args.args)][1:]
    call = positional + ([f"*{args.vararg.arg}"] if args.vararg else []) + [f"{a.arg}={a.arg}" for a in args.kwonlyargs]
    call += [f"**{args.kwarg.arg}"] if args.kwarg else []
    return ast.unparse(args), ", ".join(call)
