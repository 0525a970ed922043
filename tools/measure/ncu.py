"""Nsight Compute profiling: run `ncu --csv --page raw` on a command, parse it into typed results.

ncu is looked up at call time. When it is missing or cannot read the GPU's counters
(ERR_NVGPUCTRPERM, "Failed to initialize the profiler: LibraryNotLoaded" on some
virtualised GPUs, ...) the answer is a `ProfileUnavailable` carrying ncu's own
message, never an exception; only a run past its time limit raises `ToolTimeout`.

Metric names were checked against ncu 2025.3.1 on an H100 (`ncu --query-metrics
--chip gh100` and real `--csv --page raw` output). ncu 2025 silently drops metrics
a chip lacks; older versions refuse with "Failed to find metric", and the run is
then retried without the named metrics. Missing metrics become None, never errors.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from kernelwright.tools.errors import ToolTimeout
from kernelwright.tools.measure.roofline import LATENCY_BOUND_PCT, Roofline, compute_roofline
from kernelwright.tools.procenv import ToolJail, scrubbed_env

if TYPE_CHECKING:  # attribute access only, so no import cycle with gpu_info (which imports this module)
    from kernelwright.tools.measure.gpu_info import GpuFacts

log = structlog.get_logger(__name__)

# -- metrics -------------------------------------------------------------------------------------
DURATION = "gpu__time_duration.sum"  # kernel wall time on the GPU (ns)
SM_THROUGHPUT = "sm__throughput.avg.pct_of_peak_sustained_elapsed"  # SOL compute %, busiest SM pipe/unit
MEM_THROUGHPUT = "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed"  # SOL memory % (L1/L2/DRAM)
DRAM_THROUGHPUT = "gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed"  # DRAM % of peak (ncu 2023+)
DRAM_THROUGHPUT_OLD = "dram__throughput.avg.pct_of_peak_sustained_elapsed"  # same, older spelling
OCCUPANCY = "sm__warps_active.avg.pct_of_peak_sustained_active"  # achieved occupancy %
REGISTERS = "launch__registers_per_thread"
SMEM_STATIC = "launch__shared_mem_per_block_static"  # bytes/block
SMEM_DYNAMIC = "launch__shared_mem_per_block_dynamic"  # bytes/block
GRID_SIZE = "launch__grid_size"  # blocks; the (x, y, z) shape comes from the "Grid Size" column
BLOCK_SIZE = "launch__block_size"  # threads; shape from the "Block Size" column
L1_HIT = "l1tex__t_sector_hit_rate.pct"
L2_HIT = "lts__t_sector_hit_rate.pct"
DRAM_READ = "dram__bytes_read.sum"
DRAM_WRITE = "dram__bytes_write.sum"

# FLOP counters: (metric, FLOPs per count). SIMT counters count thread instructions, so an FMA is 2
# (as in ncu's roofline sections); a packed HFMA2 still counts once, so half SIMT FLOPs can be low by 2x.
# The tensor "ops_path" counters already count FLOPs: a 1024^3 fp16 GEMM read 2^31 on H100.
FLOP_METRICS: Mapping[str, tuple[tuple[str, int], ...]] = {
    "fp64": (("sm__sass_thread_inst_executed_op_dadd_pred_on.sum", 1),
             ("sm__sass_thread_inst_executed_op_dmul_pred_on.sum", 1),
             ("sm__sass_thread_inst_executed_op_dfma_pred_on.sum", 2)),
    "fp32": (("sm__sass_thread_inst_executed_op_fadd_pred_on.sum", 1),
             ("sm__sass_thread_inst_executed_op_fmul_pred_on.sum", 1),
             ("sm__sass_thread_inst_executed_op_ffma_pred_on.sum", 2)),
    "fp16": (("sm__sass_thread_inst_executed_op_hadd_pred_on.sum", 1),
             ("sm__sass_thread_inst_executed_op_hmul_pred_on.sum", 1),
             ("sm__sass_thread_inst_executed_op_hfma_pred_on.sum", 2)),
    "tensor_fp16": (("sm__ops_path_tensor_src_fp16.sum", 1),),  # fp16 in, fp16 or fp32 accumulate
    "tensor_bf16": (("sm__ops_path_tensor_src_bf16_dst_fp32.sum", 1),),
    "tensor_tf32": (("sm__ops_path_tensor_src_tf32_dst_fp32.sum", 1),),
    "tensor_fp8": (("sm__ops_path_tensor_src_fp8.sum", 1),),  # Hopper and later
    "tensor_fp64": (("sm__ops_path_tensor_src_fp64.sum", 1),),  # DMMA; FLOP scaling not verified
}

# Share of active warps' cycles stalled on each reason (%). "selected" (issuing) is not a stall.
STALL_REASONS = (
    "long_scoreboard", "short_scoreboard", "wait", "mio_throttle", "lg_throttle", "math_pipe_throttle",
    "barrier", "membar", "branch_resolving", "no_instruction", "not_selected", "dispatch_stall", "drain",
    "imc_miss", "tex_throttle", "sleeping", "misc", "gmma",
)
STALL_METRIC = "smsp__warp_issue_stalled_{}_per_warp_active.pct"
STALL_HINTS = {
    "long_scoreboard": "waiting on global memory: coalesce, vectorize, reuse via shared memory, more loads in flight",
    "short_scoreboard": "waiting on shared memory or MUFU: check bank conflicts",
    "wait": "fixed-latency dependencies: more independent instructions per thread (ILP)",
    "mio_throttle": "shared-memory/special-instruction queue full: fewer, wider shared accesses",
    "lg_throttle": "too many global memory instructions: use wider (128-bit) loads/stores",
    "math_pipe_throttle": "a math pipe is saturated: use tensor cores or cheaper instructions",
    "barrier": "warps idle at __syncthreads: balance work between warps",
    "membar": "memory fences are costly: remove or narrow them",
    "branch_resolving": "branch divergence: make control flow uniform per warp",
    "no_instruction": "instruction cache misses: smaller unrolled code",
    "not_selected": "eligible warps wait their turn (the scheduler is busy; usually fine)",
    "dispatch_stall": "pipeline dispatch stalls",
    "imc_miss": "constant cache misses",
    "tex_throttle": "texture/L1 queue full",
    "gmma": "waiting on wgmma results: deepen the pipeline",
}


@dataclass(frozen=True, slots=True)
class MetricSet:
    names: tuple[str, ...]

    def without(self, drop: Sequence[str]) -> MetricSet:
        return MetricSet(tuple(n for n in self.names if n not in set(drop)))

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names)}


DEFAULT_METRICS = MetricSet((
    DURATION, SM_THROUGHPUT, MEM_THROUGHPUT, DRAM_THROUGHPUT, DRAM_THROUGHPUT_OLD, OCCUPANCY, REGISTERS,
    SMEM_STATIC, SMEM_DYNAMIC, GRID_SIZE, BLOCK_SIZE, L1_HIT, L2_HIT, DRAM_READ, DRAM_WRITE,
    *(m for group in FLOP_METRICS.values() for m, _ in group),
    *(STALL_METRIC.format(r) for r in STALL_REASONS),
))

# -- results -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KernelProfile:
    """One profiled kernel launch; any metric the GPU/ncu did not report is None."""

    name: str
    launch_id: int
    duration_ns: float | None
    sm_throughput_pct: float | None
    memory_throughput_pct: float | None
    dram_throughput_pct: float | None
    achieved_occupancy_pct: float | None
    registers_per_thread: int | None
    shared_mem_bytes: int | None  # static + dynamic, per block
    grid: tuple[int, int, int] | None
    block: tuple[int, int, int] | None
    l1_hit_pct: float | None
    l2_hit_pct: float | None
    dram_read_bytes: float | None
    dram_write_bytes: float | None
    flops_by_kind: tuple[tuple[str, float], ...]
    top_stalls: tuple[tuple[str, float], ...]  # (reason, % of active warp cycles), largest first, at most 3
    roofline: Roofline
    missing_metrics: tuple[str, ...] = ()

    @property
    def dram_bytes(self) -> float | None:
        if self.dram_read_bytes is None and self.dram_write_bytes is None:
            return None
        return (self.dram_read_bytes or 0.0) + (self.dram_write_bytes or 0.0)

    @property
    def flops(self) -> float | None:
        return sum(v for _, v in self.flops_by_kind) if self.flops_by_kind else None

    @property
    def short_name(self) -> str:
        return short_kernel_name(self.name)

    def to_dict(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out.update(grid=list(self.grid) if self.grid else None, block=list(self.block) if self.block else None,
                   flops_by_kind=dict(self.flops_by_kind), top_stalls=[list(s) for s in self.top_stalls],
                   roofline=self.roofline.to_dict(), missing_metrics=list(self.missing_metrics),
                   dram_bytes=self.dram_bytes, flops=self.flops)
        return out


@dataclass(frozen=True, slots=True)
class ProfileResult:
    kernels: tuple[KernelProfile, ...]
    command: tuple[str, ...]
    ncu_version: str | None
    returncode: int = 0
    messages: tuple[str, ...] = ()  # ncu's ==WARNING==/==ERROR== lines
    available: ClassVar[bool] = True

    @property
    def total_duration_ns(self) -> float:
        return sum(k.duration_ns or 0.0 for k in self.kernels)

    def summary(self, max_kernels: int = 5) -> str:
        return summarize(self, max_kernels)

    def to_dict(self) -> dict[str, Any]:
        return {"available": True, "kernels": [k.to_dict() for k in self.kernels], "command": list(self.command),
                "ncu_version": self.ncu_version, "returncode": self.returncode, "messages": list(self.messages),
                "total_duration_ns": self.total_duration_ns}


@dataclass(frozen=True, slots=True)
class ProfileUnavailable:
    reason: str
    command: tuple[str, ...] = ()
    ncu_version: str | None = None
    available: ClassVar[bool] = False

    def summary(self, max_kernels: int = 5) -> str:
        return f"profiler unavailable: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"available": False, "reason": self.reason, "command": list(self.command),
                "ncu_version": self.ncu_version}


# -- parsing -------------------------------------------------------------------------------------
_UNIT_SCALE = {  # to ns for times, bytes for sizes (ncu's SI prefixes), 1 for the rest
    "ns": 1.0, "nsecond": 1.0, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6, "s": 1e9, "second": 1e9,
    "byte": 1.0, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "Tbyte": 1e12,
    "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024.0, "MiB": 1024.0**2, "GiB": 1024.0**3,
}
_UNAVAILABLE_MARKERS = ("ERR_NVGPUCTRPERM", "LibraryNotLoaded", "Failed to initialize the profiler",
                        "not supported on this device", "The user does not have permission", "==ERROR==")
_MISSING_METRIC_RE = re.compile(r"(?:Failed to find|Unknown|Invalid) metrics?:?\s+['\"]?([A-Za-z0-9_.]+)")


def parse_number(text: str, unit: str = "") -> float | None:
    """'33,559,296' -> 33559296.0 (scaled to ns/bytes by unit); 'n/a' or '' -> None."""
    cleaned = text.strip().replace(",", "")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value * _UNIT_SCALE.get(unit.strip(), 1.0)


def _triple(text: str) -> tuple[int, int, int] | None:
    parts = re.findall(r"\d[\d,]*", text or "")
    return tuple(int(p.replace(",", "")) for p in parts[:3]) if len(parts) >= 3 else None  # type: ignore[return-value]


def parse_csv_rows(stdout: str) -> list[dict[str, tuple[str, str]]]:
    """The CSV after the program's output and ==PROF== lines: one {column: (value, unit)} per launch."""
    lines = stdout.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith('"ID",')), None)
    if start is None:
        return []
    rows = list(csv.reader(io.StringIO("\n".join(lines[start:]))))
    header = rows[0]
    units = rows[1] if len(rows) > 1 and len(rows[1]) == len(header) and not rows[1][0].strip() else [""] * len(header)
    out = []
    for row in rows[1:]:
        if len(row) == len(header) and row[0].strip().isdigit():
            out.append({h: (v, u) for h, v, u in zip(header, row, units)})
    return out


