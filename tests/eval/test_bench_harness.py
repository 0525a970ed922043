"""The harness benchmark (eval/bench/harness*.py): bookkeeping with a fake evaluator, the memory sampler on a real
child process, candidate preparation (passthrough and offline, memory-capped) on KernelBench dev problems."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kernelwright.eval.bench import harness as bh
from kernelwright.eval.bench.harness_prepare import (
    CandidateEntry,
    candidate_path,
    read_manifest,
    write_manifest,
)
from kernelwright.eval.bench.harness_table import final_line
from kernelwright.eval.bench.memory_sampler import TreeSampler
from kernelwright.eval.bench.passthrough_candidate import passthrough_source
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.problem.files import check_source
from kernelwright.tools.problem.inputs import unfilled_problem_inputs
from kernelwright.tools.sandbox.resources import tree_memory
from support.paths import KERNELBENCH, ROOT

PROBLEM = '''import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, n: int = 8):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(n))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x * self.scale, dim=-1) + y

def get_inputs():
    return [torch.rand(SHAPE), torch.rand(SHAPE)]

def get_init_inputs():
    return [8]

SHAPE = (16, 8)
'''


class FakeEvaluator:
    """Plays the Evaluator's part; `raising` problems fail in reference(), `sleep_s` slows evaluate()."""

    def __init__(self, problem: Path, log: list[str], raising: set[str], sleep_s: float):
        self.problem, self.log, self.raising, self.sleep_s = problem, log, raising, sleep_s
        self.reference_durations_s = {"total": 0.5}
        log.append(f"open {problem.stem}")

    def check_problem(self) -> dict[str, Any]:
        return {"input_bytes": 4096}

    def reference(self) -> None:
        if self.problem.stem in self.raising:
            raise RuntimeError("boom in the reference")

    def evaluate(self, candidate: str | Path) -> EvalReport:
        time.sleep(self.sleep_s)
        return EvalReport(problem=str(self.problem), candidate=str(candidate), status="passed", stage="done",
                          message="verified", speedup_vs_eager=2.0, durations_s={"load": 0.1, "verify": 0.2, "total": 0.6},
                          timing={"candidate": {"median_ms": 1.0}, "eager": {"median_ms": 2.0}})

    def baselines(self) -> dict[str, Any]:
        return {"eager": {"median_ms": 2.0}, "eager_strict": {"median_ms": 3.0}}

    def close(self) -> None:
        self.log.append(f"close {self.problem.stem}")


def _bench(tmp_path: Path, names: tuple[str, ...] = ("1_a", "2_b", "3_c")) -> tuple[list[Path], Path]:
    """Problem files plus a prepared candidates folder, so no preparation child runs."""
    folder, cands = tmp_path / "problems", tmp_path / "cands"
    folder.mkdir()
    entries = {}
    for name in names:
        (folder / f"{name}.py").write_text(PROBLEM)
        candidate_path(cands, name).parent.mkdir(parents=True, exist_ok=True)
        candidate_path(cands, name).write_text("# stands in for a candidate\n")
        entries[name] = CandidateEntry(name, str(folder / f"{name}.py"), "passthrough", "test")
    write_manifest(cands, entries)
    return bh.discover([folder]), cands


def _run(problems: list[Path], cands: Path, out: Path, log: list[str], *, raising: set[str] = frozenset(),
         sleep_s: float = 0.0, **options: Any) -> tuple[dict[str, Any], bool]:
    opts = bh.BenchOptions(out=out, candidates=cands, prebuild=False, **options)
    return bh.run_benchmark(problems, opts, factory=lambda p, s: FakeEvaluator(p, log, raising, sleep_s), log=lambda m: None)


def test_resume_skips_finished_problems(tmp_path: Path) -> None:
    problems, cands = _bench(tmp_path)
    log: list[str] = []
    summary, complete = _run(problems, cands, tmp_path / "out", log)
    assert complete and summary["done"] == 3 and not summary["partial"]
    assert sorted(line for line in log if line.startswith("open")) == ["open 1_a", "open 2_b", "open 3_c"]
    assert log.count("close 1_a") == 1  # every evaluator is closed
    row = json.loads((tmp_path / "out" / "results" / "2_b.json").read_text())
    assert row["status"] == "passed" and row["eager_ms"] == 2.0 and row["candidate_ms"] == 1.0
    assert row["stages_s"].keys() >= {"problem_load", "reference", "evaluate"} and row["input_bytes"] == 4096
    assert row["memory"]["samples"] >= 2 and row["memory"]["rss_bytes"] > 0
    again: list[str] = []
    summary, complete = _run(problems, cands, tmp_path / "out", again)
    assert complete and again == [] and summary["done"] == 3


