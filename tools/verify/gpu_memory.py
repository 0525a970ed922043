"""Poison the CUDA caching allocator's free memory so unwritten outputs cannot pass.

A kernel that writes only part of its output may be handed a freed block that
still holds a correct earlier result. Before every correctness call the worker
takes every free block of the pool, fills it with 0xFF bytes (NaN for every
float dtype, -1 for signed ints) and frees it again, so whatever the candidate
allocates next starts as poison.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

POISON_BYTE = 0xFF


@dataclass(frozen=True, slots=True)
class PoisonReport:
    blocks: int
    bytes: int


def poison_free_memory(device: torch.device, reserve_bytes: int = 0) -> PoisonReport:
    """Fill every free block of the pool (and `reserve_bytes` of fresh headroom) with poison.

    The headroom matters on a young pool: without it a candidate's output would
    come from a brand-new segment whose contents nobody controls.
    """
    index = device.index if device.index is not None else torch.cuda.current_device()
    torch.cuda.synchronize(device)
    held = []
    if reserve_bytes > 0:
        held.append(torch.empty(reserve_bytes, dtype=torch.uint8, device=device))
        held += [torch.empty(_SMALL_BLOCK, dtype=torch.uint8, device=device) for _ in range(2)]  # small pool too
    sizes = sorted(
        (block["size"] for segment in torch.cuda.memory_snapshot() if segment.get("device") == index
         for block in segment.get("blocks", []) if block.get("state") == "inactive"),
        reverse=True,  # largest first, so best-fit hands each request its own block
    )
    held += [torch.empty(size, dtype=torch.uint8, device=device) for size in sizes if size > 0]
    total = 0
    for block in held:
        block.fill_(POISON_BYTE)
        total += block.numel()
    torch.cuda.synchronize(device)
    del held
    return PoisonReport(blocks=len(sizes), bytes=total)


_SMALL_BLOCK = 1 << 20  # the caching allocator serves requests up to 1 MiB from its small pool
