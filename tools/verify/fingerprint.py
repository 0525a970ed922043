"""Exact content fingerprints of tensors, computed where the tensor lives (GPU), in bounded memory.

Why: the judge must tell whether a candidate's output repeats an earlier call's output, whether two trials'
outputs are bit-identical, and whether an input changed, without keeping a second copy of tensors that
can be gigabytes. A fingerprint is a position-weighted sum of the tensor's 32-bit words modulo 2**64:
every multiplier is odd, so changing any one word always changes it (an odd number times a non-zero
difference smaller than 2**64 is never 0 mod 2**64); several changes cancel only with probability ~2**-64.
"""

from __future__ import annotations

import torch

CHUNK_WORDS = 1 << 24  # 64 MB of words per step: bounded scratch whatever the tensor's size
_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed int64 (int64 arithmetic wraps)


def byte_view(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes in logical order, as a flat uint8 tensor (a view when it is contiguous)."""
    t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    if t.dtype == torch.bool:
        t = t.view(torch.uint8)
    return t.reshape(-1).view(torch.uint8)


def fingerprint(t: torch.Tensor) -> str:
    """dtype, shape and a 64-bit content hash, as one string (equal strings: equal contents)."""
    data = byte_view(t)
    n = data.numel()
    whole = n // 4 * 4
    words = data[:whole].view(torch.int32)
    total = torch.zeros((), dtype=torch.int64, device=data.device)
    for start in range(0, words.numel(), CHUNK_WORDS):
        chunk = words[start:start + CHUNK_WORDS].to(torch.int64)
        mult = torch.arange(start, start + chunk.numel(), dtype=torch.int64, device=data.device)
        mult.mul_(_GOLDEN).bitwise_or_(1)
        total += (chunk * mult).sum()
    tail = data[whole:].to(torch.int64)
    if tail.numel():
        total += (tail * (2 * torch.arange(tail.numel(), dtype=torch.int64, device=data.device) + 3)).sum()
    return f"{str(t.dtype).removeprefix('torch.')}:{tuple(t.shape)}:{int(total) & 0xFFFFFFFFFFFFFFFF:016x}"


def strided_sample(t: torch.Tensor, size: int = 1 << 16) -> torch.Tensor:
    """Up to `size` elements spread over the whole tensor (a small copy), for cheap closeness tests."""
    flat = t.detach().reshape(-1)
    step = max(1, flat.numel() // size)
    return flat[::step][:size].clone()
