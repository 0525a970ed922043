"""GPU facts (NVML), clock snapshots, ncu output parsing, the roofline and the ncu runner.

CPU tests parse recorded `ncu --csv --page raw` output (tests/data/ncu, captured with
ncu 2025.3.1 on an H100, trimmed to the columns kernelwright reads) and drive a fake
`ncu` script; the `gpu` tests profile a real vector-add on a CUDA machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch

from kernelwright.tools.errors import ToolTimeout, ToolUnavailable
from kernelwright.tools.measure import gpu_info, ncu
from kernelwright.tools.measure.gpu_info import ClockSnapshot, PeakFlops, decode_throttle_reasons, throttle_warning
from kernelwright.tools.measure.ncu import DEFAULT_METRICS, ProfileResult, ProfileUnavailable, parse_ncu_output
from kernelwright.tools.measure.roofline import compute_roofline
from support.ncu import NCU_DATA, fixture_text, h100_facts

HAS_CUDA = torch.cuda.is_available()
# The first vec_add launch in vadd_prelude.csv (ncu 2025.3.1, H100, 1 << 22 floats).
VADD = {"duration_ns": 18624, "dram_read_bytes": 33559040, "dram_write_bytes": 6545408, "occupancy_pct": 79.19,
        "l2_hit_pct": 35.47}


# -- parsing recorded ncu output -----------------------------------------------------------------

def test_parses_csv_after_program_output_and_prof_lines():
    text = fixture_text("vadd_prelude.csv")
    assert text.startswith("==PROF== Connected")  # the program's stdout and ncu's lines come first
    result = parse_ncu_output(text, facts=h100_facts(), ncu_version="2025.3.1.0")
    assert isinstance(result, ProfileResult) and result.available
    names = [k.short_name for k in result.kernels]
    assert names == ["vec_add", "vec_add", "vec_add", "fma_loop", "half_fma"]
    vadd = result.kernels[0]
    assert vadd.name == "vec_add(const float *, const float *, float *, int)"
    assert vadd.duration_ns == pytest.approx(VADD["duration_ns"])
    assert vadd.dram_read_bytes == VADD["dram_read_bytes"] and vadd.dram_write_bytes == VADD["dram_write_bytes"]
    assert vadd.dram_bytes == VADD["dram_read_bytes"] + VADD["dram_write_bytes"]
    assert vadd.flops == 4194304  # one FADD per element, 1 << 22 elements
    assert vadd.grid == (16384, 1, 1) and vadd.block == (256, 1, 1)
    assert vadd.registers_per_thread == 16 and vadd.shared_mem_bytes == 0
    assert vadd.achieved_occupancy_pct == pytest.approx(VADD["occupancy_pct"])
    assert vadd.l1_hit_pct == pytest.approx(0.0) and vadd.l2_hit_pct == pytest.approx(VADD["l2_hit_pct"])
    assert vadd.top_stalls == (("long_scoreboard", 77.32), ("wait", 6.56), ("short_scoreboard", 6.18))
    assert [v for _, v in vadd.top_stalls] == sorted((v for _, v in vadd.top_stalls), reverse=True)
    assert vadd.roofline.bound == "memory"
    assert vadd.missing_metrics == ()
    assert result.total_duration_ns == pytest.approx(sum(k.duration_ns for k in result.kernels))
    json.dumps(result.to_dict())  # JSON-safe


def test_bound_classification_on_recorded_kernels():
    result = parse_ncu_output(fixture_text("vadd_prelude.csv"), facts=h100_facts())
    by_name = {k.short_name: k for k in result.kernels}
    assert by_name["fma_loop"].roofline.bound == "compute"  # 64 dependent FMAs per element
    assert by_name["fma_loop"].flops_by_kind[1] == ("fp32", pytest.approx(2 * 64 * (1 << 22), rel=0.01))
    assert by_name["half_fma"].roofline.bound == "latency"  # dependent HFMA chain, low throughput everywhere
    assert dict(by_name["half_fma"].flops_by_kind)["fp16"] > 0


def test_summary_names_kernel_bound_and_stall():
    result = parse_ncu_output(fixture_text("vadd_prelude.csv"), facts=h100_facts())
    text = result.summary()
    first = text.splitlines()[0]
    assert first.startswith("fma_loop") or first.startswith("vec_add")  # costliest kernel group first
    assert "vec_add" in text and "(x3 launches)" in text
    assert "memory-bound at" in text and "of DRAM bandwidth" in text and "TB/s of 3.35" in text
    assert "top stalls long_scoreboard" in text and "->" in text
    assert "datasheet" in text  # says where the peaks come from


def test_tensor_core_flops_are_counted_per_dtype():
    result = parse_ncu_output(fixture_text("gemm_tensor_cores.csv"), facts=h100_facts())
    gemms = {k.short_name: dict(k.flops_by_kind) for k in result.kernels if "gemm" in k.name or "nvjet" in k.name}
    assert len(gemms) == 3
    two_n_cubed = 2 * 1024**3
    kinds = {kind for flops in gemms.values() for kind, v in flops.items() if v == two_n_cubed}
    assert kinds == {"tensor_fp16", "tensor_bf16", "tensor_tf32"}


def test_missing_metrics_become_none():
    result = parse_ncu_output(fixture_text("missing_metrics.csv"), facts=h100_facts())
    assert isinstance(result, ProfileResult)
    k = result.kernels[0]
    assert k.l1_hit_pct is None and k.dram_write_bytes is None and k.top_stalls == ()
    assert k.dram_read_bytes == 33560064 and k.dram_bytes == 33560064  # reads only: the write metric is absent
    assert k.dram_throughput_pct is not None  # taken from the older dram__throughput spelling
    assert "l1tex__t_sector_hit_rate.pct" in k.missing_metrics and "dram__bytes_write.sum" in k.missing_metrics
    assert "vec_add" in result.summary()


@pytest.mark.parametrize("name, needle", [("err_nvgpuctrperm.txt", "ERR_NVGPUCTRPERM"),
                                          ("library_not_loaded.txt", "LibraryNotLoaded")])
def test_counter_errors_are_profile_unavailable(name, needle):
    result = parse_ncu_output(fixture_text(name), returncode=1)
    assert isinstance(result, ProfileUnavailable) and not result.available
    assert needle in result.reason
    assert result.summary() == f"profiler unavailable: {result.reason}"
    json.dumps(result.to_dict())


def test_no_matching_kernels_is_an_empty_result():
    result = parse_ncu_output(fixture_text("no_kernels_matched.txt"), returncode=0)  # --kernel-name regex:nomatch
    assert isinstance(result, ProfileResult) and result.kernels == ()
    assert "==WARNING== No kernels were profiled." in result.messages
    text = result.summary()
    assert "no kernel launches" in text and "available kernels: fma_loop, half_fma, vec_add" in text


def test_failed_program_without_rows_is_unavailable():
    result = parse_ncu_output("segfault somewhere\n", returncode=139)
    assert isinstance(result, ProfileUnavailable) and "139" in result.reason


def test_parse_number_and_units():
    assert ncu.parse_number("33,559,296", "byte") == 33559296
    assert ncu.parse_number("18.5", "usecond") == pytest.approx(18500)
    assert ncu.parse_number("1.5", "Mbyte") == pytest.approx(1.5e6)
    assert ncu.parse_number("n/a") is None and ncu.parse_number("") is None


def test_short_kernel_name():
    assert ncu.short_kernel_name("vec_add(const float *, int)") == "vec_add"
    assert ncu.short_kernel_name("void ns::k<float, (int)4>(float *)") == "ns::k<float, (int)4>"


# -- roofline ------------------------------------------------------------------------------------

def test_roofline_math_memory_bound():
    facts = h100_facts(peak_dram_bandwidth_gbps=2000.0, peak_flops=PeakFlops("datasheet: test", fp32_tflops=50.0))
    r = compute_roofline({"fp32": 1e9}, 1.5e9, 1e6, facts=facts)  # 1 GFLOP and 1.5 GB in 1 ms
    assert r.achieved_gflops == pytest.approx(1000.0)
    assert r.achieved_dram_gbps == pytest.approx(1500.0)
    assert r.arithmetic_intensity_flop_per_byte == pytest.approx(1 / 1.5)
    assert r.pct_of_peak_bandwidth == pytest.approx(75.0)
    assert r.pct_of_peak_flops == pytest.approx(2.0)
    assert r.bound == "memory" and r.peak_flops_source == "datasheet: test"


def test_roofline_mixed_kinds_latency_and_compute():
    facts = h100_facts(peak_flops=PeakFlops("datasheet: test", fp32_tflops=50.0, bf16_tensor_tflops=1000.0))
    r = compute_roofline({"fp32": 1e9, "tensor_bf16": 1e9}, 1e6, 1e6, facts=facts)
    # each kind at its own peak would take 20 us + 1 us for 2 GFLOP
    assert r.peak_gflops == pytest.approx(2e9 / 21e-6 / 1e9)
    assert r.bound == "latency"  # 2 TFLOP/s (2% of that peak) and ~0% of bandwidth: nothing saturated
    assert compute_roofline({"fp32": 1e9}, 1e6, 1e6, facts=facts, sm_throughput_pct=85.0).bound == "compute"
    assert compute_roofline({"fp32": 1e9}, 1e6, 1e6, facts=facts, memory_throughput_pct=90.0).bound == "memory"
    no_peak = compute_roofline({"fp64": 1e9}, 1e6, 1e6, facts=facts)  # no fp64 peak known
    assert no_peak.pct_of_peak_flops is None and no_peak.achieved_gflops == pytest.approx(1000.0)
    bare = compute_roofline({}, None, None)
    assert bare.bound == "unknown" and bare.peak_flops_source == "unknown"


# -- clocks and throttling -----------------------------------------------------------------------

def snap(sm: int, reasons: tuple[str, ...] = ()) -> ClockSnapshot:
    return ClockSnapshot(index=0, sm_clock_mhz=sm, mem_clock_mhz=2619, temperature_c=60, power_w=300.0,
                         power_limit_w=700.0, throttle_reasons=reasons, timestamp_s=time.time())


def test_throttle_warning():
    assert throttle_warning(snap(1980), snap(1980)) is None
    assert throttle_warning(snap(1980), snap(1900)) is None  # 4% is within noise
    assert throttle_warning(snap(345, ("gpu_idle",)), snap(1980)) is None  # clocks rising is fine
    msg = throttle_warning(snap(1980), snap(1500))
    assert msg is not None and "dropped 24%" in msg and "1980 -> 1500" in msg
    msg = throttle_warning(snap(1980), snap(1980, ("hw_thermal_slowdown",)))
    assert msg is not None and "throttling appeared: hw_thermal_slowdown" in msg
    held = throttle_warning(snap(1700, ("sw_power_cap",)), snap(1700, ("sw_power_cap",)))
    assert held is not None and "throughout: sw_power_cap" in held
    json.dumps(snap(1).to_dict())


def test_decode_throttle_reasons():
    assert decode_throttle_reasons(0) == ()
    assert decode_throttle_reasons(0x1 | 0x40) == ("gpu_idle", "hw_thermal_slowdown")
    assert decode_throttle_reasons(0x4 | 0x10000)[-1] == "unknown_0x10000"


# -- NVML ----------------------------------------------------------------------------------------

class FakeNvml(types.ModuleType):
    """Enough of pynvml for GpuFacts/ClockSnapshot, with call counting."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    class NVMLError(Exception):
        pass

    def __init__(self, fail_init: bool = False, fail_handle: bool = False):
        super().__init__("pynvml")
        self.fail_init, self.fail_handle, self.inits, self.shutdowns = fail_init, fail_handle, 0, 0

    def nvmlInit(self):
        self.inits += 1
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, index):
        if self.fail_handle:
            raise self.NVMLError("Invalid Argument")
        return object()

    def nvmlDeviceGetName(self, h): return "NVIDIA H100 80GB HBM3"
    def nvmlDeviceGetUUID(self, h): return "GPU-06166ab7-a17a-ad70-1112-ec513a6eaeb0"
    def nvmlDeviceGetCudaComputeCapability(self, h): return (9, 0)
    def nvmlSystemGetCudaDriverVersion(self): return 13000
    def nvmlSystemGetDriverVersion(self): return "580.159.04"
    def nvmlDeviceGetMemoryBusWidth(self, h): return 5120
    def nvmlDeviceGetMaxClockInfo(self, h, kind): return {1: 1980, 2: 2619}[kind]
    def nvmlDeviceGetClockInfo(self, h, kind): return {1: 1755, 2: 2619}[kind]
    def nvmlDeviceGetNumGpuCores(self, h): return 16896
    def nvmlDeviceGetMemoryInfo(self, h): return types.SimpleNamespace(total=85520809984)
    def nvmlDeviceGetCurrentClocksEventReasons(self, h): return 0x41
    def nvmlDeviceGetPowerUsage(self, h): return 71152
    def nvmlDeviceGetEnforcedPowerLimit(self, h): return 700000

    def nvmlDeviceGetTemperature(self, h, sensor):
        raise self.NVMLError("Not Supported")  # optional queries may fail: the field becomes None