def test_a_candidate_file_without_a_manifest_entry_is_used_and_repeats_are_timed(tmp_path: Path) -> None:
    problems, cands = _bench(tmp_path, ("1_a",))
    (cands / "manifest.json").unlink()
    log: list[str] = []
    _, complete = _run(problems, cands, tmp_path / "out", log, repeats=2)
    row = json.loads((tmp_path / "out" / "results" / "1_a.json").read_text())
    assert complete and row["candidate_kind"] == "given" and row["warm_eval_s"] == [0.6, 0.6]
    assert not (tmp_path / "out" / "candidates").exists()  # nothing prepared


def test_a_raising_problem_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    problems, cands = _bench(tmp_path)
    summary, complete = _run(problems, cands, tmp_path / "out", [], raising={"2_b"})
    rows = {r["problem"]: r for r in json.loads((tmp_path / "out" / "summary.json").read_text())["rows"]}
    assert rows["2_b"]["status"] == "crash" and "boom in the reference" in rows["2_b"]["message"]
    assert "RuntimeError" in rows["2_b"]["error"]["traceback"]
    assert rows["3_c"]["status"] == "passed"
    assert complete and summary["crashes"] == ["2_b"]
    assert "3/3 problems, 1 crash(es) 2_b" in final_line(summary)


def test_time_budget_stops_cleanly_with_a_partial_summary_and_resumes(tmp_path: Path) -> None:
    problems, cands = _bench(tmp_path)
    summary, complete = _run(problems, cands, tmp_path / "out", [], sleep_s=0.5, time_budget_s=0.6, overlap=False)
    assert not complete and summary["partial"] and summary["done"] == 1
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())["summary"]
    assert on_disk["partial"] and "(partial)" in (tmp_path / "out" / "summary.md").read_text()
    summary, complete = _run(problems, cands, tmp_path / "out", [])
    assert complete and not summary["partial"] and summary["done"] == 3


def test_an_evaluator_started_early_is_closed_when_the_budget_stops_the_run(tmp_path: Path) -> None:
    problems, cands = _bench(tmp_path)
    log: list[str] = []
    _, complete = _run(problems, cands, tmp_path / "out", log, sleep_s=0.5, time_budget_s=0.6)
    assert not complete and "open 2_b" in log and log.count("close 2_b") == 1  # started during 1_a, never measured
    assert not (tmp_path / "out" / "results" / "2_b.json").exists()


def test_a_problem_the_last_run_died_in_is_recorded_as_killed_not_retried(tmp_path: Path) -> None:
    problems, cands = _bench(tmp_path)
    (tmp_path / "out" / "results").mkdir(parents=True)
    (tmp_path / "out" / "results" / "2_b.started").write_text("123")
    log: list[str] = []
    summary, _ = _run(problems, cands, tmp_path / "out", log)
    assert "open 2_b" not in log and summary["crashes"] == ["2_b"]
    row = json.loads((tmp_path / "out" / "results" / "2_b.json").read_text())
    assert row["status"] == "killed" and not (tmp_path / "out" / "results" / "2_b.started").exists()


def test_baselines_only_reports_default_and_strict_eager(tmp_path: Path) -> None:
    problems, cands = _bench(tmp_path, ("1_a",))
    _run(problems, None, tmp_path / "out", [], mode="baselines")  # type: ignore[arg-type]
    row = json.loads((tmp_path / "out" / "results" / "1_a.json").read_text())
    assert (row["status"], row["eager_ms"], row["eager_strict_ms"], row["compiled_ms"]) == ("baselines", 2.0, 3.0, None)
    assert "| 1_a | 0.00 | 2.000 | 3.000 | 1.50 |" in (tmp_path / "out" / "summary.md").read_text()
    assert not (tmp_path / "out" / "candidates").exists()  # no candidate is prepared for baselines


def test_settings_pass_precision_only_where_the_harness_has_it(tmp_path: Path) -> None:
    settings, precision = bh.eval_settings(bh.BenchOptions(out=tmp_path, precision="strict"))
    has_field = "precision" in {f.name for f in bh.dataclasses.fields(bh.EvalSettings)}
    assert precision == ("strict" if has_field else None)
    assert settings.compile_baseline is False and settings.bench.max_total_ms == 1500.0


def test_discover_orders_and_filters(tmp_path: Path) -> None:
    for name in ("10_conv_b", "2_Conv_a", "1_relu", "_helper"):
        (tmp_path / f"{name}.py").write_text(PROBLEM)
    assert [p.stem for p in bh.discover([tmp_path])] == ["1_relu", "2_Conv_a", "10_conv_b"]
    assert [p.stem for p in bh.discover([tmp_path], match="CONV")] == ["2_Conv_a", "10_conv_b"]
    assert [p.stem for p in bh.discover([tmp_path], only="10,1_relu")] == ["1_relu", "10_conv_b"]
    with pytest.raises(SystemExit, match="no such problem"):
        bh.discover([tmp_path / "missing"])


