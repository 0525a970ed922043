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
