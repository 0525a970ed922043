"""Precision profiles: which backend flags the reference runs under and which tolerances judge a candidate.

Why two flag sets: correctness is judged against a true fp32 reference (TF32 off in cuBLAS and cuDNN), but
a user's eager model runs under PyTorch's defaults (cuDNN convolutions in TF32), and that is the baseline a
speedup must beat. So a worker captures the process's defaults when it starts and switches between them:

- "strict" flags: TF32 off everywhere (correctness reference; the `eager_strict` timing column);
- "default" flags: whatever PyTorch's defaults are in this process (eager and torch.compile baselines).

Profiles:
- strict (default): reference under strict flags, per-dtype tolerances (fp32 1e-4);
- kernelbench: as KernelBench's published evaluator judged: the reference under PyTorch's defaults (TF32
  where PyTorch allows it) and atol = rtol = 1e-2, so figures compare with published KernelBench tables.
  Its tolerance admits plain TF32 math (`allows_tf32`), which the offline translator then uses for fp32 GEMMs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

from kernelwright.tools.verify.compare import DEFAULT_TOLERANCES, Tolerance

ProfileName = Literal["strict", "kernelbench"]
FlagSet = Literal["strict", "default"]
PROFILE_NAMES: tuple[ProfileName, ...] = ("strict", "kernelbench")


@dataclass(frozen=True, slots=True)
class PrecisionProfile:
    name: ProfileName
    reference_flags: FlagSet  # flags for the correctness reference (and the candidate worker)
    tolerances: dict[str, Tolerance]
    description: str
    # Whether a candidate may compute fp32 matmuls and convolutions as plain TF32 (10 mantissa bits, fp32
    # accumulate): only where the tolerances admit TF32's error, which is what the reference itself may do.
    allows_tf32: bool = False

    def label(self) -> str:
        return f"Precision profile: {self.name} ({self.description})"


_KERNELBENCH_TOL = Tolerance(1e-2, 1e-2, 5e-2)
PROFILES: dict[ProfileName, PrecisionProfile] = {
    "strict": PrecisionProfile("strict", "strict", dict(DEFAULT_TOLERANCES),
                               "fp32 reference with TF32 off, fp32 atol=rtol=1e-4; baselines under PyTorch defaults"),
    "kernelbench": PrecisionProfile("kernelbench", "default",
                                    {**DEFAULT_TOLERANCES, "float32": _KERNELBENCH_TOL, "float16": _KERNELBENCH_TOL,
                                     "bfloat16": Tolerance(2e-2, 2e-2, 5e-2)},
                                    "reference under PyTorch defaults (TF32 allowed), atol=rtol=1e-2 as KernelBench; "
                                    "baselines under PyTorch defaults", allows_tf32=True),
}


def precision_profile(name: str) -> PrecisionProfile:
    if name not in PROFILES:
        raise ValueError(f"unknown precision profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
    return PROFILES[name]


@dataclass(frozen=True, slots=True)
class BackendFlags:
    """The TF32 switches that change fp32 results (cuBLAS matmul, cuDNN convolution)."""

    matmul_tf32: bool
    cudnn_tf32: bool

    @classmethod
    def current(cls) -> BackendFlags:
        return cls(bool(torch.backends.cuda.matmul.allow_tf32), bool(torch.backends.cudnn.allow_tf32))

    def apply(self) -> None:
        torch.backends.cuda.matmul.allow_tf32 = self.matmul_tf32
        torch.backends.cudnn.allow_tf32 = self.cudnn_tf32

    def to_dict(self) -> dict[str, bool]:
        return {"matmul_tf32": self.matmul_tf32, "cudnn_tf32": self.cudnn_tf32}


STRICT_FLAGS = BackendFlags(matmul_tf32=False, cudnn_tf32=False)


class FlagSwitch:
    """Holds the process's PyTorch defaults (captured once, before anything changes them) and applies a set."""

    def __init__(self) -> None:
        self.defaults = BackendFlags.current()

    def flags(self, which: FlagSet) -> BackendFlags:
        return STRICT_FLAGS if which == "strict" else self.defaults

    @contextlib.contextmanager
    def using(self, which: FlagSet) -> Iterator[BackendFlags]:
        before = BackendFlags.current()
        chosen = self.flags(which)
        chosen.apply()
        try:
            yield chosen
        finally:
            before.apply()
