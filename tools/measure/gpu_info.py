"""GPU facts, clock/thermal snapshots (NVML via nvidia-ml-py) and the `kernelwright env` report.

Nothing here initialises NVML at import: each query opens an `Nvml()` context,
which balances nvmlInit/nvmlShutdown (NVML counts them, so nesting is fine).
Every NVML failure becomes `ToolUnavailable`; `environment_report()` never raises.

Peak FLOP/s come from a small table of datasheet values (dense, boost clock);
the DRAM peak is derived from NVML's max memory clock and bus width. Both are
theoretical, and results that use them say so (`peak_flops.source`,
`peak_dram_bandwidth_source`); measured peaks can be swapped in with
`dataclasses.replace`.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import structlog

from kernelwright.tools.errors import KernelwrightError, ToolUnavailable
from kernelwright.tools.measure.ncu import find_ncu, ncu_version
from kernelwright.tools.procenv import scrubbed_env

log = structlog.get_logger(__name__)

_NO_GPU = "no NVIDIA driver/GPU visible"


@dataclass(frozen=True, slots=True)
class PeakFlops:
    """Peak throughput in TFLOP/s per kind of math; None where unknown."""

    source: str  # "datasheet: <entry>", "derived: ...", "measured: ..." or "unknown"
    fp64_tflops: float | None = None
    fp32_tflops: float | None = None  # SIMT (CUDA cores)
    fp16_tflops: float | None = None  # SIMT half (HADD/HMUL/HFMA), not tensor cores
    fp64_tensor_tflops: float | None = None
    tf32_tensor_tflops: float | None = None  # dense (no 2:4 sparsity)
    bf16_tensor_tflops: float | None = None
    fp16_tensor_tflops: float | None = None
    fp8_tensor_tflops: float | None = None

    def for_kind(self, kind: str) -> float | None:
        """Peak for a FLOP kind as counted by the profiler (`fp32`, `tensor_bf16`, ...)."""
        return {
            "fp64": self.fp64_tflops, "fp32": self.fp32_tflops, "fp16": self.fp16_tflops,
            "tensor_fp64": self.fp64_tensor_tflops, "tensor_tf32": self.tf32_tensor_tflops,
            "tensor_bf16": self.bf16_tensor_tflops, "tensor_fp16": self.fp16_tensor_tflops,
            "tensor_fp8": self.fp8_tensor_tflops,
        }.get(kind)

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class _Datasheet:
    pattern: str  # regex on the NVML name
    sm_count: int
    l2_bytes: int
    peaks: PeakFlops
    dram_gbps: float


_MIB = 1024 * 1024


def _sheet(pattern: str, label: str, sm: int, l2_mib: int, dram_gbps: float, fp64: float | None, fp32: float,
           fp16: float | None, fp64_tc: float | None, tf32: float, bf16: float, fp8: float | None) -> _Datasheet:
    peaks = PeakFlops(f"datasheet: {label} (dense, boost clock)", fp64, fp32, fp16, fp64_tc, tf32, bf16, bf16, fp8)
    return _Datasheet(pattern, sm, l2_mib * _MIB, peaks, dram_gbps)


# NVIDIA datasheets / architecture whitepapers; tensor figures are the dense (non-sparse) ones.
# First match wins, so the more specific names come first.
_DATASHEETS: tuple[_Datasheet, ...] = (
    _sheet(r"H100.*PCIe", "NVIDIA H100 PCIe", 114, 50, 2000, 25.6, 51.2, 102.4, 51.2, 378.0, 756.0, 1513.0),
    _sheet(r"H100 NVL", "NVIDIA H100 NVL", 132, 50, 3900, 30.0, 60.0, 120.0, 60.0, 417.5, 835.5, 1670.5),
    _sheet(r"H200 NVL", "NVIDIA H200 NVL", 132, 60, 4800, 30.0, 60.0, 120.0, 60.0, 417.5, 835.5, 1670.5),
    _sheet(r"H200", "NVIDIA H200 SXM", 132, 60, 4800, 33.5, 66.9, 133.8, 66.9, 494.7, 989.4, 1978.9),
    _sheet(r"GH200|H100", "NVIDIA H100 SXM5", 132, 50, 3350, 33.5, 66.9, 133.8, 66.9, 494.7, 989.4, 1978.9),
    _sheet(r"A100.*80GB.*PCIe", "NVIDIA A100 80GB PCIe", 108, 40, 1935, 9.7, 19.5, 78.0, 19.5, 156.0, 312.0, None),
    _sheet(r"A100.*80GB", "NVIDIA A100 80GB SXM", 108, 40, 2039, 9.7, 19.5, 78.0, 19.5, 156.0, 312.0, None),
    _sheet(r"A100", "NVIDIA A100 40GB", 108, 40, 1555, 9.7, 19.5, 78.0, 19.5, 156.0, 312.0, None),
    _sheet(r"L40S", "NVIDIA L40S", 142, 96, 864, None, 91.6, None, None, 183.0, 362.0, 733.0),
    _sheet(r"\bL4\b", "NVIDIA L4", 58, 48, 300, None, 30.3, None, None, 60.0, 121.0, 242.5),
    _sheet(r"\bA10\b", "NVIDIA A10", 72, 6, 600, None, 31.2, None, None, 62.5, 125.0, None),
)

# FP32 lanes per SM by compute capability major.minor (CUDA C++ Programming Guide, arithmetic throughput table).
_FP32_LANES_PER_SM = {(7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128, (9, 0): 128}


def _datasheet_for(name: str) -> _Datasheet | None:
    return next((d for d in _DATASHEETS if re.search(d.pattern, name)), None)


def datasheet_peaks(name: str) -> PeakFlops | None:
    """The datasheet peaks of a card by its name (NVML's or torch's); None for a card not in the table."""
    sheet = _datasheet_for(name)
    return sheet.peaks if sheet else None


@dataclass(frozen=True, slots=True)
class GpuFacts:
    name: str
    uuid: str
    driver_version: str
    cuda_driver_version: str | None  # the CUDA version the driver supports, e.g. "13.0"
    compute_capability: tuple[int, int]
    sm_count: int | None
    memory_total_bytes: int
    memory_bus_width_bits: int | None
    max_sm_clock_mhz: int | None
    max_mem_clock_mhz: int | None
    peak_dram_bandwidth_gbps: float | None
    peak_dram_bandwidth_source: str
    l2_bytes: int | None
    peak_flops: PeakFlops
    index: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "peak_flops"}
        out["compute_capability"] = list(self.compute_capability)
        out["peak_flops"] = self.peak_flops.to_dict()
        return out


# NVML clocks-event ("throttle") reason bits, from nvml.h (stable ABI values).
THROTTLE_REASON_BITS: dict[int, str] = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting",
}
# Reasons that mean the clock is held down by heat or power (the ones that spoil timings).
SLOWDOWN_REASONS = frozenset({"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown",
                              "hw_power_brake_slowdown"})


def decode_throttle_reasons(mask: int) -> tuple[str, ...]:
    names = [name for bit, name in THROTTLE_REASON_BITS.items() if mask & bit]
    unknown = mask & ~sum(THROTTLE_REASON_BITS)
    if unknown:
        names.append(f"unknown_0x{unknown:x}")
    return tuple(names)


@dataclass(frozen=True, slots=True)
class ClockSnapshot:
    index: int
    sm_clock_mhz: int | None
    mem_clock_mhz: int | None
    temperature_c: int | None
    power_w: float | None
    power_limit_w: float | None
    throttle_reasons: tuple[str, ...]
    timestamp_s: float  # time.time()

    def to_dict(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}
        out["throttle_reasons"] = list(self.throttle_reasons)
        return out


class Nvml:
    """`with Nvml() as nvml:` initialises NVML on entry and shuts it down on exit."""

    def __init__(self) -> None:
        self._lib: ModuleType | None = None

    def __enter__(self) -> Nvml:
        try:
            import pynvml
        except ImportError as exc:
            raise ToolUnavailable(f"{_NO_GPU}: nvidia-ml-py (pynvml) is not installed: {exc}", where="nvml") from exc
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise ToolUnavailable(f"{_NO_GPU}: NVML could not be initialised: {exc}", where="nvml") from exc
        except OSError as exc:  # a broken libnvidia-ml can fail at load time
            raise ToolUnavailable(f"{_NO_GPU}: NVML could not be loaded: {exc}", where="nvml") from exc
        self._lib = pynvml
        return self

    def __exit__(self, *exc_info: object) -> None:
        lib, self._lib = self._lib, None
        if lib is not None:
            try:
                lib.nvmlShutdown()
            except lib.NVMLError as exc:
                log.warning("nvml_shutdown_failed", error=str(exc))

    @property
    def lib(self) -> ModuleType:
        if self._lib is None:
            raise ToolUnavailable("NVML used outside its `with Nvml()` block", where="nvml")
        return self._lib

    def call(self, fn: str, *args: Any) -> Any:
        """Call pynvml.<fn>; any NVML error (or a missing binding) becomes ToolUnavailable."""
        lib = self.lib
        func = getattr(lib, fn, None)
        if func is None:
            raise ToolUnavailable(f"this nvidia-ml-py has no {fn}", where="nvml")
        try:
            return func(*args)
        except lib.NVMLError as exc:
            raise ToolUnavailable(f"NVML {fn} failed: {exc}", where="nvml") from exc

    def optional(self, fn: str, *args: Any) -> Any:
        """Like call(), but None when the query is unsupported on this GPU/driver."""
        try:
            return self.call(fn, *args)
        except ToolUnavailable:
            return None

    def handle(self, index: int) -> Any:
        try:
            return self.call("nvmlDeviceGetHandleByIndex", index)
        except ToolUnavailable as exc:
            message = f"{_NO_GPU}: GPU {index} is not visible to NVML: {exc.message}"
            raise ToolUnavailable(message, where="nvml") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_facts(index: int = 0, *, use_torch: bool = True) -> GpuFacts:
    """Static facts of NVML GPU `index`. Raises ToolUnavailable without a driver/GPU.

    With use_torch, SM count and L2 size come from torch.cuda (which initialises
    CUDA in this process: pass use_torch=False in a parent that forks CUDA workers).
    """
    with Nvml() as nvml:
        h = nvml.handle(index)
        name = _text(nvml.call("nvmlDeviceGetName", h))
        uuid = _text(nvml.call("nvmlDeviceGetUUID", h))
        major, minor = nvml.call("nvmlDeviceGetCudaComputeCapability", h)
        cuda_ver = nvml.optional("nvmlSystemGetCudaDriverVersion")
        bus_bits = nvml.optional("nvmlDeviceGetMemoryBusWidth", h)
        sm_mhz = nvml.optional("nvmlDeviceGetMaxClockInfo", h, nvml.lib.NVML_CLOCK_SM)
        mem_mhz = nvml.optional("nvmlDeviceGetMaxClockInfo", h, nvml.lib.NVML_CLOCK_MEM)
        cores = nvml.optional("nvmlDeviceGetNumGpuCores", h)
        facts: dict[str, Any] = dict(
            name=name, uuid=uuid, driver_version=_text(nvml.call("nvmlSystemGetDriverVersion")),
            cuda_driver_version=f"{cuda_ver // 1000}.{cuda_ver % 1000 // 10}" if cuda_ver else None,
            compute_capability=(int(major), int(minor)),
            memory_total_bytes=int(nvml.call("nvmlDeviceGetMemoryInfo", h).total),
            memory_bus_width_bits=int(bus_bits) if bus_bits else None,
            max_sm_clock_mhz=int(sm_mhz) if sm_mhz else None, max_mem_clock_mhz=int(mem_mhz) if mem_mhz else None,
        )
    sheet = _datasheet_for(name)
    sm_count, l2_bytes = _torch_sm_and_l2(uuid, index) if use_torch else (None, None)
    lanes = _FP32_LANES_PER_SM.get(facts["compute_capability"])
    if sm_count is None and cores and lanes:
        sm_count = int(cores) // lanes
    if sm_count is None and sheet:
        sm_count = sheet.sm_count
    if l2_bytes is None and sheet:
        l2_bytes = sheet.l2_bytes
    bw, bw_source = _dram_peak(facts["max_mem_clock_mhz"], facts["memory_bus_width_bits"], sheet)
    peaks = sheet.peaks if sheet else _derived_peaks(sm_count, lanes, facts["max_sm_clock_mhz"])
    return GpuFacts(**facts, sm_count=sm_count, peak_dram_bandwidth_gbps=bw, peak_dram_bandwidth_source=bw_source,
                    l2_bytes=l2_bytes, peak_flops=peaks, index=index)


def _dram_peak(mem_mhz: int | None, bus_bits: int | None, sheet: _Datasheet | None) -> tuple[float | None, str]:
    """2 transfers per clock (HBM/GDDR as NVML reports the clock) x bus width in bytes."""
    if mem_mhz and bus_bits:
        return round(2 * mem_mhz * 1e6 * bus_bits / 8 / 1e9, 1), "derived: 2 x NVML max memory clock x bus width"
    if sheet:
        return sheet.dram_gbps, sheet.peaks.source
    return None, "unknown"


def _derived_peaks(sm_count: int | None, lanes: int | None, sm_mhz: int | None) -> PeakFlops:
    if not (sm_count and lanes and sm_mhz):
        return PeakFlops("unknown")
    fp32 = round(sm_count * lanes * 2 * sm_mhz * 1e6 / 1e12, 1)
    return PeakFlops("derived: SMs x FP32 lanes x 2 x max SM clock (GPU not in the datasheet table)", fp32_tflops=fp32)


def _torch_sm_and_l2(uuid: str, index: int) -> tuple[int | None, int | None]:
    """SM count and L2 bytes of the torch device with this NVML UUID (indices differ under CUDA_VISIBLE_DEVICES)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None, None
        props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    except Exception as exc:  # torch's CUDA init can fail in many ways; facts then come from the table
        log.info("torch_device_query_failed", error=str(exc))
        return None, None
    want = uuid.removeprefix("GPU-").lower()
    match = next((p for p in props if str(getattr(p, "uuid", "")).lower() == want), None)
    no_uuids = not any(hasattr(p, "uuid") for p in props)  # old torch: fall back to the same index
    if match is None and no_uuids and not os.environ.get("CUDA_VISIBLE_DEVICES") and index < len(props):
        match = props[index]
    if match is None:
        return None, None
    return int(match.multi_processor_count), getattr(match, "L2_cache_size", None)


