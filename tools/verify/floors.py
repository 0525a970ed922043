"""The physical floor of a timed call: no honest kernel writes its outputs faster than the card can.

Why: timing exploits nobody has thought of yet (work escaping the timed stream only when no profiler
watches, clock tricks) all end in the same symptom: a time below what the hardware allows. The floor is
a true lower bound, so it never rejects an honest kernel: only the output bytes beyond what the L2 cache
can absorb must reach device memory during the call, and they cannot get there faster than the card's
measured write bandwidth (a large fill, the fastest way to write), taken with a safety factor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

SAFETY = 1.5  # the floor assumes writes 1.5x faster than the fastest fill measured on this card


@dataclass(frozen=True, slots=True)
class WriteBandwidth:
    gbps: float  # measured: bytes filled per second / 1e9, best of several fills
    l2_bytes: int
    probe_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WriteBandwidth:
        return cls(float(data["gbps"]), int(data["l2_bytes"]), int(data["probe_bytes"]))

    def floor_ms(self, output_bytes: int) -> float:
        """Least milliseconds in which `output_bytes` of fresh results can be written (0 when L2 can hold them)."""
        beyond_cache = max(0, int(output_bytes) - self.l2_bytes)
        return beyond_cache / (self.gbps * 1e9 * SAFETY) * 1e3


def measure_write_bandwidth(device: torch.device, repeats: int = 5) -> WriteBandwidth:
    """The card's write bandwidth from timed fills of a buffer several times the L2 size."""
    props = torch.cuda.get_device_properties(device)
    l2 = int(getattr(props, "L2_cache_size", 0) or 50 << 20)
    free, _ = torch.cuda.mem_get_info(device)
    size = int(min(max(8 * l2, 1 << 30), free // 4))
    buf = torch.empty(size, dtype=torch.uint8, device=device)
    best_ms = _best_ms(lambda i: buf.fill_(i), device, repeats)
    return WriteBandwidth(size / (best_ms * 1e-3) / 1e9, l2, size)


def measure_copy_bandwidth(device: torch.device, repeats: int = 5) -> float:
    """The card's read+write bandwidth in GB/s (bytes read plus bytes written per second / 1e9), from timed
    device-to-device copies between two buffers each several times the L2 size, best of several: the
    yardstick of the roofline floor (tools.measure.problem_floor), where inputs are read and outputs written."""
    props = torch.cuda.get_device_properties(device)
    l2 = int(getattr(props, "L2_cache_size", 0) or 50 << 20)
    free, _ = torch.cuda.mem_get_info(device)
    size = int(min(max(4 * l2, 1 << 29), free // 8))
    src = torch.ones(size, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    best_ms = _best_ms(lambda _: dst.copy_(src), device, repeats)
    return 2 * size / (best_ms * 1e-3) / 1e9


def _best_ms(op: Callable[[int], Any], device: torch.device, repeats: int) -> float:
    """The shortest of `repeats` timed runs of op(i), after one untimed run (CUDA events on the current stream)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    op(1)
    torch.cuda.synchronize(device)
    best_ms = float("inf")
    for i in range(repeats):
        start.record()
        op(i)
        end.record()
        torch.cuda.synchronize(device)
        best_ms = min(best_ms, start.elapsed_time(end))
    return best_ms


def output_bytes(outputs: list[Any], inputs: list[Any]) -> int:
    """Bytes a call must have written: each output tensor's own storage (an expanded view counts once),
    skipping outputs that share storage with an input (returned, not computed)."""
    input_ptrs = {v.untyped_storage().data_ptr() for v in inputs if isinstance(v, torch.Tensor) and v.numel()}
    total = 0
    for out in outputs:
        if not isinstance(out, torch.Tensor) or out.numel() == 0:
            continue
        if out.untyped_storage().data_ptr() in input_ptrs:
            continue
        total += min(out.numel() * out.element_size(), out.untyped_storage().nbytes())
    return total