def kernel_from_row(row: Mapping[str, tuple[str, str]], metrics: MetricSet = DEFAULT_METRICS,
                    facts: GpuFacts | None = None) -> KernelProfile:
    def num(name: str) -> float | None:
        return parse_number(*row[name]) if name in row else None

    def whole(name: str) -> int | None:
        value = num(name)
        return int(value) if value is not None else None

    flops: dict[str, float] = {}
    for kind, parts in FLOP_METRICS.items():
        counted = [(num(m), k) for m, k in parts]
        if any(v is not None for v, _ in counted):
            flops[kind] = sum((v or 0.0) * k for v, k in counted)
    stalls = [(r, num(STALL_METRIC.format(r))) for r in STALL_REASONS]
    top = tuple(sorted(((r, v) for r, v in stalls if v), key=lambda s: -s[1])[:3])
    smem = [whole(SMEM_STATIC), whole(SMEM_DYNAMIC)]
    dram_pct = _max(num(DRAM_THROUGHPUT), num(DRAM_THROUGHPUT_OLD))
    grid = _triple(row.get("Grid Size", ("", ""))[0]) or _size_only(whole(GRID_SIZE))
    block = _triple(row.get("Block Size", ("", ""))[0]) or _size_only(whole(BLOCK_SIZE))
    read, write, duration = num(DRAM_READ), num(DRAM_WRITE), num(DURATION)
    dram = None if read is None and write is None else (read or 0.0) + (write or 0.0)
    sm_pct, mem_pct = num(SM_THROUGHPUT), num(MEM_THROUGHPUT)
    roof = compute_roofline(flops, dram, duration, facts=facts, sm_throughput_pct=sm_pct,
                            memory_throughput_pct=_max(mem_pct, dram_pct))
    optional = {DRAM_THROUGHPUT, DRAM_THROUGHPUT_OLD, *(STALL_METRIC.format(r) for r in STALL_REASONS)}
    missing = tuple(m for m in metrics.names if m not in row and m not in optional)
    return KernelProfile(
        name=row.get("Kernel Name", ("?", ""))[0], launch_id=int(row.get("ID", ("0", ""))[0] or 0),
        duration_ns=duration, sm_throughput_pct=sm_pct, memory_throughput_pct=mem_pct, dram_throughput_pct=dram_pct,
        achieved_occupancy_pct=num(OCCUPANCY), registers_per_thread=whole(REGISTERS),
        shared_mem_bytes=None if smem == [None, None] else sum(s or 0 for s in smem), grid=grid, block=block,
        l1_hit_pct=num(L1_HIT), l2_hit_pct=num(L2_HIT), dram_read_bytes=read, dram_write_bytes=write,
        flops_by_kind=tuple(flops.items()), top_stalls=top, roofline=roof, missing_metrics=missing)