def clock_snapshot(index: int = 0) -> ClockSnapshot:
    """Current clocks, temperature, power and throttle reasons of NVML GPU `index`."""
    with Nvml() as nvml:
        h = nvml.handle(index)
        lib = nvml.lib
        mask = nvml.optional("nvmlDeviceGetCurrentClocksEventReasons", h)
        if mask is None:
            mask = nvml.optional("nvmlDeviceGetCurrentClocksThrottleReasons", h)
        power_mw = nvml.optional("nvmlDeviceGetPowerUsage", h)
        limit_mw = nvml.optional("nvmlDeviceGetEnforcedPowerLimit", h)
        return ClockSnapshot(
            index=index,
            sm_clock_mhz=nvml.optional("nvmlDeviceGetClockInfo", h, lib.NVML_CLOCK_SM),
            mem_clock_mhz=nvml.optional("nvmlDeviceGetClockInfo", h, lib.NVML_CLOCK_MEM),
            temperature_c=nvml.optional("nvmlDeviceGetTemperature", h, lib.NVML_TEMPERATURE_GPU),
            power_w=power_mw / 1000.0 if power_mw is not None else None,
            power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
            throttle_reasons=decode_throttle_reasons(int(mask)) if mask is not None else (),
            timestamp_s=time.time(),
        )


