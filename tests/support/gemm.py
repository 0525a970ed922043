"""Shared pieces of the GEMM tests: the pure matrix-multiplication problems (KernelBench level 1, problems 1-18
of its dev split, and tests/fixtures/gemm) and proposing for them without materialising their multi-GB inputs
(support.offline reads the parts of a candidate file)."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.paths import FIXTURES, KERNELBENCH

LEVEL1 = KERNELBENCH / "level1"
LAST_GEMM_PROBLEM = 18  # KernelBench level 1 numbers its matrix-multiplication problems 1-18


def level1_gemm_problems() -> list[Path]:
    """Problems 1-18 of level 1 that the dev split has (the others are the withheld test split)."""
    found = [p for p in LEVEL1.glob("*.py") if p.name.split("_", 1)[0].isdigit()]
    return sorted((p for p in found if int(p.name.split("_", 1)[0]) <= LAST_GEMM_PROBLEM),
                  key=lambda p: int(p.name.split("_", 1)[0]))


def fixture_gemm_problems() -> list[Path]:
    return sorted((FIXTURES / "gemm").glob("*.py"))


def traced_lazily(problem: Path) -> list[Any]:
    """trace_all with get_inputs' tensors left uninitialised (shapes, strides and dtypes are all a plan needs;
    several level-1 inputs are GBs): the bench's own lazy mode, which gives the same candidates."""
    from kernelwright.agents.offline.propose import trace_all
    from kernelwright.tools.problem.inputs import unfilled_problem_inputs

    with unfilled_problem_inputs(problem):
        return trace_all(problem)


def propose_lazily(problem: Path, params: dict[str, Any] | None = None) -> Sequence[Any]:
    from kernelwright.agents.offline import propose

    return propose(problem, params=params, traced=traced_lazily(problem))


def traced_forward(source: str) -> str:
    """The body of ModelNew's path for the traced input shapes (the first; other shapes run the reference)."""
    match = re.search(r"    def _kw_forward_0\(.*?(?=\n    def |\Z)", source, re.S)
    assert match, "candidate has no _kw_forward_0"
    return match.group(0)


def small_sizes(problem: Path, *, floor: int = 24, divisor: int = 32) -> dict[str, int]:
    """Smaller sizes for problems whose sizes are expressions (`M = 1024 * 2`, which check.small_overrides does not
    read): every module-level int the file assigns, at its evaluated value, divided (never below `floor`);
    a batch count becomes 4."""
    from kernelwright.agents.offline.trace import load_problem

    _, module = load_problem(problem)
    names = [t.id for node in ast.parse(problem.read_text()).body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)]
    out: dict[str, int] = {}
    for name in names:
        value = getattr(module, name, None)
        if type(value) is not int:
            continue
        if name in ("batch", "batch_size") and value > 4:
            out[name] = 4
        elif value > floor:
            out[name] = max(floor, value // divisor)
    return out


# ---------------------------------------------------------------- small synthetic GEMM problems

PROBLEM_TEMPLATE = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, A, B):
        return {expr}


def get_inputs():
    return [{inputs}]


def get_init_inputs():
    return []
'''


@dataclass(frozen=True)
class GemmCase:
    """A two-input GEMM problem (inputs in [0, 1), as KernelBench draws them) and tunables to build it with."""

    name: str
    expr: str
    inputs: str
    params: dict[str, Any] = field(default_factory=dict)


def case_problem(case: GemmCase, folder: Path) -> Path:
    path = folder / f"{case.name}.py"
    path.write_text(PROBLEM_TEMPLATE.format(expr=case.expr, inputs=case.inputs))
    return path


# Every operand order, odd sizes, batched and broadcast products, split-K, triangles with diagonal offsets, the
# matrix-vector kernel's paths, bf16 / fp16, and non-default tiles.
CASES = [
    GemmCase('rr', 'torch.matmul(A, B)',
             'torch.rand(300, 200), torch.rand(200, 260)', {}),
    GemmCase('rc', 'A @ B.T',
             'torch.rand(256, 192), torch.rand(320, 192)', {}),
    GemmCase('cr', 'A.T @ B',
             'torch.rand(192, 256), torch.rand(192, 320)', {}),
    GemmCase('cc', 'A.T @ B.T',
             'torch.rand(192, 256), torch.rand(320, 192)', {}),
    GemmCase('odd_sizes', 'A @ B',
             'torch.rand(67, 29), torch.rand(29, 45)', {}),
    GemmCase('bmm', 'torch.bmm(A, B)',
             'torch.rand(6, 96, 80), torch.rand(6, 80, 112)', {}),
    GemmCase('batch_folded', 'A @ B',
             'torch.rand(4, 96, 80), torch.rand(80, 112)', {}),
    GemmCase('shared_left', 'A @ B',
             'torch.rand(96, 80), torch.rand(4, 80, 112)', {}),
    GemmCase('einsum_4d', "torch.einsum('bijl,lk->bijk', A, B)",
             'torch.rand(2, 3, 40, 64), torch.rand(64, 72)', {}),
    GemmCase('split_k_8', 'A @ B',
             'torch.rand(64, 8192), torch.rand(8192, 96)', {'h0.SPLITK': 8}),
    GemmCase('split_k_odd', 'A @ B',
             'torch.rand(70, 3001), torch.rand(3001, 50)', {'h0.SPLITK': 4}),
    GemmCase('triu', 'torch.triu(A @ B)',
             'torch.rand(300, 128), torch.rand(128, 300)', {}),
    GemmCase('triu_diag5', 'torch.triu(A @ B, diagonal=5)',
             'torch.rand(257, 64), torch.rand(64, 200)', {}),
    GemmCase('tril_diag_minus3', 'torch.tril(A @ B.T, diagonal=-3)',
             'torch.rand(333, 64), torch.rand(333, 64)', {}),
    GemmCase('gemv', 'A @ B',
             'torch.rand(500, 4096), torch.rand(4096, 1)', {}),
    GemmCase('gemv_scalar_path', 'A @ B',
             'torch.rand(500, 4097), torch.rand(4097, 1)', {'h0.TPR': 128}),
    GemmCase('gemv_row_vector', 'A @ B.t()',
             'torch.rand(1, 1024), torch.rand(700, 1024)', {}),
    GemmCase('vector_times_matrix', 'torch.matmul(A, B)',
             'torch.rand(256), torch.rand(256, 96)', {}),
    GemmCase('bf16', 'A @ B',
             'torch.rand(256, 192, dtype=torch.bfloat16), torch.rand(192, 320, dtype=torch.bfloat16)', {}),
    GemmCase('bf16_rc_tile', 'A @ B.T',
             'torch.rand(512, 256, dtype=torch.bfloat16), torch.rand(384, 256, dtype=torch.bfloat16)', {'h0.TILE': '128x256x32_64x64x32', 'h0.STAGES': 3}),
    GemmCase('fp16_bmm', 'torch.bmm(A, B)',
             'torch.rand(4, 128, 64, dtype=torch.float16), torch.rand(4, 64, 96, dtype=torch.float16)', {}),
    GemmCase('fp32_tile_k32', 'A @ B',
             'torch.rand(512, 384), torch.rand(384, 640)', {'h0.TILE': '128x64x32_64x32x32', 'h0.STAGES': 5}),
]