def _max(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _size_only(n: int | None) -> tuple[int, int, int] | None:
    return (n, 1, 1) if n is not None else None


def ncu_messages(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.startswith(("==ERROR==", "==WARNING=="))]


def parse_ncu_output(stdout: str, stderr: str = "", *, returncode: int = 0, command: Sequence[str] = (),
                     ncu_version: str | None = None, metrics: MetricSet = DEFAULT_METRICS,
                     facts: GpuFacts | None = None) -> ProfileResult | ProfileUnavailable:
    """Turn one ncu run's output into a ProfileResult, or ProfileUnavailable when it profiled nothing."""
    rows = parse_csv_rows(stdout)
    messages = ncu_messages(stdout + "\n" + stderr)
    if not rows:
        text = stdout + "\n" + stderr
        errors = [m for m in messages if m.startswith("==ERROR==")]
        if errors or any(marker in text for marker in _UNAVAILABLE_MARKERS):
            reason = " ".join(m.removeprefix("==ERROR==").strip() for m in errors[:3])
            marked = (ln.strip() for ln in text.splitlines() if any(k in ln for k in _UNAVAILABLE_MARKERS))
            reason = reason or next(marked, "")
            return ProfileUnavailable(reason, tuple(command), ncu_version)
        if returncode != 0:
            tail = " | ".join(ln for ln in text.strip().splitlines()[-5:])
            return ProfileUnavailable(f"ncu exited with status {returncode} and profiled no kernels: {tail}",
                                      tuple(command), ncu_version)
        listed = re.search(r"Available Kernels:\s*\n((?:\s*\d+\.\s+.+\n?)+)", text)
        if listed:  # ncu lists the kernels when the --kernel-name filter matched none
            names = re.findall(r"\d+\.\s+(.+)", listed.group(1))
            messages.append("available kernels: " + ", ".join(n.strip() for n in names))
    kernels = tuple(kernel_from_row(r, metrics, facts) for r in rows)
    return ProfileResult(kernels, tuple(command), ncu_version, returncode, tuple(messages))


# -- summary -------------------------------------------------------------------------------------
def short_kernel_name(name: str, limit: int = 80) -> str:
    """'void ns::k<float, 4>(const float *, int)' -> 'ns::k<float, 4>'."""
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):
        depth += (ch == "<") - (ch == ">")
        if ch == "(" and depth == 0 and i > 0:
            cut = i
            break
    base = name[:cut].strip().removeprefix("void ").strip()
    return base if len(base) <= limit else base[: limit - 3] + "..."


