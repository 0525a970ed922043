"""Shared pieces of the TF32 and 3xTF32 tests: the strict backend flags (TF32 off in cuBLAS and cuDNN, restored
after) and a CUDA-event timer for the figures the GPU tests print."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch


@contextmanager
def strict_backend_flags() -> Iterator[None]:
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cudnn.allow_tf32 = saved[1]


def cuda_ms(fn: Callable[[], Any], reps: int = 20) -> float:
    """Mean milliseconds of fn() over `reps` calls after three warm-up calls (printed, never asserted)."""
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps
