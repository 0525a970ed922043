"""What a call actually ran on the GPU: kernels, copies and streams, from torch.profiler.

Used to catch candidates that launch nothing, compute on the host, call the
reference's PyTorch op, or leave work running on another stream after they
return (work that would escape the timed region).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

MARKER_NAME = "spin_kernel"  # torch.cuda._sleep's kernel, launched right after the call returns
KernelClass = Literal["custom", "library", "framework"]

# cuBLAS/cuBLASLt/cuDNN/CUTLASS kernels: library GEMM and conv calls are allowed and reported. cuDNN's FFT
# convolution runs kernels of its own namespace DSE (regular_fft_pad, vector_fft) and a complex product
# (pointwise_mult_and_sum_complex) whose names carry no library word.
_LIBRARY_RE = re.compile(r"(cublas|cudnn|cutlass|xmma|gemm|gemv|nvjet|sm\d+_|ampere_|volta_|turing_|hopper_|"
                         r"cusparse|cufft|cusolver|implicit_convolve|convolve_|winograd|fft2d|wgrad|dgrad|fprop|"
                         r"DSE::|regular_fft|vector_fft|pointwise_mult_and_sum_complex)",
                         re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class GpuActivity:
    kind: str  # kernel | memcpy | memset
    name: str
    stream: int
    start_us: float
    end_us: float
    bytes: int = 0
    copy_kind: str = ""  # DtoH | HtoD | DtoD | ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuActivity:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True, slots=True)
class CallTrace:
    activities: tuple[GpuActivity, ...]
    marker_start_us: float | None
    available: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"activities": [a.to_dict() for a in self.activities], "marker_start_us": self.marker_start_us,
                "available": self.available, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallTrace:
        return cls(tuple(GpuActivity.from_dict(a) for a in data.get("activities", [])), data.get("marker_start_us"),
                   bool(data.get("available", True)), str(data.get("reason", "")))

    @property
    def kernels(self) -> tuple[GpuActivity, ...]:
        return tuple(a for a in self.activities if a.kind == "kernel")

    def escaped(self, slack_us: float = 2.0) -> list[GpuActivity]:
        """Activities still running when the marker (launched after return) began."""
        if self.marker_start_us is None:
            return []
        return [a for a in self.activities if a.end_us > self.marker_start_us + slack_us]

    def device_to_host_bytes(self) -> int:
        return sum(a.bytes for a in self.activities if a.kind == "memcpy" and "DtoH" in a.copy_kind)


def trace_call(fn: Callable[[], Any]) -> tuple[Any, CallTrace]:
    """Run fn once under the profiler, launch the marker, and return (fn's result, trace)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            result = fn()
            torch.cuda._sleep(2000)
            torch.cuda.synchronize()
    except RuntimeError as exc:
        if "CUPTI" in str(exc) or "profiler" in str(exc).lower():
            torch.cuda.synchronize()
            return fn(), CallTrace((), None, available=False, reason=f"profiler unavailable: {exc}")
        raise
    fd, path = tempfile.mkstemp(suffix=".json", prefix="kw-trace-")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as fh:
            events = json.load(fh).get("traceEvents", [])
    finally:
        os.unlink(path)
    activities, marker = _parse_events(events)
    if not activities and marker is None:
        return result, CallTrace((), None, available=False, reason="profiler recorded no GPU activity (CUPTI off?)")
    return result, CallTrace(tuple(activities), marker)


def _parse_events(events: Iterable[dict[str, Any]]) -> tuple[list[GpuActivity], float | None]:
    activities: list[GpuActivity] = []
    marker: float | None = None
    for ev in events:
        cat = str(ev.get("cat", "")).lower()
        if ev.get("ph") != "X" or cat not in ("kernel", "gpu_memcpy", "gpu_memset"):
            continue
        name = str(ev.get("name", ""))
        start = float(ev.get("ts", 0.0))
        end = start + float(ev.get("dur", 0.0))
        args = ev.get("args", {}) or {}
        if cat == "kernel" and MARKER_NAME in name:
            marker = start if marker is None else min(marker, start)
            continue
        kind = {"kernel": "kernel", "gpu_memcpy": "memcpy", "gpu_memset": "memset"}[cat]
        copy_kind = ""
        if kind == "memcpy":
            m = re.search(r"(DtoH|HtoD|DtoD|HtoH|PtoP)", name)
            copy_kind = m.group(1) if m else name
        activities.append(GpuActivity(kind, name, int(args.get("stream", -1) or -1), start, end,
                                      int(args.get("bytes", 0) or 0), copy_kind))
    return activities, marker


# ---------------------------------------------------------------- classification

def base_name(kernel_name: str) -> str:
    """`void ns::relu_kernel<float>(float*, int)` -> `relu_kernel`."""
    name = kernel_name
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):  # strip the parameter list: the first '(' at template depth 0
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "(" and depth == 0 and "(anonymous" not in name[i:i + 11]:
            cut = i
            break
    name = name[:cut]
    name = re.sub(r"<.*>$", "", name).strip()
    name = name.split(" ")[-1]
    return name.split("::")[-1]


def library_symbols(paths: Iterable[str]) -> set[str]:
    """Kernel base names defined in the candidate's own shared libraries (nm -C)."""
    names: set[str] = set()
    for path in paths:
        try:
            out = subprocess.run(["nm", "-C", "--defined-only", path], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in out.stdout.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[1] in ("T", "t", "W", "w"):
                names.add(base_name(parts[2]))
    return names


def classify(kernel_name: str, custom_names: set[str]) -> KernelClass:
    base = base_name(kernel_name)
    if base in custom_names or kernel_name.startswith("triton"):
        return "custom"
    if _LIBRARY_RE.search(kernel_name):
        return "library"
    return "framework"