def _fmt_time(ns: float | None) -> str:
    if ns is None:
        return "? us"
    return f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns / 1e3:.1f} us"


def _pct(v: float | None) -> str:
    return f"{v:.0f}%" if v is not None else "?"


def _bound_phrase(k: KernelProfile) -> str:
    r = k.roofline
    if r.bound == "memory" and r.pct_of_peak_bandwidth is not None and r.achieved_dram_gbps and r.peak_dram_gbps:
        return (f"memory-bound at {_pct(r.pct_of_peak_bandwidth)} of DRAM bandwidth "
                f"({r.achieved_dram_gbps / 1e3:.2f} TB/s of {r.peak_dram_gbps / 1e3:.2f})")
    if r.bound == "latency":
        return f"latency-bound (neither compute nor memory throughput reaches {LATENCY_BOUND_PCT:.0f}% of peak)"
    return f"{r.bound}-bound" if r.bound != "unknown" else "bound unknown"


def _kernel_line(k: KernelProfile, launches: int, total_ns: float) -> str:
    r = k.roofline
    head = f"{k.short_name}: {_fmt_time(total_ns / launches)}" + (f" (x{launches} launches)" if launches > 1 else "")
    parts = [_bound_phrase(k)]
    if r.achieved_gflops:
        peak = f" ({_pct(r.pct_of_peak_flops)} of {r.peak_gflops / 1e3:.0f})" if r.peak_gflops else ""
        intensity = r.arithmetic_intensity_flop_per_byte
        at = f" at {intensity:.2f} FLOP/B" if intensity else ""
        parts.append(f"{r.achieved_gflops / 1e3:.2f} TFLOP/s{peak}{at}")
    if r.achieved_dram_gbps is not None and not parts[0].startswith("memory-bound at"):
        parts.append(f"DRAM {r.achieved_dram_gbps / 1e3:.2f} TB/s ({_pct(r.pct_of_peak_bandwidth)} of peak)")
    if k.sm_throughput_pct is not None or k.memory_throughput_pct is not None:
        parts.append(f"SM {_pct(k.sm_throughput_pct)}, memory {_pct(k.memory_throughput_pct)} of peak throughput")
    launch = [f"occupancy {_pct(k.achieved_occupancy_pct)}" if k.achieved_occupancy_pct is not None else "",
              f"{k.registers_per_thread} regs/thread" if k.registers_per_thread is not None else "",
              f"{k.shared_mem_bytes} B smem/block" if k.shared_mem_bytes is not None else ""]
    parts.append(", ".join(x for x in launch if x))
    if k.l1_hit_pct is not None or k.l2_hit_pct is not None:
        parts.append(f"L1 hit {_pct(k.l1_hit_pct)}, L2 hit {_pct(k.l2_hit_pct)}")
    if k.top_stalls:
        stalls = ", ".join(f"{s} {v:.0f}%" for s, v in k.top_stalls)
        hint = STALL_HINTS.get(k.top_stalls[0][0])
        parts.append(f"top stalls {stalls}" + (f" -> {hint}" if hint else ""))
    return head + ", " + "; ".join(p for p in parts if p)


