"""The roofline floor of a problem (tools.measure.problem_floor): bytes and FLOPs counted on CPU, the floor's
arithmetic with injected bandwidths (the GPU measurement cannot run here), and the harness's report fields."""

from __future__ import annotations

import pytest
import torch

from kernelwright.tools.harness.evaluate import Evaluator, roofline_fields
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.measure.gpu_info import datasheet_peaks
from kernelwright.tools.measure.problem_floor import (
    ProblemFloor,
    ProblemWork,
    compute_peak,
    count_work,
    problem_floor,
)
from kernelwright.tools.verify.floors import WriteBandwidth

H100_SXM = "NVIDIA H100 80GB HBM3"  # the name torch and NVML give an H100 SXM


class MatMul(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


class Relu(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


class InPlaceRelu(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.relu_()  # returns its input: nothing new is written out


def test_a_matmul_moves_its_operands_and_result_once_and_does_2mnk_flops() -> None:
    m, k, n = 64, 32, 16
    work = count_work(MatMul(), [torch.randn(m, k), torch.randn(k, n)])
    assert work.input_bytes == (64 * 32 + 32 * 16) * 4 == 10240
    assert work.output_bytes == 64 * 16 * 4 == 4096
    assert work.parameter_bytes == 0
    assert work.flops == 2 * 64 * 32 * 16 == 65536
    assert work.dtype == "float32" and work.flop_note == ""


def test_a_linear_layer_reads_its_weights_once() -> None:
    layer = torch.nn.Linear(64, 32).to(torch.bfloat16)
    work = count_work(layer, [torch.randn(8, 64, dtype=torch.bfloat16)])
    assert work.parameter_bytes == (32 * 64 + 32) * 2 == 4160
    assert work.input_bytes == 8 * 64 * 2 and work.output_bytes == 8 * 32 * 2
    assert work.flops == 2 * 8 * 64 * 32 and work.dtype == "bfloat16"


def test_an_elementwise_problem_counts_bytes_and_no_flops() -> None:
    work = count_work(Relu(), [torch.randn(128, 256)])
    assert (work.input_bytes, work.output_bytes, work.bytes_moved) == (131072, 131072, 262144)
    assert work.flops == 0 and "FLOPs not counted" in work.flop_note
    in_place = count_work(InPlaceRelu(), [torch.randn(128, 256)])
    assert in_place.output_bytes == 0 and in_place.bytes_moved == 131072  # the output is the input returned


def test_a_problem_whose_flops_cannot_be_counted_gets_no_flop_floor() -> None:
    class Opaque(torch.nn.Module):
        calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            Opaque.calls += 1
            if Opaque.calls == 1:
                raise RuntimeError("this op has no FLOP formula")
            return x * 2

    work = count_work(Opaque(), [torch.randn(4, 4)])
    assert work.flops is None and "FLOP counting failed" in work.flop_note and work.output_bytes == 64
    floor = problem_floor(work, 1000.0, datasheet_peaks(H100_SXM))
    assert floor.compute_ms is None and floor.bound == "memory" and "no FLOP floor" in floor.note


def test_the_peak_rate_follows_the_dtype_and_what_the_judge_allows() -> None:
    peaks = datasheet_peaks(H100_SXM)
    assert peaks is not None and peaks.source.startswith("datasheet: NVIDIA H100 SXM5")
    # strict fp32: 3xTF32 on tensor cores (494.7 / 3 = 164.9) beats fp32 FMA (66.9)
    rate, name = compute_peak(peaks, "float32", tf32_allowed=False) or (0.0, "")
    assert rate == pytest.approx(164.9) and name == "3xTF32 tensor cores"
    assert compute_peak(peaks, "float32", tf32_allowed=True) == (494.7, "tf32 tensor cores")
    assert compute_peak(peaks, "bfloat16", tf32_allowed=False) == (989.4, "bf16 tensor cores")
    assert compute_peak(peaks, "int8", tf32_allowed=False) is None
    a100 = datasheet_peaks("NVIDIA A100-SXM4-80GB")
    assert compute_peak(a100, "float32", tf32_allowed=False) == (156.0 / 3, "3xTF32 tensor cores")


def test_a_large_matmul_is_compute_bound_and_an_elementwise_op_memory_bound_on_an_h100() -> None:
    peaks = datasheet_peaks(H100_SXM)
    n = 4096
    gemm = ProblemWork(2 * n * n * 4, n * n * 4, 0, 2.0 * n**3, "float32")
    floor = problem_floor(gemm, 3000.0, peaks)  # 3000 GB/s: an injected copy bandwidth
    assert floor.memory_ms == pytest.approx(3 * n * n * 4 / 3000e9 * 1e3)  # 0.0671 ms
    assert floor.compute_ms == pytest.approx(2.0 * n**3 / 164.9e12 * 1e3)  # 0.8334 ms
    assert floor.bound == "compute" and floor.floor_ms == floor.compute_ms and floor.peak_rate == "3xTF32 tensor cores"
    relu = ProblemWork(1 << 28, 1 << 28, 0, 0.0, "float32")
    floor = problem_floor(relu, 3000.0, peaks)
    assert floor.bound == "memory" and floor.floor_ms == pytest.approx(2 * (1 << 28) / 3000e9 * 1e3)
    assert floor.compute_ms == 0.0


def test_an_unknown_card_gets_only_the_memory_floor_and_says_so() -> None:
    assert datasheet_peaks("Some Future GPU") is None
    gemm = ProblemWork(1 << 20, 1 << 20, 0, 1e12, "float32")
    floor = problem_floor(gemm, 2000.0, None, card="Some Future GPU")
    assert floor.bound == "memory" and floor.compute_ms is None and floor.peak_tflops is None
    assert floor.note == "unknown card 'Some Future GPU': no FLOP floor"
    assert floor.floor_ms == pytest.approx(2 * (1 << 20) / 2000e9 * 1e3)


def test_the_report_records_the_timed_median_over_the_roofline_floor() -> None:
    floor = problem_floor(ProblemWork(1 << 28, 1 << 28, 0, 0.0, "float32"), 2000.0, datasheet_peaks(H100_SXM))
    fields = roofline_fields(floor, median_ms=2 * floor.floor_ms)
    assert fields["floor_ratio"] == pytest.approx(2.0) and fields["roofline_bound"] == "memory"
    assert fields["roofline"]["copy_gbps"] == 2000.0 and fields["roofline_ms"] == floor.floor_ms
    assert ProblemWork.from_dict(ProblemWork(1, 2, 3, None, "float16", "x").to_dict()).flops is None


def _evaluator_with(bandwidth: WriteBandwidth, roof: ProblemFloor) -> Evaluator:
    """An Evaluator whose card measurements are injected (no workers: only the floor check runs)."""
    ev = Evaluator.__new__(Evaluator)
    ev._bandwidth, ev._roofline = bandwidth, roof
    return ev


def test_the_harness_adds_the_roofline_to_the_floor_and_still_rejects_impossible_timings() -> None:
    bandwidth = WriteBandwidth(gbps=1000.0, l2_bytes=0, probe_bytes=1 << 30)
    roof = problem_floor(ProblemWork(1 << 26, 1 << 26, 0, 0.0, "float32"), 2000.0, datasheet_peaks(H100_SXM))
    ev = _evaluator_with(bandwidth, roof)
    honest = EvalReport(problem="p.py", candidate="c.py", status="passed")
    ev._check_floor(honest, 1 << 26, 3 * roof.floor_ms)
    assert honest.status == "passed" and honest.floor is not None
    assert {"output_bytes", "floor_ms", "write_gbps", "l2_bytes", "median_ms"} <= set(honest.floor)  # kept keys
    assert honest.floor["floor_ratio"] == pytest.approx(3.0) and honest.floor["roofline_bound"] == "memory"
    cheat = EvalReport(problem="p.py", candidate="c.py", status="passed")
    ev._check_floor(cheat, 1 << 26, 1e-6)
    assert (cheat.status, cheat.reason) == ("rejected", "below_physical_floor")
    assert cheat.floor is not None and "floor_ratio" not in cheat.floor
