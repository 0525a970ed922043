"""The bench's table on a hand-made set of rows: every figure below is worked out by hand in the comments."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from kernelwright.eval.kernelbench.bench import SEARCH_NOT_RECORDED, rebuild_summary, write_summary
from kernelwright.eval.kernelbench.full_job import row_from_run
from kernelwright.eval.kernelbench.markdown import markdown
from kernelwright.eval.kernelbench.problems import BenchProblem
from kernelwright.eval.kernelbench.rows import ProblemRow, ResultStore
from kernelwright.eval.kernelbench.table import OVERALL, summarise
from kernelwright.eval.report.bench_page import NOT_VERIFIED, speedup_counts
from kernelwright.graphs.run import RunResult
from kernelwright.tools.run_folder import CandidateFolder


def _row(level: str, name: str, status: str, *, eager: float | None = None, compiled: float | None = None,
         wall_s: float = 10.0, gpu_s: float = 0.0, tokens: int = 0, cost: float = 0.0,
         failure: str | None = None) -> ProblemRow:
    reached = status in ("verified", "not_verified")
    return ProblemRow(f"{level}/{name}", level, f"/kb/{level}/{name}.py", "run", status,  # type: ignore[arg-type]
                      reason="" if status == "verified" else "why not", failure=failure,  # type: ignore[arg-type]
                      candidate=status != "failed", compiled=reached, verified=status == "verified",
                      speedup_vs_eager=eager, speedup_vs_compile=compiled, wall_s=wall_s, gpu_s=gpu_s, tokens=tokens,
                      cost_usd=cost, gpu_name="NVIDIA H100 80GB HBM3" if status == "verified" else None)


ROWS = [
    _row("level1", "1_a", "verified", eager=2.0, compiled=1.0, gpu_s=4.0, tokens=100, cost=0.5),
    _row("level1", "2_b", "verified", eager=0.8, compiled=0.4, gpu_s=2.0),
    _row("level1", "3_c", "not_verified", gpu_s=1.0),
    _row("level1", "4_d", "failed", failure="timeout", wall_s=100.0),
    _row("level2", "1_e", "verified", eager=4.0, compiled=2.0, tokens=50, cost=0.25),
    _row("level2", "2_f", "verified", eager=1.5, compiled=None),  # torch.compile's baseline did not time
]


def test_fast_p_counts_correct_problems_more_than_p_times_faster_over_all_problems() -> None:
    level1, level2, overall = summarise(ROWS).levels
    assert (level1.level, level2.level, overall.level) == ("level1", "level2", OVERALL)
    # level1: 4 problems, a (2.0x) and b (0.8x) correct: fast_0 2/4; fast_1 and fast_1.5 only a; fast_2 none
    # (2.0 is not more than 2, as KernelBench's fastp counts speedup > p)
    assert level1.fast_p_eager == {"fast_0": 0.5, "fast_1": 0.25, "fast_1.5": 0.25, "fast_2": 0.0}
    # level2: e 4.0x, f 1.5x: both > 1; only e > 1.5 and > 2
    assert level2.fast_p_eager == {"fast_0": 1.0, "fast_1": 1.0, "fast_1.5": 0.5, "fast_2": 0.5}
    # overall, 6 problems: correct a, b, e, f; > 1: a, e, f; > 1.5: a, e; > 2: e
    assert overall.fast_p_eager == pytest.approx({"fast_0": 4 / 6, "fast_1": 3 / 6, "fast_1.5": 2 / 6, "fast_2": 1 / 6})
    # over torch.compile: level1 a 1.0x, b 0.4x: neither more than 1x; f has no figure, so it counts only for fast_0
    assert level1.fast_p_compile["fast_1"] == 0.0 and level1.fast_p_compile["fast_0"] == 0.5
    assert level2.fast_p_compile == {"fast_0": 1.0, "fast_1": 0.5, "fast_1.5": 0.5, "fast_2": 0.0}
    assert (level1.problems, level1.candidate, level1.compiled, level1.correct, level1.failed) == (4, 3, 3, 2, 1)
    assert (overall.problems, overall.correct, overall.reached_gpu) == (6, 4, 5)


def test_torch_compiles_own_median_over_eager_is_given_per_level_from_the_verified_rows() -> None:
    """The bar a level's median over eager is held against: eager / torch.compile in each problem's run, which is
    our speedup over eager divided by our speedup over torch.compile."""
    level1, level2, overall = summarise(ROWS).levels
    # level1: a 2.0 / 1.0 = 2.0, b 0.8 / 0.4 = 2.0 (c is not verified: its run timed nothing of ours)
    assert level1.compile_vs_eager_median == pytest.approx(2.0)
    # level2: e 4.0 / 2.0 = 2.0; f has no torch.compile figure and is left out
    assert level2.compile_vs_eager_median == pytest.approx(2.0)
    faster = summarise([_row("level3", "1_x", "verified", eager=1.2, compiled=0.6),
                        _row("level3", "2_y", "verified", eager=3.0, compiled=2.0),
                        _row("level3", "3_z", "verified", eager=1.0, compiled=2.0)]).levels[0]
    assert faster.compile_vs_eager_median == pytest.approx(1.5)  # [2.0, 1.5, 0.5]
    assert summarise([ROWS[2], ROWS[3]]).levels[0].compile_vs_eager_median is None  # nothing verified
    text = markdown(summarise(ROWS))
    assert "torch.compile vs eager median (correct)" in text


def test_medians_and_geometric_means_over_all_problems_and_over_the_correct_ones() -> None:
    level1, level2, overall = summarise(ROWS).levels
    # level1 over eager, all: c and d count 1.0x: [2.0, 0.8, 1.0, 1.0] -> median 1.0, geomean (2 * 0.8) ** (1/4)
    assert level1.vs_eager.median_all == 1.0
    assert level1.vs_eager.geomean_all == pytest.approx(1.6 ** 0.25)
    # correct only: [2.0, 0.8] -> median 1.4, geomean sqrt(1.6)
    assert level1.vs_eager.median_correct == pytest.approx(1.4)
    assert level1.vs_eager.geomean_correct == pytest.approx(math.sqrt(1.6))
    # level1 over torch.compile, all: [1.0, 0.4, 1.0, 1.0] -> median 1.0, geomean 0.4 ** (1/4); correct: [1.0, 0.4]
    assert level1.vs_compile.median_all == 1.0 and level1.vs_compile.geomean_all == pytest.approx(0.4 ** 0.25)
    assert level1.vs_compile.median_correct == pytest.approx(0.7)
    # level2 over torch.compile: f has no figure: 1.0x among all, left out of the correct ones
    assert level2.vs_compile.median_all == pytest.approx(1.5) and level2.vs_compile.median_correct == 2.0
    assert level2.vs_compile.correct_measured == 1
    # overall over eager: all [2, 0.8, 1, 1, 4, 1.5] -> median (1 + 1.5) / 2; correct [2, 0.8, 4, 1.5] -> (1.5 + 2) / 2
    assert overall.vs_eager.median_all == pytest.approx(1.25)
    assert overall.vs_eager.geomean_all == pytest.approx(9.6 ** (1 / 6))
    assert overall.vs_eager.median_correct == pytest.approx(1.75)
    assert overall.vs_eager.geomean_correct == pytest.approx(9.6 ** 0.25)
    # time and spend add up: wall 10 * 5 + 100, GPU 4 + 2 + 1, tokens 150, cost 0.75
    assert (overall.wall_s, overall.gpu_s, overall.tokens, overall.cost_usd) == (150.0, 7.0, 150, 0.75)


def test_an_empty_level_has_no_figures_rather_than_made_up_ones() -> None:
    (overall,) = summarise([]).levels
    assert overall.problems == 0 and overall.fast_p_eager["fast_0"] is None and overall.vs_eager.median_all is None


def test_the_markdown_table_names_the_precision_profile_and_shows_the_hand_worked_figures() -> None:
    text = markdown(summarise(ROWS), "KernelBench dev split")
    assert text.startswith("# KernelBench dev split\n\nPrecision profile: strict (fp32 reference with TF32 off")
    assert "(NVIDIA H100 80GB HBM3)" in text  # the card the baselines and kernels were timed on
    assert "| level1 | 4 | 3 (75%) | 3 (75%) | 2 (50%) | 50.0% | 25.0% | 25.0% | 0.0% |" in text
    assert "| all | 6 | 5 (83%) | 5 (83%) | 4 (67%) | 66.7% | 50.0% | 33.3% | 16.7% |" in text
    assert "| level1 | 1.00x | 1.12x | 1.40x | 1.26x | 1.00x | 0.80x | 0.70x | 0.63x |" in text
    assert "| level1/4_d | failed (timeout) | no | no | no | - | - | - | - | 100 | why not |" in text
    assert "| all | 2.5 min | 7 s | 150 | $0.75 | 1 |" in text


def test_the_speedup_distribution_puts_each_problem_in_one_bar() -> None:
    counts = dict(speedup_counts([r for r in ROWS if r.level == "level1"]))
    assert counts[NOT_VERIFIED] == 2 and counts["0.8-1x"] == 1 and counts["2-4x"] == 1
    assert sum(counts.values()) == 4


def test_the_summary_is_rebuilt_from_a_results_folder(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    run_dir = tmp_path / "runs" / "level1-1_a"
    run_dir.mkdir(parents=True)
    (run_dir / "report.html").write_text("<html></html>")
    for row in [replace(ROWS[0], run_dir=str(run_dir)), *ROWS[1:]]:
        store.write(row)
    table, files = rebuild_summary(tmp_path)
    assert table.overall.problems == 6 and [f.name for f in files] == ["summary.md", "summary.json", "report.html"]
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 2 and "KernelBench table" in page and "http" not in page.split("<body>")[1]
    assert '<a href="runs/level1-1_a/report.html">level1/1_a</a>' in page and "<td>level1/2_b</td>" in page
    # no bench.json here: the search settings that made the rows are unknown, and the table says so
    assert (tmp_path / "summary.md").read_text() == markdown(table, "kernelwright bench: level1, level2",
                                                             SEARCH_NOT_RECORDED)
    assert "\n\nSearch settings: not recorded" in (tmp_path / "summary.md").read_text()
    store.write(_row("level3", "1_g", "verified", eager=3.0))  # a resumed bench adds a level
    assert write_summary(tmp_path)[0].overall.problems == 7


def _best_with_report(tmp_path: Path, report: dict) -> dict:
    """A run's best candidate record whose folder holds `report` as its report.json."""
    folder = CandidateFolder(tmp_path / "run" / "candidates" / "abc")
    folder.path.mkdir(parents=True)
    (folder.path / "kernel.py").write_text("class ModelNew: ...\n")
    folder.write_report(report)
    return {"id": "abc", "status": "passed", "source_path": str(folder.path / "kernel.py"), "speedup_vs_eager": 1.6,
            "speedup_vs_compile": 1.2, "seconds": 3.0}