def summarize(result: ProfileResult, max_kernels: int = 5) -> str:
    """A few lines for an LLM critic: the costliest kernels, their bound, and what they wait on."""
    if not result.kernels:
        listed = [m for m in result.messages if m.startswith("available kernels:")]
        return "no kernel launches were profiled (the kernel filter matched nothing, or the program launched none)" + (
            f"; {listed[0]}" if listed else "")
    groups: dict[str, list[KernelProfile]] = {}
    for k in result.kernels:
        groups.setdefault(k.name, []).append(k)
    ranked = sorted(groups.values(), key=lambda ks: -sum(k.duration_ns or 0.0 for k in ks))
    lines = [_kernel_line(max(ks, key=lambda k: k.duration_ns or 0.0), len(ks), sum(k.duration_ns or 0.0 for k in ks))
             for ks in ranked[:max_kernels]]
    if len(ranked) > max_kernels:
        lines.append(f"... and {len(ranked) - max_kernels} more kernels")
    sources = {result.kernels[0].roofline.peak_flops_source, result.kernels[0].roofline.peak_bandwidth_source}
    lines.append(f"total GPU time {_fmt_time(result.total_duration_ns)}; peaks: {'; '.join(sorted(sources))}")
    return "\n".join(lines)


# -- running ncu ---------------------------------------------------------------------------------
def find_ncu(search_path: str | None = None) -> str | None:
    """ncu on PATH, else in the CUDA and Nsight Compute install dirs. `search_path` (os.pathsep-separated)
    replaces all of those, so tests can point it at an empty directory."""
    if search_path is not None:
        return shutil.which("ncu", path=search_path)
    found = shutil.which("ncu")
    if found:
        return found
    dirs = ["/usr/local/cuda/bin", *sorted(glob.glob("/opt/nvidia/nsight-compute/*/"), reverse=True)]
    return shutil.which("ncu", path=os.pathsep.join(dirs))