def test_no_problems_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bh.main(["--out", "x"])
    assert exc.value.code == 2 and "--problems is required" in capsys.readouterr().err


def test_the_sampler_sees_a_child_process_memory() -> None:
    base = tree_memory().rss_bytes
    code = "import time; b = bytearray(200 << 20); time.sleep(1.0)"  # bytearray writes every page
    with TreeSampler(interval_s=0.05, gpu=False) as sampler:
        subprocess.run([sys.executable, "-c", code], check=True)
    peaks = sampler.peaks()
    assert peaks.processes >= 2 and peaks.samples >= 5
    assert peaks.rss_bytes - base > 180 << 20
    assert peaks.pss_bytes > 180 << 20


def test_passthrough_candidate_is_a_valid_candidate(tmp_path: Path) -> None:
    problem = tmp_path / "p.py"
    problem.write_text(PROBLEM)
    path = tmp_path / "c.py"
    path.write_text(passthrough_source(problem, "offline translator: test"))
    assert check_source(path, "candidate").forward_params == ("x", "y")
    assert "Why not the offline translator: offline translator: test" in path.read_text()


@pytest.mark.nvcc
def test_passthrough_candidate_compiles_and_owns_the_models_weights(tmp_path: Path) -> None:
    import torch

    from kernelwright.tools.problem.files import import_file
    from kernelwright.tools.problem.model_build import build_model

    problem = tmp_path / "p.py"
    problem.write_text(PROBLEM)
    path = tmp_path / "c.py"
    path.write_text(passthrough_source(problem, "test"))
    module = import_file(check_source(path, "candidate"), "kw_test_passthrough")  # builds the CUDA with nvcc
    assert module._kw_lib.kw_copy_bytes.kinds == ("u8*", "u8*", "i64")
    ref_module = import_file(check_source(problem, "problem"), "kw_test_passthrough_problem")
    new = build_model(module.ModelNew, [8], check_source(path, "candidate"), "ModelNew", seed=42, device=torch.device("cpu"))
    ref = build_model(ref_module.Model, [8], check_source(problem, "problem"), "Model", seed=42, device=torch.device("cpu"))
    assert torch.equal(new.kw_ref.scale, ref.scale)


def test_a_lazily_traced_candidate_is_the_real_one(tmp_path: Path) -> None:
    from kernelwright.agents.offline import propose

    problem = tmp_path / "p.py"
    problem.write_text(PROBLEM)
    real = propose(problem)[0].source
    with unfilled_problem_inputs(problem):
        lazy = propose(problem)[0].source
    assert lazy == real


@pytest.mark.slow
def test_prepare_only_on_kernelbench_dev_problems(tmp_path: Path) -> None:
    level1 = KERNELBENCH / "level1"
    if not level1.is_dir():
        pytest.skip(f"KernelBench dev split not found at {level1}")
    # a convolution has a kernel of its own too since offline_preview is on by default (CUTLASS implicit GEMM)
    relu, conv = level1 / "19_ReLU.py", level1 / "63_conv_standard_2D__square_input__square_kernel.py"
    assert bh.main(["--problems", str(relu), str(conv), "--out", str(tmp_path), "--prepare-only"]) == 0
    entries = read_manifest(tmp_path / "candidates")
    assert (entries["19_ReLU"].kind, entries[conv.stem].kind) == ("offline", "offline")
    assert "kw_conv" in candidate_path(tmp_path / "candidates", conv.stem).read_text()
    # 19_ReLU's input is 6.4 GB; preparing it stayed far inside the 4 GB budget.
    assert entries["19_ReLU"].input_bytes == 4096 * 393216 * 4 and entries["19_ReLU"].peak_rss_bytes < 2 << 30
    for name in entries:
        check_source(candidate_path(tmp_path / "candidates", name), "candidate")


def test_a_child_past_its_address_space_cap_gets_a_passthrough(tmp_path: Path) -> None:
    from kernelwright.eval.bench.harness_prepare import prepare_one

    problem = tmp_path / "p.py"
    # get_inputs writes x through numpy, out of torch's (and the meta device's) sight: no size is known, so
    # the child's address space is capped at the 1 GiB budget and its 2 GiB allocation fails
    wide = PROBLEM.replace("SHAPE = (16, 8)", "SHAPE = (1 << 14, 1 << 15)").replace("return [8]", "return [1 << 15]")
    problem.write_text(wide.replace("return [torch.rand(SHAPE), torch.rand(SHAPE)]",
                                    "x = torch.empty(SHAPE)\n    x.numpy().fill(1.0)\n    return [x, torch.rand(SHAPE)]"))
    entry = prepare_one(problem, tmp_path / "c", budget_bytes=1 << 30, timeout_s=120)
    assert entry.kind == "passthrough" and "can't allocate memory" in entry.why and entry.input_bytes is None
    assert entry.peak_rss_bytes < 1 << 30
    check_source(candidate_path(tmp_path / "c", "p"), "candidate")


