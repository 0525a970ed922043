"""The winner's Nsight Compute profile as a small table: one column per kernel, one row per measure.

Built from the winner's profile's `kernels` (the parsed ncu launches), not from its summary
text: the summary is written for the critic's prompt and reads as one dense
paragraph on a page. Launches of the same kernel are grouped as the summary groups
them (the longest launch stands for the group).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kernelwright.eval.report.svg import esc
from kernelwright.tools.measure.ncu import STALL_HINTS, short_kernel_name

MAX_KERNELS = 5  # columns; the summary names the same number

Kernel = Mapping[str, Any]


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _pct(value: Any) -> str:
    v = _num(value)
    return f"{v:.0f}%" if v is not None else ""


def _time(ns: float | None) -> str:
    if ns is None:
        return ""
    return f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns / 1e3:.1f} us"


def _bytes(value: Any) -> str:
    v = _num(value)
    if v is None:
        return ""
    return f"{v / 1024:.0f} KiB" if v >= 1024 else f"{v:.0f} B"


def _roof(k: Kernel) -> Mapping[str, Any]:
    return k.get("roofline") or {}


def _share(got: float, peak: float | None, pct: Any, unit_scale: float, digits: int) -> str:
    """' (64% of 3.35)': the recorded share of peak, else one worked out from the two rates."""
    if not peak:
        return ""
    share = _num(pct)
    share = share if share is not None else 100.0 * got / peak
    return f" ({share:.0f}% of {peak / unit_scale:.{digits}f})"


def _dram(k: Kernel) -> str:
    r = _roof(k)
    got, peak = _num(r.get("achieved_dram_gbps")), _num(r.get("peak_dram_gbps"))
    if got is None:
        return ""
    return f"{got / 1e3:.2f} TB/s" + _share(got, peak, r.get("pct_of_peak_bandwidth"), 1e3, 2)


def _compute(k: Kernel) -> str:
    r = _roof(k)
    got, peak = _num(r.get("achieved_gflops")), _num(r.get("peak_gflops"))
    if got is None:
        return ""
    return f"{got / 1e3:.2f} TFLOP/s" + _share(got, peak, r.get("pct_of_peak_flops"), 1e3, 0)


def _intensity(k: Kernel) -> str:
    v = _num(_roof(k).get("arithmetic_intensity_flop_per_byte"))
    return f"{v:.2f} FLOP/B" if v is not None else ""


def _pair(k: Kernel, first: str, second: str) -> str:
    a, b = _pct(k.get(first)), _pct(k.get(second))
    return f"{a or '?'} / {b or '?'}" if a or b else ""


def _launch(k: Kernel) -> str:
    grid, block = k.get("grid"), k.get("block")
    if not grid or not block:
        return ""
    return f"{'x'.join(str(g) for g in grid)} blocks of {'x'.join(str(b) for b in block)}"


def _stalls(k: Kernel) -> str:
    stalls = [s for s in k.get("top_stalls") or [] if isinstance(s, Sequence) and len(s) == 2]
    return ", ".join(f"{name} {_pct(share)}" for name, share in stalls)


def _hint(k: Kernel) -> str:
    stalls = k.get("top_stalls") or []
    return STALL_HINTS.get(str(stalls[0][0]), "") if stalls and stalls[0] else ""


def _bound(k: Kernel) -> str:
    bound = str(_roof(k).get("bound") or "unknown")
    return f"{bound}-bound" if bound != "unknown" else "unknown"


@dataclass(frozen=True)
class KernelGroup:
    """The launches of one kernel: the longest stands for them (as in the profile's summary)."""

    kernel: Kernel
    launches: int
    total_ns: float | None

    @property
    def time_per_launch(self) -> str:
        return _time(self.total_ns / self.launches if self.total_ns is not None else None)


def _registers(k: Kernel) -> str:
    return str(k["registers_per_thread"]) if k.get("registers_per_thread") is not None else ""


# (row label, its cell for a kernel group); a row no kernel has a value for is left out
ROWS: tuple[tuple[str, Callable[[KernelGroup], str]], ...] = (
    ("launches", lambda g: str(g.launches)),
    ("time per launch", lambda g: g.time_per_launch),
    ("bound", lambda g: _bound(g.kernel)),
    ("DRAM bandwidth (of peak TB/s)", lambda g: _dram(g.kernel)),
    ("compute (of peak TFLOP/s)", lambda g: _compute(g.kernel)),
    ("arithmetic intensity", lambda g: _intensity(g.kernel)),
    ("SM / memory throughput", lambda g: _pair(g.kernel, "sm_throughput_pct", "memory_throughput_pct")),
    ("achieved occupancy", lambda g: _pct(g.kernel.get("achieved_occupancy_pct"))),
    ("registers / thread", lambda g: _registers(g.kernel)),
    ("shared memory / block", lambda g: _bytes(g.kernel.get("shared_mem_bytes"))),
    ("launch shape", lambda g: _launch(g.kernel)),
    ("L1 / L2 hit rate", lambda g: _pair(g.kernel, "l1_hit_pct", "l2_hit_pct")),
    ("top stalls", lambda g: _stalls(g.kernel)),
    ("what the top stall suggests", lambda g: _hint(g.kernel)),
)


def kernel_groups(kernels: Sequence[Kernel]) -> list[KernelGroup]:
    """One group per kernel name, costliest (total time) first."""
    by_name: dict[str, list[Kernel]] = {}
    for k in kernels:
        by_name.setdefault(str(k.get("name") or "kernel"), []).append(k)
    groups = []
    for launches in by_name.values():
        known = [t for t in (_num(k.get("duration_ns")) for k in launches) if t is not None]
        longest = max(launches, key=lambda k: _num(k.get("duration_ns")) or 0.0)
        groups.append(KernelGroup(longest, len(launches), sum(known) if known else None))
    return sorted(groups, key=lambda g: -(g.total_ns or 0.0))


def profile_table(profile: Mapping[str, Any] | None) -> str:
    """The table (with a line on totals and peak sources), or the profile's own summary when it has no kernels."""
    profile = profile or {}
    kernels = [k for k in profile.get("kernels") or [] if isinstance(k, Mapping)]
    if not kernels:
        summary = str(profile.get("summary") or "")
        return f'<p class="note profile-summary">{esc(summary)}</p>' if summary else ""
    groups = kernel_groups(kernels)
    shown = groups[:MAX_KERNELS]
    head = "".join(f'<th title="{esc(g.kernel.get("name") or "")}"><code>'
                   f'{esc(short_kernel_name(str(g.kernel.get("name") or "kernel"), 40))}</code></th>' for g in shown)
    rows = []
    for label, cell in ROWS:
        cells = [cell(g) for g in shown]
        if any(cells):  # a measure no kernel has (an older ncu, a missing metric)
            rows.append(f"<tr><th>{esc(label)}</th>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    notes = []
    if len(groups) > len(shown):
        notes.append(f"{len(groups) - len(shown)} more kernel(s) not shown")
    total = _num(profile.get("total_duration_ns"))
    if total:
        notes.append(f"total GPU time {_time(total)}")
    roof = _roof(kernels[0])
    sources = sorted({str(roof.get(s)) for s in ("peak_flops_source", "peak_bandwidth_source") if roof.get(s)})
    if sources:
        notes.append("peaks: " + "; ".join(sources))
    note = f'<p class="note">{esc("; ".join(notes))}</p>' if notes else ""
    return (f'<table class="data profile"><thead><tr><th>kernel</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>{note}")
