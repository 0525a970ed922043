"""Roofline position of a kernel launch: FLOPs and DRAM bytes over time, against a GPU's peaks.

Pure arithmetic, shared by the ncu parser and anything else that knows a kernel's
FLOPs, bytes and duration. Peaks come from `GpuFacts` (datasheet values unless a
caller swapped in measured ones); every result records where its peaks came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # attribute access only: gpu_info imports ncu, which imports this module
    from kernelwright.tools.measure.gpu_info import GpuFacts

LATENCY_BOUND_PCT = 60.0  # ncu's SpeedOfLight rule (sections/SpeedOfLight.py): both below -> latency-bound

Bound = Literal["memory", "compute", "latency", "unknown"]


@dataclass(frozen=True, slots=True)
class Roofline:
    arithmetic_intensity_flop_per_byte: float | None  # FLOPs per DRAM byte
    achieved_gflops: float | None
    achieved_dram_gbps: float | None
    peak_gflops: float | None  # for this kernel's mix of FLOP kinds
    peak_dram_gbps: float | None
    pct_of_peak_flops: float | None
    pct_of_peak_bandwidth: float | None
    bound: Bound
    peak_flops_source: str  # "datasheet: ...", "derived: ...", "measured: ..." or "unknown"
    peak_bandwidth_source: str

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def compute_roofline(flops_by_kind: Mapping[str, float], dram_bytes: float | None, duration_ns: float | None,
                     *, facts: GpuFacts | None = None, sm_throughput_pct: float | None = None,
                     memory_throughput_pct: float | None = None) -> Roofline:
    """Roofline position of one launch against `facts`' peaks (datasheet unless replaced by measured ones).

    The peak for a mix of FLOP kinds is the rate at which that mix would run if each kind ran at its
    own peak; it is None when a kind with FLOPs has no known peak.
    """
    flops = sum(flops_by_kind.values()) if flops_by_kind else None
    secs = duration_ns * 1e-9 if duration_ns else None
    gflops = flops / secs / 1e9 if flops is not None and secs else None
    gbps = dram_bytes / secs / 1e9 if dram_bytes is not None and secs else None
    intensity = flops / dram_bytes if flops is not None and dram_bytes else None
    peak_gflops: float | None = None
    peak_gbps: float | None = None
    if facts is not None:
        peak_gbps = facts.peak_dram_bandwidth_gbps
        busy = {k: v for k, v in flops_by_kind.items() if v > 0}
        peaks = {k: peak for k in busy if (peak := facts.peak_flops.for_kind(k))}  # the kinds with a known peak
        if busy and len(peaks) == len(busy):
            peak_gflops = sum(busy.values()) / sum(v / (peaks[k] * 1e3) for k, v in busy.items())
    pct_flops = 100.0 * gflops / peak_gflops if gflops is not None and peak_gflops else None
    pct_bw = 100.0 * gbps / peak_gbps if gbps is not None and peak_gbps else None
    compute = _max(sm_throughput_pct, pct_flops)
    memory = _max(memory_throughput_pct, pct_bw)
    bound: Bound
    if compute is None and memory is None:
        bound = "unknown"
    elif max(compute or 0.0, memory or 0.0) < LATENCY_BOUND_PCT:
        bound = "latency"
    else:
        bound = "memory" if (memory or 0.0) >= (compute or 0.0) else "compute"
    return Roofline(intensity, gflops, gbps, peak_gflops, peak_gbps, pct_flops, pct_bw, bound,
                    facts.peak_flops.source if facts else "unknown",
                    facts.peak_dram_bandwidth_source if facts else "unknown")


def _max(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None