def test_a_bench_row_carries_the_library_share_and_the_roofline_ratio_into_the_tables(tmp_path: Path) -> None:
    report = {"status": "passed", "gpu": {"name": "NVIDIA H100 80GB HBM3"},
              "kernel_usage": {"custom": ["k"], "library": ["sm90_xmma_gemm"], "framework": [],
                               "library_time_share": 0.75, "framework_time_share": 0.0, "reference_kernel_share": 0.0},
              "floor": {"output_bytes": 4096, "floor_ms": 0.001, "write_gbps": 3000.0, "l2_bytes": 0,
                        "median_ms": 0.5, "roofline_ms": 0.2, "roofline_bound": "compute", "floor_ratio": 2.5}}
    best = _best_with_report(tmp_path, report)
    result = RunResult("run", tmp_path / "run", best, {"candidates": {"abc": best}})
    problem = BenchProblem("level1/1_gemm", "level1", tmp_path / "1_gemm.py")
    row = row_from_run(problem, result, "strict")
    assert (row.library_share, row.floor_ratio, row.floor_bound) == (0.75, 2.5, "compute")
    assert ProblemRow.from_dict(row.to_dict()) == row  # a results file keeps them
    other = replace(ROWS[1], floor_ratio=1.5, floor_bound="memory", library_share=0.0)
    table = summarise([row, other, *ROWS[2:4]])
    assert table.levels[0].median_floor_ratio == 2.0  # median of 2.5 and 1.5: verified kernels only
    text = markdown(table)
    assert "| level1/1_gemm | verified | yes | yes | yes | 1.60x | 1.20x | 2.50x (compute) | 75.0% | 0 | - |" in text
    assert "| level1/2_b | verified | yes | yes | yes | 0.80x | 0.40x | 1.50x (memory) | 0.0% | 10 | - |" in text
    assert "x floor median (correct) |" in text and text.count("| 2.00x |") == 2  # level1 and all
    assert "x floor: the verified kernel's median time over its problem's roofline floor" in text


