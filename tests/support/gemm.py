"""Shared pieces of the GEMM tests: the pure matrix-multiplication problems (KernelBench level 1, problems 1-18
of its dev split, and tests/fixtures/gemm), proposing for them without materialising their multi-GB inputs, and
the parts of a candidate file the tests read."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
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
    from kernelwright.eval.bench.harness_prepare import _lazy_mode

    with _lazy_mode(problem):
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


def cuda_of(source: str) -> str:
    match = re.search(r'_KW_CUDA_SRC = r"""(.*?)"""', source, re.S)
    assert match, "candidate has no _KW_CUDA_SRC"
    return match.group(1)


def headers_of(source: str) -> tuple[str, ...]:
    match = re.search(r"\}, headers=(\(.*?\))\)", source)
    return tuple(ast.literal_eval(match.group(1))) if match else ()