def throttle_warning(before: ClockSnapshot, after: ClockSnapshot, *, max_drop: float = 0.10) -> str | None:
    """A message if the SM clock fell by more than `max_drop` or heat/power throttling showed up; else None."""
    problems: list[str] = []
    was, now = before.sm_clock_mhz, after.sm_clock_mhz
    if was and now is not None and now < was * (1 - max_drop):
        problems.append(f"SM clock dropped {100.0 * (was - now) / was:.0f}% ({was} -> {now} MHz)")
    slow_after = [r for r in after.throttle_reasons if r in SLOWDOWN_REASONS]
    new = [r for r in slow_after if r not in before.throttle_reasons]
    held = [r for r in slow_after if r in before.throttle_reasons]
    if new:
        problems.append(f"throttling appeared: {', '.join(new)}")
    if held:
        problems.append(f"throttling throughout: {', '.join(held)}")
    if not problems:
        return None
    temp = f", {after.temperature_c} C" if after.temperature_c is not None else ""
    power = f", {after.power_w:.0f}/{after.power_limit_w:.0f} W" if after.power_w and after.power_limit_w else ""
    return f"GPU {after.index} clocks were not steady during the measurement{temp}{power}: " + "; ".join(problems)


# -- `kernelwright env` -----------------------------------------------------------------------

