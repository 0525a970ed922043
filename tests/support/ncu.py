"""Recorded Nsight Compute output (tests/data/ncu) and the H100's facts it was captured on.

The ncu parser's tests and the report's tests both read these, so they live here, not in a test module.
"""

from __future__ import annotations

from dataclasses import replace

from kernelwright.tools.measure.gpu_info import GpuFacts, PeakFlops
from support.paths import DATA

NCU_DATA = DATA / "ncu"


def fixture_text(name: str) -> str:
    return (NCU_DATA / name).read_text()


def h100_facts(**overrides) -> GpuFacts:
    peaks = PeakFlops("datasheet: test", fp64_tflops=33.5, fp32_tflops=66.9, fp16_tflops=133.8,
                      tf32_tensor_tflops=494.7, bf16_tensor_tflops=989.4, fp16_tensor_tflops=989.4)
    facts = GpuFacts(name="NVIDIA H100 80GB HBM3", uuid="GPU-test", driver_version="580.159.04",
                     cuda_driver_version="13.0", compute_capability=(9, 0), sm_count=132,
                     memory_total_bytes=85520809984, memory_bus_width_bits=5120, max_sm_clock_mhz=1980,
                     max_mem_clock_mhz=2619, peak_dram_bandwidth_gbps=3352.3,
                     peak_dram_bandwidth_source="derived: test", l2_bytes=50 * 1024 * 1024, peak_flops=peaks)
    return replace(facts, **overrides)