def test_a_kernel_that_replays_a_cuda_graph_says_so_in_its_row(tmp_path: Path) -> None:
    best = _best_with_report(tmp_path, {"status": "passed", "kernel_usage": {"library_time_share": 0.5}})
    problem = BenchProblem("level3/9_net", "level3", tmp_path / "9_net.py")
    plain = row_from_run(problem, RunResult("run", tmp_path / "run", best, {"candidates": {"abc": best}}), "strict")
    assert plain.cuda_graph is False
    Path(best["source_path"]).write_text("g = torch.cuda.CUDAGraph()\nwith torch.cuda.graph(g):\n    pass\n")
    row = row_from_run(problem, RunResult("run", tmp_path / "run", best, {"candidates": {"abc": best}}), "strict")
    assert row.cuda_graph is True and ProblemRow.from_dict(row.to_dict()) == row
    assert "| 50.0%, CUDA graph |" in markdown(summarise([row]))
    assert "| 50.0% |" in markdown(summarise([plain]))
    assert ProblemRow.from_dict({k: v for k, v in row.to_dict().items() if k != "cuda_graph"}).cuda_graph is None


def test_a_report_without_roofline_or_trace_leaves_the_columns_empty(tmp_path: Path) -> None:
    best = _best_with_report(tmp_path, {"status": "passed", "floor": {"output_bytes": 1, "floor_ms": 0.0}})
    row = row_from_run(BenchProblem("level1/2_x", "level1", tmp_path / "2_x.py"),
                       RunResult("run", tmp_path / "run", best, {"candidates": {"abc": best}}), "strict")
    assert (row.library_share, row.floor_ratio, row.floor_bound) == (None, None, None)
    assert "| level1/2_x | verified | yes | yes | yes | 1.60x | 1.20x | - | - | 0 | - |" in markdown(summarise([row]))