def ncu_version(exe: str, timeout_s: float = 60.0) -> str | None:
    """'2025.3.1.0' from `ncu --version`; None if it cannot be read."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=timeout_s, env=scrubbed_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.info("ncu_version_failed", error=str(exc))
        return None
    m = re.search(r"Version\s+(\S+)", out.stdout)
    return m.group(1) if m else None


def build_command(exe: str, cmd: Sequence[str], metrics: MetricSet, *, kernel_regex: str | None = None,
                  launch_skip: int = 0, launch_count: int | None = None, clock_control: str = "base") -> list[str]:
    args = [exe, "--csv", "--page", "raw", "--print-units", "base", "--clock-control", clock_control,
            "--metrics", ",".join(metrics.names)]
    if kernel_regex:
        args += ["--kernel-name", kernel_regex if kernel_regex.startswith("regex:") else f"regex:{kernel_regex}"]
    if launch_skip:
        args += ["--launch-skip", str(launch_skip)]
    if launch_count is not None:
        args += ["--launch-count", str(launch_count)]
    return [*args, "--target-processes", "all", *cmd]


def _run(args: list[str], env: dict[str, str], timeout_s: float, cwd: str | None,
         jail: ToolJail | None = None) -> tuple[int, str, str]:
    """Run in its own process group, so a timeout kills ncu and the profiled program together; inside
    `jail` when given (the profiled program is candidate code)."""
    env = dict(env)
    with (jail(args, env) if jail is not None else nullcontext(args)) as cmd:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                env=env, cwd=cwd, start_new_session=True, stdin=subprocess.DEVNULL)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            raise ToolTimeout(f"ncu did not finish within {timeout_s:g} s and was killed: {' '.join(args[-3:])}",
                              timeout_s=timeout_s, where="ncu") from None
    return proc.returncode, out, err


def profile_command(cmd: Sequence[str], *, kernel_regex: str | None, metrics: MetricSet = DEFAULT_METRICS,
                    timeout_s: float, env: Mapping[str, str] | None, launch_skip: int = 0,
                    launch_count: int | None = None, facts: GpuFacts | None = None, clock_control: str = "base",
                    cwd: str | None = None, search_path: str | None = None,
                    jail: ToolJail | None = None) -> ProfileResult | ProfileUnavailable:
    """Profile every matching kernel launch of `cmd` under ncu.

    `env` is scrubbed of secrets (None: this process's environment). `facts` supplies the roofline
    peaks. clock_control="base" (ncu's default) locks clocks to base for repeatable counters; "none"
    leaves them as they run. `jail`: what ncu and `cmd` start in (tools.sandbox.isolation.tool_jail), for a
    `cmd` that runs candidate code. Raises ToolTimeout only; everything else comes back as a value.
    """
    exe = find_ncu(search_path)
    if exe is None:
        where = search_path if search_path is not None else "PATH, /usr/local/cuda/bin or /opt/nvidia/nsight-compute/*"
        return ProfileUnavailable(f"ncu not found on {where}; install Nsight Compute", tuple(cmd))
    version = ncu_version(exe)
    child_env = scrubbed_env(env)
    for _attempt in range(3):
        args = build_command(exe, cmd, metrics, kernel_regex=kernel_regex, launch_skip=launch_skip,
                             launch_count=launch_count, clock_control=clock_control)
        log.info("ncu_start", command=args[-len(cmd):] if cmd else [], metrics=len(metrics.names))
        try:
            rc, out, err = _run(args, child_env, timeout_s, cwd, jail)
        except OSError as exc:
            return ProfileUnavailable(f"ncu could not be started: {exc}", tuple(args), version)
        unknown = _MISSING_METRIC_RE.findall(out + "\n" + err)
        if not unknown or parse_csv_rows(out) or not set(unknown) & set(metrics.names):
            break
        log.info("ncu_retry_without_metrics", metrics=unknown)
        metrics = metrics.without(unknown)
    result = parse_ncu_output(out, err, returncode=rc, command=args, ncu_version=version, metrics=metrics, facts=facts)
    log.info("ncu_done", available=result.available, returncode=rc,
             kernels=len(result.kernels) if isinstance(result, ProfileResult) else 0)
    return result