def test_the_watch_kills_a_child_over_its_resident_budget() -> None:
    from kernelwright.eval.bench.harness_prepare import _watch

    proc = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(1 << 30); time.sleep(30)"])
    started = time.monotonic()
    peak, why = _watch(proc, 512 << 20, timeout_s=60)
    assert why is not None and "over the 0.5 GB budget" in why and peak > 512 << 20
    assert proc.returncode is not None and time.monotonic() - started < 20
    quick = subprocess.Popen([sys.executable, "-c", "pass"])
    assert _watch(quick, 512 << 20, timeout_s=60)[1] is None


@pytest.mark.gpu
@pytest.mark.nvcc
def test_a_real_run_on_the_gpu(tmp_path: Path) -> None:
    """The real Evaluator: an elementwise problem (offline candidate) and a GEMM (passthrough, cuBLAS allowed)."""
    folder = tmp_path / "problems"
    folder.mkdir()
    (folder / "1_relu.py").write_text(ROOT.joinpath("eval", "problems", "tiny_relu.py").read_text())
    (folder / "2_gemm.py").write_text(PROBLEM.replace("torch.softmax(x * self.scale, dim=-1) + y", "x @ y")
                                      .replace("SHAPE = (16, 8)", "SHAPE = (512, 512)"))
    options = bh.BenchOptions(out=tmp_path / "out", repeats=1)
    summary, complete = bh.run_benchmark(bh.discover([folder]), options)
    rows = {r["problem"]: r for r in json.loads((tmp_path / "out" / "summary.json").read_text())["rows"]}
    assert complete and summary["crashes"] == []
    assert rows["1_relu"]["candidate_kind"] == "offline" and rows["1_relu"]["status"] == "passed"
    assert rows["2_gemm"]["candidate_kind"] == "passthrough" and rows["2_gemm"]["status"] == "passed"
    for row in rows.values():
        assert row["eager_ms"] > 0 and row["input_bytes"] > 0 and len(row["warm_eval_s"]) == 1
        assert row["memory"]["rss_bytes"] > 500 << 20 and row["memory"]["processes"] >= 3  # us and two workers
        assert row["memory"]["gpu_device_used_bytes"] > 0


@pytest.mark.parametrize("precision", ["strict", "kernelbench"])
def test_prepared_candidates_use_plain_tf32_only_under_a_profile_that_allows_it(tmp_path: Path, precision: str) -> None:
    """`bench_harness --precision kernelbench` prepares candidates whose fp32 GEMMs run as plain TF32 (the profile
    admits it); under strict the prepared candidate never does."""
    problem = ROOT / "eval" / "suite" / "12_linear_relu_scale.py"
    options = bh.BenchOptions(out=tmp_path, precision=precision)
    entries = bh.prepare_candidates([problem], options, lambda line: None)
    assert entries[problem.stem].kind == "offline", entries[problem.stem].why
    source = candidate_path(tmp_path / "candidates", problem.stem).read_text()
    assert ("_kw_tf32_call(torch.ops.aten.linear.default" in source) is (precision == "kernelbench")


@pytest.mark.parametrize("precision, allow_tf32", [("strict", False), ("kernelbench", True)])
def test_translate_only_prepares_under_the_benchs_precision_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   precision: str, allow_tf32: bool) -> None:
    """`kernelwright bench --translate-only --precision kernelbench` writes the candidate a kernelbench run would
    evaluate (plain TF32 allowed); the profile, not a setting of its own, decides."""
    from kernelwright.eval.kernelbench import translate_only
    from kernelwright.eval.kernelbench.problems import BenchProblem
    from kernelwright.tools.harness.evaluate import EvalSettings

    asked: list[bool] = []

    def prepare(problem: Path, folder: Path, **kw: Any) -> Any:
        asked.append(kw["allow_tf32"])
        return CandidateEntry(problem.stem, str(problem), "passthrough", "stub", None, None, 0.0, 0)

    monkeypatch.setattr(translate_only, "prepare_one", prepare)
    problem = ROOT / "eval" / "suite" / "12_linear_relu_scale.py"
    row = translate_only.translate_and_build(BenchProblem("suite/12", "suite", problem), tmp_path, EvalSettings(),
                                             precision=precision)
    assert asked == [allow_tf32] and row.precision == precision
