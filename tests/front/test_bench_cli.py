"""`kernelwright bench`: bad input is a typed one-line error (exit 2, no traceback, nothing written; an unusable
model exit 5), `--summary` rebuilds the table, progress is shown per problem, and on a machine without a GPU
`--translate-only` (and the full job, as `run` does there) translates and compiles KernelBench problems read from
the dev split beside the checkout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelwright.agents.context import RunSettings
from kernelwright.bench_progress import BenchProgress, outcome_text
from kernelwright.cli import app
from kernelwright.cli_errors import ERROR_PREFIX, EXIT_BAD_INPUT, EXIT_ERROR, EXIT_NEEDS_GPU, EXIT_NO_LLM, EXIT_PASSED
from kernelwright.eval.kernelbench import bench as bench_module
from kernelwright.eval.kernelbench.bench import BenchOptions
from kernelwright.eval.kernelbench.problems import BenchProblem
from kernelwright.eval.kernelbench.rows import ProblemRow, ResultStore, failed_row
from kernelwright.eval.kernelbench.runner import BenchEvent, Lane
from kernelwright.eval.kernelbench.search import SearchSettings
from kernelwright.graphs.run import RunBudget
from support.paths import KERNELBENCH, ROOT

runner = CliRunner()
OFFLINE_ENV = {"CUDA_VISIBLE_DEVICES": "", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "KERNELWRIGHT_MODEL": ""}
TINY = ROOT / "eval" / "problems" / "tiny_relu.py"


def _bench(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["bench", *args], env={**OFFLINE_ENV, **(env or {})})
    return result.exit_code, result.output


def _bad_input(code: int, out: str, *parts: str) -> None:
    assert code == EXIT_BAD_INPUT, out
    assert out.count(ERROR_PREFIX) == 1 and all(p in out for p in parts), out
    assert "Traceback" not in out


@pytest.mark.parametrize(("make", "says"), [
    (lambda root: root / "no-such-level", "no such problem file or folder"),
    (lambda root: (root / "empty").mkdir() or root / "empty", "no problem files (*.py) in this folder"),
    (lambda root: (root / "p.txt").write_text("x") and root / "p.txt", "a problem must be a Python file (.py)"),
])
def test_a_path_without_problems_is_bad_input_naming_it(tmp_path: Path, make, says: str) -> None:
    path = make(tmp_path)
    code, out = _bench(str(path), "--out", str(tmp_path / "out"))
    _bad_input(code, out, f"{ERROR_PREFIX} {path}: {says}")
    assert not (tmp_path / "out").exists()  # nothing half-started


def test_a_results_folder_is_continued_only_with_resume_and_the_same_mode(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ResultStore(out).write(ProblemRow("misc/tiny_relu", "misc", str(TINY), "translate_only", "compiled"))
    code, text = _bench(str(TINY), "--out", str(out), "--translate-only")
    _bad_input(code, text, f"{out}: this folder holds a bench already: pass --resume to continue it")
    (out / "bench.json").write_text(json.dumps({"mode": "translate_only", "precision": "strict", "paths": []}))
    code, text = _bench(str(TINY), "--out", str(out), "--resume")
    _bad_input(code, text, "holds a translate-only bench under the strict precision profile",
               "--resume continues it only with the same mode and profile")


def test_redo_is_bad_input_without_resume_and_when_it_names_no_problem(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, text = _bench(str(TINY), "--out", str(out), "--translate-only", "--redo", "tiny_relu")
    _bad_input(code, text, f"{out}: --redo measures problems of the bench in --out again: pass --resume too")
    assert not out.exists()
    code, text = _bench(str(TINY), "--out", str(out), "--translate-only", "--resume", "--redo", "no_such")
    _bad_input(code, text, "no_such: --redo names no problem among the paths given")


def test_a_stops_resume_command_names_the_redo_problems_not_yet_measured_again() -> None:
    from kernelwright.bench_cli import _resume_command

    assert _resume_command([Path("kb/level2")], Path("out"), ["level2/15_x", "level2/8_y"]) == \
        "kernelwright bench kb/level2 --out out --resume --redo level2/15_x --redo level2/8_y"
    assert _resume_command([Path("kb/level2")], Path("out")) == "kernelwright bench kb/level2 --out out --resume"


def test_resume_with_other_search_flags_is_refused_naming_each_and_keeps_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    row = ResultStore(out).write(ProblemRow("misc/tiny_relu", "misc", str(TINY), "run", "compiled"))
    code, text = _bench("--summary", str(out))  # a folder without bench.json: settings unknown, said so
    assert code == EXIT_PASSED and "Search settings: not recorded" in text, text
    recorded = SearchSettings(RunSettings(), RunBudget(candidates=200, wall_s=1800.0))  # the flags' defaults
    manifest = {"mode": "run", "precision": "strict", "paths": [str(TINY)], "search": recorded.to_dict()}
    (out / "bench.json").write_text(json.dumps(manifest))
    before = (out / "bench.json").read_text()
    code, text = _bench(str(TINY), "--out", str(out), "--resume", "--generations", "1", "--max-cost", "2")
    _bad_input(code, text, f"{out}: this folder's bench was made with other search settings",
               "--generations 1 (recorded: 3); --max-cost 2 (recorded: 0)", "--resume continues it only with the "
               "same settings (flags: --generations 3 --candidates 4", "or choose another --out")
    assert (out / "bench.json").read_text() == before and row.exists()
    assert not (out / "runs").exists() and not (out / "logs").exists()  # nothing ran
    code, text = _bench("--summary", str(out))
    assert code == EXIT_PASSED and "Search: offline translator + tuner, 3 generations x 4 candidates" in text, text


def test_gpus_that_are_not_visible_and_a_bad_precision_are_bad_input(tmp_path: Path) -> None:
    code, out = _bench(str(TINY), "--out", str(tmp_path / "o"), "--gpus", "0,1")
    _bad_input(code, out, "--gpus: GPU 0, 1 not visible here (visible: none)", "use --translate-only")
    code, out = _bench(str(TINY), "--out", str(tmp_path / "o"), "--gpus", ",")
    _bad_input(code, out, "--gpus ',' names no GPU")
    code, out = _bench(str(TINY), "--out", str(tmp_path / "o"), "--precision", "loose")
    _bad_input(code, out, "harness.precision")
    assert not (tmp_path / "o").exists()


def test_summary_rebuilds_the_table_of_a_results_folder(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "res")
    store.write(ProblemRow("level1/1_a", "level1", "/kb/level1/1_a.py", "run", "verified", candidate=True,
                           compiled=True, verified=True, speedup_vs_eager=2.5, speedup_vs_compile=1.25, wall_s=30))
    store.write(ProblemRow("level1/2_b", "level1", "/kb/level1/2_b.py", "run", "failed", reason="killed after 60 s",
                           failure="timeout", wall_s=60))
    code, out = _bench("--summary", str(tmp_path / "res"))
    assert code == EXIT_PASSED, out
    assert "Precision profile: strict" in out and "fast_1.5" in out and "50.0%" in out  # 1 of 2 is > 1.5x
    assert "level1/2_b: failed (timeout): killed after 60 s" in out
    md = (tmp_path / "res" / "summary.md").read_text()
    assert "| level1 | 2 | 1 (50%) | 1 (50%) | 1 (50%) | 50.0% | 50.0% | 50.0% | 50.0% |" in md
    assert json.loads((tmp_path / "res" / "summary.json").read_text())["levels"][0]["correct"] == 1
    code, out = _bench("--summary", str(tmp_path / "nothing"))
    _bad_input(code, out, f"{tmp_path / 'nothing'}: no such results folder")
    (tmp_path / "empty").mkdir()
    code, out = _bench("--summary", str(tmp_path / "empty"))
    _bad_input(code, out, "no bench results here")
    code, out = _bench(str(TINY), "--summary", str(tmp_path / "res"))
    _bad_input(code, out, "--summary DIR rebuilds the table of a results folder; it takes no problem paths")


def test_summary_of_several_folders_is_one_table_written_to_out(tmp_path: Path) -> None:
    ResultStore(tmp_path / "l1").write(ProblemRow("level1/1_a", "level1", "/kb/level1/1_a.py", "run", "verified",
                                                  candidate=True, compiled=True, verified=True, speedup_vs_eager=2.0))
    ResultStore(tmp_path / "l3").write(ProblemRow("level3/9_c", "level3", "/kb/level3/9_c.py", "run", "verified",
                                                  candidate=True, compiled=True, verified=True, speedup_vs_eager=1.5))
    code, out = _bench("--summary", str(tmp_path / "l1"), "--summary", str(tmp_path / "l3"), "--out",
                       str(tmp_path / "all"))
    assert code == EXIT_PASSED, out
    assert f"level1 ({tmp_path / 'l1'}): Search settings: not recorded" in out.replace("\n", "")
    md = (tmp_path / "all" / "summary.md").read_text()
    assert "| all | 2 | 2 (100%) |" in md and "level3/9_c" in md
    assert not (tmp_path / "l1" / "summary.md").exists()  # the folders are read, not written
    code, out = _bench("--summary", str(tmp_path / "l1"), "--summary", str(tmp_path / "l3"), "--out",
                       str(tmp_path / "l1"))
    _bad_input(code, out, "must be a folder of its own")


@pytest.mark.nvcc
def test_without_a_gpu_the_full_job_compiles_each_problem_as_run_does_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code, text = _bench(str(TINY), "--out", str(out), "--generations", "1")
    assert code == EXIT_NEEDS_GPU, text
    assert "offline translator" in text
    (row,) = ResultStore(out).rows()  # outside a levelN folder, its level is its folder's name
    assert (row.key, row.status, row.candidate, row.compiled, row.verified) == ("problems/tiny_relu", "compiled",
                                                                               True, True, False)
    assert row.reason == "verification needs a CUDA GPU and none is visible"
    assert (out / "runs" / "problems-tiny_relu" / "run.json").exists()
    md = (out / "summary.md").read_text()
    assert "_no GPU was visible: each run compiled its candidates and stopped" in md and "fast_1" not in md
    assert "Search: offline translator + tuner, 1 generation x 4 candidates, population 4, at most 200 evaluations " \
           "and 30 min per problem, no archive." in md
    assert json.loads((out / "bench.json").read_text())["search"]["run"]["generations"] == 1
    assert "[1/1] problems/tiny_relu: compiled: verification needs a CUDA GPU" in text


@pytest.mark.nvcc
@pytest.mark.slow
@pytest.mark.skipif(not KERNELBENCH.is_dir(), reason="the KernelBench dev split is not beside this checkout")
def test_translate_only_on_kernelbench_level_1_2_and_3_problems(tmp_path: Path) -> None:
    problems = [KERNELBENCH / "level1" / "19_ReLU.py", KERNELBENCH / "level2" / "12_Gemm_Multiply_LeakyReLU.py",
                KERNELBENCH / "level3" / "4_LeNet5.py"]
    out = tmp_path / "bench"
    code, text = _bench(*map(str, problems), "--out", str(out), "--translate-only")
    assert code == EXIT_PASSED, text
    rows = {r.key: r for r in ResultStore(out).rows()}
    assert set(rows) == {"level1/19_ReLU", "level2/12_Gemm_Multiply_LeakyReLU", "level3/4_LeNet5"}
    assert all(r.candidate and r.compiled and r.status == "compiled" for r in rows.values()), rows
    assert all(Path(str(r.kernel)).is_file() for r in rows.values())
    md = (out / "summary.md").read_text()
    assert "| all | 3 | 3 (100%) | 3 (100%) |" in md and "translate-only" in md and "fast_1" not in md
    code, text = _bench(*map(str, problems), "--out", str(out), "--translate-only", "--resume")
    assert code == EXIT_PASSED and "3 problems (3 finished before)" in text  # a resume redoes nothing


def _fake_solver(missing: str | None) -> object:
    """A stand-in for the agent graph's solver: a row for the first problem, then `missing` cannot be imported."""

    def solver(job: object, out: Path) -> object:
        def solve(problem: BenchProblem, lane: Lane, stop: object) -> ProblemRow:
            if missing and not problem.key.endswith("1_a"):
                raise ModuleNotFoundError(f"No module named '{missing}'", name=missing)
            return ProblemRow(problem.key, problem.level, str(problem.path), "run", "compiled", candidate=True,
                              compiled=True)

        return solve

    return solver


