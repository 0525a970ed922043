"""Synthetic archive records: realistic op lists, shapes, ideas and GPUs, for the archive benchmark and tests."""

from __future__ import annotations

import random

from kernelwright.memory.records import ArchiveRecord, Lineage, ProblemSignature, SigOp, SigTensor
from kernelwright.tools.harness.results import Status
from kernelwright.tools.source_hash import candidate_id

# Problem families: op lists that real KernelBench problems have.
FAMILIES: dict[str, list[str]] = {
    "relu": ["aten.relu.default"],
    "gelu": ["aten.gelu.default"],
    "softmax": ["aten.amax.default", "aten.sub.Tensor", "aten.exp.default", "aten.sum.dim_IntList", "aten.div.Tensor"],
    "layernorm": ["aten.native_layer_norm.default"],
    "matmul": ["aten.mm.default"],
    "linear_relu": ["aten.t.default", "aten.addmm.default", "aten.relu.default"],
    "conv_bn_relu": ["aten.convolution.default", "aten._native_batch_norm_legit_no_training.default",
                     "aten.relu.default"],
    "attention": ["aten.bmm.default", "aten.mul.Tensor", "aten._softmax.default", "aten.bmm.default"],
    "reduce_sum": ["aten.sum.dim_IntList"],
    "cumsum": ["aten.cumsum.default"],
    "argmax": ["aten.argmax.default"],
    "mse_loss": ["aten.sub.Tensor", "aten.pow.Tensor_Scalar", "aten.mean.default"],
}

IDEAS = {
    "naive": "out[i] = f(x[i]);",
    "vector": "float4 v = reinterpret_cast<const float4*>(x)[i];",
    "shared": "__shared__ float tile[256]; __syncthreads();",
    "shuffle": "v += __shfl_xor_sync(0xffffffff, v, 16);",
    "tensor": "nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, half> a;",
}


def signature(family: str, shape: tuple[int, ...] = (128, 4096), dtype: str = "float32") -> ProblemSignature:
    x = SigTensor(shape, dtype)
    return ProblemSignature(tuple(SigOp(t, (x,)) for t in FAMILIES[family]), (x,), (), (x,), family)


def kernel_source(family: str, idea: str = "naive", variant: int = 0, body_lines: int = 0) -> str:
    """A small candidate file; `body_lines` pads it towards the size of a real one (3-10 kB)."""
    body = "".join(f"  acc{j} = fmaf(acc{j}, x[i + {j}], {j}.0f);\n" for j in range(body_lines))
    return (f'import torch\nfrom torch.utils.cpp_extension import load_inline\n'
            f'SRC = r"""\n__global__ void {family}_kernel_{variant}(const float* x, float* out, int n) {{\n'
            f'  int i = blockIdx.x * blockDim.x + threadIdx.x;\n  {IDEAS[idea]}\n{body}}}\n"""\n'
            f'class ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return launch_{variant}(x)\n')


def make_record(family: str = "relu", *, idea: str = "naive", variant: int = 0, status: Status = "passed",
                cc: str | None = "9.0", speedup: float | None = 1.5, trials: int = 5, run_id: str = "run-a",
                shape: tuple[int, ...] = (128, 4096), dtype: str = "float32", created_at: float = 1.0,
                body_lines: int = 0) -> ArchiveRecord:
    src = kernel_source(family, idea, variant, body_lines)

    return ArchiveRecord(
        id=candidate_id(src), signature=signature(family, shape, dtype), functional_source=f"def forward(x): # {family}",
        kernel_source=src, status=status, gpu_name="NVIDIA H100 80GB HBM3" if cc == "9.0" else "NVIDIA A100",
        compute_capability=cc, speedup_vs_eager=speedup, speedup_vs_compile=(speedup or 1.0) * 0.8,
        correctness={"trials": trials, "max_abs_err": 1e-6}, timing={"candidate": 0.01},
        profile_summary=f"{family}_kernel: 10.0 us", lineage=Lineage((), "translator", "translator@v1", "fake", 0, 0.2),
        run_id=run_id, created_at=created_at)


def synthetic_records(n: int, seed: int = 0, body_lines: int = 0) -> list[ArchiveRecord]:
    """n distinct records over the families, shapes, dtypes, ideas and two GPU generations."""
    rng = random.Random(seed)
    families, ideas = sorted(FAMILIES), sorted(IDEAS)
    out = []
    for i in range(n):
        fam = families[i % len(families)]
        shape = (rng.choice([64, 128, 256, 1024]), rng.choice([512, 4096, 8192]))
        out.append(make_record(fam, idea=rng.choice(ideas), variant=i, cc=rng.choice(["9.0", "8.0"]),
                               speedup=round(rng.uniform(0.5, 6.0), 3), shape=shape,
                               dtype=rng.choice(["float32", "float16"]), status="passed" if i % 5 else "rejected",
                               run_id=f"run-{i % 17}", created_at=float(i), body_lines=body_lines))
    return out
