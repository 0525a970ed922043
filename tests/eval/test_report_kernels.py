"""The run report's list of the winner's GPU kernels (each with its class and share of GPU time) and its roofline
line, from the harness's report; HTML strings only (the layout tests in test_report_layout.py need Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

from kernelwright.eval.fakes.synthetic_run import synthetic_run
from kernelwright.eval.report.kernel_usage_table import kernel_usage_table, roofline_line
from kernelwright.eval.report.page import render_report
from kernelwright.eval.report.run_data import load_run

GEMM = "void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4>(Params)"
USAGE = {"custom": ["void my_epilogue<float>(float*)"], "library": [GEMM], "framework": [],
         "library_time_share": 0.8, "framework_time_share": 0.0, "reference_kernel_share": 0.0,
         "kernels": [{"name": GEMM, "cls": "library", "total_us": 80.0, "share": 0.8, "calls": 2},
                     {"name": "void my_epilogue<float>(float*)", "cls": "custom", "total_us": 20.0, "share": 0.2,
                      "calls": 1}]}
FLOOR = {"output_bytes": 4096, "floor_ms": 0.001, "write_gbps": 3000.0, "l2_bytes": 0, "median_ms": 0.1,
         "roofline_ms": 0.04, "roofline_bound": "compute", "floor_ratio": 2.5,
         "roofline": {"flops": 6.6e9, "peak_tflops": 164.9, "peak_rate": "3xTF32 tensor cores", "bytes_moved": 1e6,
                      "copy_gbps": 2900.0, "note": ""}}


def test_every_kernel_is_listed_with_its_class_time_share_and_launches() -> None:
    html = kernel_usage_table({"kernel_usage": USAGE})
    assert "80.0% library kernels" in html and "20.0% the candidate&#x27;s own kernels" in html
    assert ("<td>cutlass::Kernel2&lt;cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4&gt;</td>"
            "<td>library (cuBLAS, cuDNN, CUTLASS, ...)</td><td class=num>80.0</td><td class=num>80.0%</td>"
            "<td class=num>2</td>") in html
    assert html.index("cutlass::Kernel2") < html.index("my_epilogue")  # longest first, as recorded


def test_a_report_from_before_the_breakdown_lists_names_by_class_and_an_untraced_one_nothing() -> None:
    old = {k: v for k, v in USAGE.items() if k != "kernels"}
    html = kernel_usage_table({"kernel_usage": old})
    assert "my_epilogue&lt;float&gt;</td><td>the candidate&#x27;s own</td><td class=num></td>" in html
    assert kernel_usage_table({"kernel_usage": None}) == "" and kernel_usage_table({}) == ""


def test_the_roofline_line_says_how_far_from_the_floor_and_what_bounds_it() -> None:
    line = roofline_line({"floor": FLOOR})
    assert "timed at 2.50x its roofline floor of 40.0 us (compute-bound: 6.6 GFLOP at 164.9 TFLOP/s" in line
    assert roofline_line({"floor": {"output_bytes": 1, "floor_ms": 0.0}}) == ""  # a floor without the roofline


def test_the_winner_section_of_a_run_report_shows_them(tmp_path: Path) -> None:
    run_dir = synthetic_run(tmp_path / "run", n_candidates=12, generations=3)
    best = load_run(run_dir).best
    assert best is not None and best.folder is not None
    report = json.loads((best.folder / "report.json").read_text())
    (best.folder / "report.json").write_text(json.dumps({**report, "kernel_usage": USAGE, "floor": FLOOR}))
    page = render_report(load_run(run_dir, messages=False))
    winner = page[page.index('<section id="winner">'):page.index('<section id="lineage">')]
    assert "<h3>GPU kernels launched</h3>" in winner and "cutlass::Kernel2" in winner and "2.50x its roofline" in winner