def test_a_missing_dependency_stops_the_bench_with_one_error_and_resume_redoes_old_rows(tmp_path: Path,
                                                                                         monkeypatch) -> None:
    level = tmp_path / "kb" / "level3"
    level.mkdir(parents=True)
    for stem in ("1_a", "2_b", "3_c"):
        (level / f"{stem}.py").write_text(TINY.read_text())
    out = tmp_path / "out"
    monkeypatch.setattr(bench_module, "graph_solver", _fake_solver("chromadb"))
    code, text = _bench(str(level), "--out", str(out))
    assert code == EXIT_ERROR, text
    assert text.count(ERROR_PREFIX) == 1 and "Traceback" not in text
    assert (f"{ERROR_PREFIX} the bench stopped at level3/2_b: its process could not import 'chromadb', which "
            "kernelwright needs") in text
    assert f"Once fixed, continue with `kernelwright bench {level} --out {out} --resume`" in text
    assert [r.key for r in ResultStore(out).rows()] == ["level3/1_a"]  # finished kept, no row for the failure
    assert "| level3 | 1 |" in (out / "summary.md").read_text()  # the partial table is written
    # an older bench recorded the environment's failure as rows: a resume redoes them and says so
    for stem in ("2_b", "3_c"):
        problem = BenchProblem(f"level3/{stem}", "level3", level / f"{stem}.py")
        ResultStore(out).write(failed_row(problem, "run", "error", "ModuleNotFoundError: No module named 'chromadb'"))
    monkeypatch.setattr(bench_module, "graph_solver", _fake_solver(None))
    code, text = _bench(str(level), "--out", str(out), "--resume")
    assert "3 problems (1 finished before, redoing 2 problems that failed for the environment) on cpu" in text, text
    assert code == EXIT_NEEDS_GPU and ERROR_PREFIX not in text
    assert sorted((r.key, r.status) for r in ResultStore(out).rows()) == [
        ("level3/1_a", "compiled"), ("level3/2_b", "compiled"), ("level3/3_c", "compiled")]


