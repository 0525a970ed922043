"""What the winner launched on the GPU, one row per kernel with its class and share of GPU time, and where its time
stands against the problem's roofline floor. From the harness's report (`kernel_usage`, `floor`); the policy the
classes come from is docs/KERNEL_POLICY.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kernelwright.eval.report.svg import esc
from kernelwright.eval.report.tables import table
from kernelwright.tools.measure.ncu import short_kernel_name
from kernelwright.tools.verify.integrity import kernel_times

CLASS_NAMES = {"custom": "the candidate's own", "library": "library (cuBLAS, cuDNN, CUTLASS, ...)",
               "framework": "PyTorch"}


def kernel_usage_table(report: Mapping[str, Any]) -> str:
    """The per-kernel table with the class totals above it; '' when the report has no kernel trace."""
    usage = report.get("kernel_usage")
    if not isinstance(usage, Mapping):
        return ""
    library = float(usage.get("library_time_share") or 0.0)
    framework = float(usage.get("framework_time_share") or 0.0)
    totals = (f"GPU time of one traced call: {100 * (1 - library - framework):.1f}% the candidate's own kernels, "
              f"{100 * library:.1f}% library kernels, {100 * framework:.1f}% PyTorch kernels")
    rows = [[short_kernel_name(k.name, 100), CLASS_NAMES.get(k.cls, k.cls), f"{k.total_us:.1f}",
             f"{100 * k.share:.1f}%", k.calls] for k in kernel_times(dict(usage))]
    if not rows:  # a report written before the per-kernel breakdown: the names by class only
        rows = [[short_kernel_name(str(name), 100), CLASS_NAMES[cls], "", "", ""]
                for cls in ("custom", "library", "framework") for name in usage.get(cls) or ()]
    return (f'<p class="note">{esc(totals)}</p>'
            + table(["kernel", "class", "GPU time (us)", "share", "launches"], rows, css="data kernels", numeric_from=2))


def roofline_line(report: Mapping[str, Any]) -> str:
    """'timed at 2.50x its roofline floor of 12.3 us (compute-bound: ...)'; '' when the floor was not computed."""
    floor = report.get("floor")
    if not isinstance(floor, Mapping) or not isinstance(floor.get("floor_ratio"), (int, float)):
        return ""
    roof = floor.get("roofline") or {}
    bound = floor.get("roofline_bound")
    if bound == "compute":
        why = f"{float(roof.get('flops') or 0) / 1e9:.3g} GFLOP at {roof.get('peak_tflops')} TFLOP/s, {roof.get('peak_rate')}"
    else:
        why = (f"{float(roof.get('bytes_moved') or 0) / 1e6:.3g} MB at {float(roof.get('copy_gbps') or 0):.0f} GB/s "
               "measured copy bandwidth")
    if roof.get("note"):
        why += f"; {roof['note']}"
    floor_us = float(floor.get("roofline_ms") or 0.0) * 1e3
    text = f"timed at {float(floor['floor_ratio']):.2f}x its roofline floor of {floor_us:.1f} us ({bound}-bound: {why})"
    return f'<p class="note">{esc(text)}</p>'