def _tool_version(exe: str, timeout_s: float = 30.0) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=timeout_s, env=scrubbed_env())
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    for line in lines:
        if "release" in line or line.startswith("Version"):
            return line
    return lines[-1] if lines else f"unknown (exit {out.returncode})"


def _find_nvcc() -> str | None:
    for exe in (shutil.which("nvcc"), os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")):
        if exe and os.access(exe, os.X_OK):
            return exe
    return None


def _guarded(part: Any) -> dict[str, Any]:
    """Run one part of the report; any failure becomes {"error": reason}."""
    try:
        return part()
    except KernelwrightError as exc:
        return {"error": exc.message}
    except Exception as exc:  # the report must never raise: every part reports its own failure
        return {"error": f"{type(exc).__name__}: {exc}"}


def _torch_part() -> dict[str, Any]:
    import torch

    return {"version": torch.__version__, "cuda_runtime": torch.version.cuda,
            "cuda_available": bool(torch.cuda.is_available())}


def _tool_part(exe: str | None) -> dict[str, Any]:
    if exe is None:
        return {"path": None, "version": "not found"}
    return {"path": exe, "version": _tool_version(exe)}


def environment_report(index: int = 0) -> dict[str, Any]:
    """Everything `kernelwright env` prints, as JSON-safe data. Never raises."""
    ncu_exe = _guarded(lambda: {"path": find_ncu()}).get("path")
    return {
        "gpu": _guarded(lambda: gpu_facts(index).to_dict()),
        "clocks": _guarded(lambda: clock_snapshot(index).to_dict()),
        "torch": _guarded(_torch_part),
        "nvcc": _guarded(lambda: _tool_part(_find_nvcc())),
        "ncu": _guarded(lambda: {"path": ncu_exe, "version": ncu_version(ncu_exe) or "unknown"} if ncu_exe
                        else {"path": None, "version": "not found"}),
        "python": {"version": sys.version.split()[0], "executable": sys.executable},
        "platform": _guarded(lambda: {"system": platform.platform(), "machine": platform.machine()}),
    }