def test_a_named_model_that_cannot_be_used_stops_the_bench_before_any_problem(tmp_path: Path) -> None:
    code, out = _bench(str(TINY), "--out", str(tmp_path / "out"), "--model", "gpt-4.1")
    assert code == EXIT_NO_LLM, out
    assert out.count(ERROR_PREFIX) == 1 and "OPENAI_API_KEY" in out and "Traceback" not in out
    assert not (tmp_path / "out").exists()


def test_progress_counts_problems_as_they_finish_and_shows_what_each_lane_runs() -> None:
    problem = BenchProblem("level2/1_a", "level2", Path("/kb/level2/1_a.py"))
    lane = Lane("gpu1", "1")
    progress = BenchProgress(total=3)
    progress.apply(BenchEvent("skipped", BenchProblem("level1/1_z", "level1", Path("/kb/level1/1_z.py"))))
    progress.apply(BenchEvent("started", problem, lane))
    assert progress.running == {"gpu1": "level2/1_a"} and progress.done == 1
    row = ProblemRow(problem.key, problem.level, str(problem.path), "run", "verified", verified=True,
                     speedup_vs_eager=1.31, speedup_vs_compile=0.97, wall_s=42.4, gpu="1")
    progress.apply(BenchEvent("finished", problem, lane, row))
    assert progress.last == "[2/3] level2/1_a: verified 1.31x vs eager, 0.97x vs torch.compile (42 s, gpu 1)"
    assert progress.running == {} and progress.outcomes["verified"] == 1 and progress.table("t").row_count == 5
    failed = ProblemRow("level2/2_b", "level2", "/kb/level2/2_b.py", "run", "failed", reason="killed after 60 s",
                        failure="timeout", wall_s=60)
    assert outcome_text(failed) == "failed (timeout): killed after 60 s"


def test_lanes_per_gpu_reaches_the_bench_options_and_is_at_least_one(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[BenchOptions] = []

    def plan(paths: object, options: BenchOptions, job: object, visible: object = None) -> None:
        asked.append(options)
        raise bench_module.BenchError("planned", where="test")

    monkeypatch.setattr(bench_module, "plan_bench", plan)
    code, out = _bench(str(TINY), "--out", str(tmp_path / "o"), "--lanes-per-gpu", "3")
    assert code == EXIT_BAD_INPUT and "planned" in out
    code, out = _bench(str(TINY), "--out", str(tmp_path / "o"))
    assert [options.lanes_per_gpu for options in asked] == [3, 1]
    code, out = _bench(str(TINY), "--out", str(tmp_path / "o"), "--lanes-per-gpu", "0")
    assert code == 2 and "lanes-per-gpu" in out and len(asked) == 2  # refused before any planning
