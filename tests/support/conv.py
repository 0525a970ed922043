"""Shared pieces of the conv tests: the pure convolution fixtures (tests/fixtures/conv, KernelBench format, small
enough to trace and interpret on CPU) and proposing for them with the conv setting on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from support.paths import FIXTURES

CONV_FIXTURES = FIXTURES / "conv"


def fixture_conv_problems() -> list[Path]:
    return sorted(CONV_FIXTURES.glob("*.py"))


def propose_conv(problem: Path, params: dict[str, Any] | None = None, allow_tf32: bool = False) -> Sequence[Any]:
    """The candidates with RunSettings.offline_preview on (pure convolutions get kernels of their own); `allow_tf32`:
    under a precision profile that admits TF32 (the kernelbench one)."""
    from kernelwright.agents.offline import propose

    return propose(problem, params=params, preview=True, allow_tf32=allow_tf32)


_ONE_LAYER = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = {layer}

    def forward(self, x):
        return {expr}


def get_inputs():
    return [torch.rand({shape}, dtype={dtype})]


def get_init_inputs():
    return []
'''


def one_layer_problem(path: Path, layer: str, shape: str, *, expr: str = "self.conv(x)",
                      dtype: str = "torch.float32") -> Path:
    """A KernelBench-format problem at `path`: Model holds `layer` as self.conv and returns `expr` of its input, a
    torch.rand tensor of `shape` (the text inside the parentheses) and `dtype`."""
    path.write_text(_ONE_LAYER.format(layer=layer, expr=expr, shape=shape, dtype=dtype))
    return path


def assert_interpreted_like_the_model(plan: Any, traced: Any) -> None:
    """The interpreter's run of `plan` (agents.offline.interp: each step from its own launch numbers) matches the
    traced Model on its inputs: shape, dtype, and values within 1e-4 (1e-2 for bf16)."""
    import torch

    from kernelwright.agents.offline.interp import interpret

    (got,) = interpret(plan, traced.model, traced.inputs, dict(traced.program.constants))
    with torch.no_grad():
        want = traced.model(*traced.inputs)
    tol = 1e-2 if want.dtype == torch.bfloat16 else 1e-4
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol)