def test_gpu_facts_from_nvml(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    facts = gpu_info.gpu_facts(0, use_torch=False)
    assert facts.compute_capability == (9, 0) and facts.cuda_driver_version == "13.0"
    assert facts.sm_count == 132  # 16896 CUDA cores / 128 FP32 lanes per SM
    assert facts.peak_dram_bandwidth_gbps == pytest.approx(3352.3)  # 2 x 2619 MHz x 640 bytes
    assert facts.peak_flops.source.startswith("datasheet: NVIDIA H100 SXM5")
    assert facts.peak_flops.bf16_tensor_tflops == pytest.approx(989.4)
    assert facts.l2_bytes == 50 * 1024 * 1024
    assert fake.inits == fake.shutdowns == 1
    json.dumps(facts.to_dict())
    clocks = gpu_info.clock_snapshot(0)
    assert clocks.sm_clock_mhz == 1755 and clocks.power_w == pytest.approx(71.152)
    assert clocks.throttle_reasons == ("gpu_idle", "hw_thermal_slowdown") and clocks.temperature_c is None
    assert fake.inits == fake.shutdowns == 2


def test_nvml_failures_raise_tool_unavailable_and_stay_balanced(monkeypatch):
    fake = FakeNvml(fail_init=True)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with pytest.raises(ToolUnavailable, match="NVML could not be initialised: Driver Not Loaded"):
        gpu_info.gpu_facts()
    assert fake.shutdowns == 0  # nothing to shut down after a failed init
    fake = FakeNvml(fail_handle=True)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with pytest.raises(ToolUnavailable, match="GPU 3 is not visible"):
        gpu_info.clock_snapshot(3)
    assert fake.inits == fake.shutdowns == 1


@pytest.mark.skipif(HAS_CUDA, reason="checks the GPU-less path")
def test_gpu_facts_without_gpu_raises_tool_unavailable():
    with pytest.raises(ToolUnavailable, match="no NVIDIA driver/GPU visible"):
        gpu_info.gpu_facts()


def test_environment_report_never_raises(monkeypatch):
    report = gpu_info.environment_report()
    assert set(report) >= {"gpu", "clocks", "torch", "nvcc", "ncu", "python", "platform"}
    assert report["torch"]["version"] == torch.__version__
    json.dumps(report)
    if not HAS_CUDA:
        assert "no NVIDIA driver/GPU visible" in report["gpu"]["error"]

    def boom(index: int = 0):
        raise RuntimeError("sensor on fire")

    monkeypatch.setattr(gpu_info, "clock_snapshot", boom)
    assert gpu_info.environment_report()["clocks"] == {"error": "RuntimeError: sensor on fire"}


# -- running ncu (a fake ncu script stands in on CPU machines) ------------------------------------

FAKE_NCU = """#!{python}
import json, os, subprocess, sys, time
args = sys.argv[1:]
if args == ["--version"]:
    print("NVIDIA (R) Nsight Compute Command Line Profiler")
    print("Version 2025.3.1.0 (build 36398880) (public-release)")
    sys.exit(0)
with open(os.environ["FAKE_NCU_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "env": sorted(os.environ)}}) + "\\n")
mode = os.environ.get("FAKE_NCU_MODE", "cat")
if mode == "sleep":
    child = subprocess.Popen(["sleep", "60"])  # stands in for the profiled program
    open(os.environ["FAKE_NCU_CHILD"], "w").write(str(child.pid))
    time.sleep(60)
metrics = args[args.index("--metrics") + 1].split(",")
if mode == "unknown-metric" and "sm__ops_path_tensor_src_fp8.sum" in metrics:
    sys.stdout.write(open(os.environ["FAKE_NCU_UNKNOWN"]).read())
    sys.exit(1)
sys.stdout.write(open(os.environ["FAKE_NCU_OUTPUT"]).read())
"""


@pytest.fixture
def fake_ncu(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "ncu"
    exe.write_text(FAKE_NCU.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    env = {"PATH": os.environ.get("PATH", ""), "FAKE_NCU_LOG": str(log),
           "FAKE_NCU_OUTPUT": str(NCU_DATA / "vadd_prelude.csv"),
           "FAKE_NCU_UNKNOWN": str(NCU_DATA / "unknown_metric.txt"),
           "MY_API_TOKEN": "do-not-leak"}

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()]

    return types.SimpleNamespace(dir=str(bin_dir), env=env, calls=calls, tmp=tmp_path)


def test_profile_unavailable_when_ncu_missing(tmp_path):
    result = ncu.profile_command(["./vadd"], kernel_regex=None, timeout_s=5, env=None, search_path=str(tmp_path))
    assert isinstance(result, ProfileUnavailable) and result.reason.startswith("ncu not found")
    assert result.summary().startswith("profiler unavailable: ncu not found")


def test_profile_command_runs_ncu_and_parses(fake_ncu):
    result = ncu.profile_command(["./vadd", "--n", "1024"], kernel_regex="vec_add", timeout_s=30, env=fake_ncu.env,
                                 launch_skip=1, launch_count=2, facts=h100_facts(), search_path=fake_ncu.dir)
    assert isinstance(result, ProfileResult) and result.ncu_version == "2025.3.1.0"
    assert len(result.kernels) == 5 and result.kernels[0].roofline.peak_dram_gbps == pytest.approx(3352.3)
    (call,) = fake_ncu.calls()
    args = call["args"]
    assert args[:4] == ["--csv", "--page", "raw", "--print-units"]
    assert args[args.index("--kernel-name") + 1] == "regex:vec_add"
    assert args[args.index("--launch-skip") + 1] == "1" and args[args.index("--launch-count") + 1] == "2"
    assert args[args.index("--metrics") + 1].split(",") == list(DEFAULT_METRICS.names)
    assert args[-5:] == ["--target-processes", "all", "./vadd", "--n", "1024"]
    assert "MY_API_TOKEN" not in call["env"] and "FAKE_NCU_LOG" in call["env"]  # explicit, scrubbed env


def test_profile_command_retries_without_unknown_metrics(fake_ncu):
    env = dict(fake_ncu.env, FAKE_NCU_MODE="unknown-metric")
    result = ncu.profile_command(["./vadd"], kernel_regex=None, timeout_s=30, env=env, search_path=fake_ncu.dir)
    assert isinstance(result, ProfileResult) and len(result.kernels) == 5
    first, second = fake_ncu.calls()
    assert "sm__ops_path_tensor_src_fp8.sum" in first["args"][first["args"].index("--metrics") + 1]
    assert "sm__ops_path_tensor_src_fp8.sum" not in second["args"][second["args"].index("--metrics") + 1]


def test_profile_command_timeout_kills_process_group(fake_ncu):
    child_file = fake_ncu.tmp / "child.pid"
    env = dict(fake_ncu.env, FAKE_NCU_MODE="sleep", FAKE_NCU_CHILD=str(child_file))
    started = time.monotonic()
    with pytest.raises(ToolTimeout) as info:
        ncu.profile_command(["./vadd"], kernel_regex=None, timeout_s=2, env=env, search_path=fake_ncu.dir)
    assert time.monotonic() - started < 20 and info.value.timeout_s == 2
    pid = int(child_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid), "the profiled program outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


# -- on a CUDA machine ---------------------------------------------------------------------------

VADD_CU = r"""
#include <cstdio>
#include <cuda_runtime.h>
__global__ void vec_add(const float* a, const float* b, float* c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
int main() {
  const int n = 1 << 22;
  float *a, *b, *c;
  cudaMalloc(&a, n * 4); cudaMalloc(&b, n * 4); cudaMalloc(&c, n * 4);
  cudaMemset(a, 0, n * 4); cudaMemset(b, 0, n * 4);
  for (int r = 0; r < 4; ++r) vec_add<<<(n + 255) / 256, 256>>>(a, b, c, n);
  cudaError_t e = cudaDeviceSynchronize();
  printf("vec_add: %s\n", cudaGetErrorString(e));
  return e == cudaSuccess ? 0 : 1;
}
"""


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_gpu_facts_and_clocks_on_gpu():
    facts = gpu_info.gpu_facts()
    assert facts.name and len(facts.compute_capability) == 2 and facts.compute_capability[0] >= 5
    assert facts.sm_count and facts.sm_count > 0 and facts.memory_total_bytes > 0
    assert gpu_info.gpu_facts(use_torch=False).sm_count == facts.sm_count  # NVML cores / lanes, or the table
    before = gpu_info.clock_snapshot()
    after = gpu_info.clock_snapshot()
    assert before.sm_clock_mhz is not None
    assert throttle_warning(before, after) is None or isinstance(throttle_warning(before, after), str)
    report = gpu_info.environment_report()
    assert report["gpu"]["name"] == facts.name and "error" not in report["clocks"]


@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_profile_real_vector_add(tmp_path):
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    if not os.access(nvcc, os.X_OK):
        pytest.skip("nvcc not found")
    (tmp_path / "vadd.cu").write_text(VADD_CU)
    subprocess.run([nvcc, "-O2", "-o", str(tmp_path / "vadd"), str(tmp_path / "vadd.cu")], check=True, timeout=300)
    result = ncu.profile_command([str(tmp_path / "vadd")], kernel_regex="vec_add", timeout_s=300, env=None,
                                 launch_skip=1, launch_count=2, facts=gpu_info.gpu_facts())
    if isinstance(result, ProfileUnavailable):  # virtualised GPUs can lack counters
        assert result.reason
        return
    assert len(result.kernels) == 2
    k = result.kernels[0]
    assert k.short_name == "vec_add" and k.duration_ns > 0 and k.dram_bytes > 0
    assert k.flops == pytest.approx(1 << 22) and k.grid == (16384, 1, 1)
    assert k.roofline.achieved_dram_gbps > 0 and k.roofline.bound in ("memory", "latency", "compute")
    assert "vec_add" in result.summary()


