"""The machine's failure is not the problems': a module kernelwright needs but cannot import (or a results folder
it cannot write) stops the bench at the first problem, with no row for it; a module the problem file imports
itself is that problem's row; and --resume redoes rows an older bench recorded for the machine's failure."""

from __future__ import annotations

import errno
import runpy
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from kernelwright.eval.kernelbench import full_job
from kernelwright.eval.kernelbench.child import ChildOutcome, run_in_child
from kernelwright.eval.kernelbench.environment import EnvironmentFailure, missing_module, problem_imports
from kernelwright.eval.kernelbench.problems import BenchProblem, find_problems
from kernelwright.eval.kernelbench.rows import ProblemRow, ResultStore, failed_row
from kernelwright.eval.kernelbench.runner import BenchEvent, Lane, run_problems
from support import bench_children

BODY = ("class Model(nn.Module):\n    def forward(self, x):\n        return x\n\n\n"
        "def get_inputs():\n    return [torch.ones(2)]\n\n\ndef get_init_inputs():\n    return []\n")
PLAIN = "import torch\nimport torch.nn as nn\n\n" + BODY
# a package installed nowhere, imported by the problem file itself (as KernelBench's Mamba problems import einops)
NEEDS_EINOPS = "import torch\nimport torch.nn as nn\nfrom kw_test_missing_einops import rearrange\n\n" + BODY


def _problems(root: Path, files: dict[str, str]) -> list[BenchProblem]:
    (root / "level3").mkdir(parents=True, exist_ok=True)
    for stem, source in files.items():
        (root / "level3" / f"{stem}.py").write_text(source)
    return find_problems([root / "level3"])


def _row(problem: BenchProblem, lane: Lane) -> ProblemRow:
    return ProblemRow(problem.key, problem.level, str(problem.path), "run", "verified", candidate=True, compiled=True,
                      verified=True, speedup_vs_eager=1.2, gpu=lane.gpu)


def _no_chromadb(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
    raise ModuleNotFoundError("No module named 'chromadb'", name="chromadb")


def test_a_missing_kernelwright_dependency_stops_the_bench_naming_module_and_problem_with_no_row(tmp_path: Path) -> None:
    problems = _problems(tmp_path / "kb", {"1_MLP": PLAIN, "2_Deep": PLAIN, "3_Wide": PLAIN})
    store = ResultStore(tmp_path / "out")
    earlier = _row(problems[0], Lane("gpu0", "0"))
    store.write(earlier)
    tried: list[str] = []
    events: list[BenchEvent] = []

    def solve(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
        tried.append(problem.key)
        return _no_chromadb(problem, lane, stop)

    result = run_problems(problems, store, solve, [Lane("gpu0", "0")], mode="run", on_event=events.append)
    failure = result.environment
    assert isinstance(failure, EnvironmentFailure) and failure.problem == "level3/2_Deep"
    assert str(failure).startswith("the bench stopped at level3/2_Deep: its process could not import 'chromadb', "
                                   "which kernelwright needs (the problem file does not import it)")
    assert "Install chromadb in the Python environment kernelwright runs in" in str(failure)
    assert tried == ["level3/2_Deep"]  # the first one stops it: 3_Wide is never tried
    assert store.rows() == [earlier] and result.rows == [earlier] and result.solved == 0  # no row, earlier intact
    assert [e.kind for e in events if e.problem.key == "level3/2_Deep"] == ["started", "stopped"]


def test_a_module_the_problem_imports_itself_is_its_row_and_the_bench_goes_on(tmp_path: Path) -> None:
    problems = _problems(tmp_path / "kb", {"1_Mamba": NEEDS_EINOPS, "2_MLP": PLAIN})
    store = ResultStore(tmp_path / "out")

    def solve(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
        runpy.run_path(str(problem.path))  # the problem's own imports, as its run would import them
        return _row(problem, lane)

    result = run_problems(problems, store, solve, [Lane("cpu")], mode="run")
    assert result.environment is None and result.solved == 2
    mamba, mlp = result.rows
    assert (mamba.status, mamba.failure) == ("failed", "missing_module")
    assert mamba.reason == ("the problem imports kw_test_missing_einops, which is not installed here "
                            "('kw_test_missing_einops' is missing): install it to run this problem")
    assert mlp.verified and mamba.finished  # its requirement: a resume does not redo it


def test_a_lane_that_meets_the_environment_failure_lets_the_other_finish_its_problem(tmp_path: Path) -> None:
    problems = _problems(tmp_path / "kb", {f"{i}_p": PLAIN for i in range(1, 6)})
    store = ResultStore(tmp_path / "out")
    failed = threading.Event()

    def solve(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
        if lane.name == "gpu1":
            raise ModuleNotFoundError("No module named 'pynvml'", name="pynvml")
        failed.wait(10)  # still running when the other lane fails
        return _row(problem, lane)

    def on_event(event: BenchEvent) -> None:
        if event.kind == "stopped":
            failed.set()

    result = run_problems(problems, store, solve, [Lane("gpu0", "0"), Lane("gpu1", "1")], mode="run",
                          on_event=on_event)
    assert result.environment is not None and "'pynvml'" in str(result.environment)
    assert result.solved == 1 and [r.gpu for r in store.rows()] == ["0"]  # finished its problem, took no other
    assert len(store.rows()) == 1 and not result.interrupted


def test_a_results_folder_that_cannot_be_written_stops_the_bench(tmp_path: Path, monkeypatch) -> None:
    problems = _problems(tmp_path / "kb", {"1_a": PLAIN, "2_b": PLAIN})
    store = ResultStore(tmp_path / "out")

    def write(row: ProblemRow) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(store.path(row.key)))

    monkeypatch.setattr(store, "write", write)
    result = run_problems(problems, store, lambda p, lane, stop: _row(p, lane), [Lane("cpu")], mode="run")
    assert result.environment is not None and result.solved == 0
    assert str(result.environment).startswith("the bench stopped at level3/1_a: the bench cannot write its files (")
    assert "No space left on device" in str(result.environment) and "choose another --out" in str(result.environment)


def test_resume_redoes_rows_an_older_bench_recorded_for_the_environment(tmp_path: Path) -> None:
    problems = _problems(tmp_path / "kb", {"1_MLP": PLAIN, "2_Mamba": NEEDS_EINOPS, "3_Conv": PLAIN})
    store = ResultStore(tmp_path / "out")
    old_env = failed_row(problems[0], "run", "error", "ModuleNotFoundError: No module named 'chromadb'")
    own_requirement = failed_row(problems[1], "run", "error",
                                 "ModuleNotFoundError: No module named 'kw_test_missing_einops'")
    plain_error = failed_row(problems[2], "run", "error", "RuntimeError: the solver fell over")
    for row in (old_env, own_requirement, plain_error):
        store.write(row)
    assert [r.key for r in store.failed_for_environment()] == ["level3/1_MLP"]
    assert store.finished().keys() == {"level3/2_Mamba", "level3/3_Conv"}  # the problems' own failures stay
    solved: list[str] = []
    run_problems(problems, store, lambda p, lane, stop: solved.append(p.key) or _row(p, lane), [Lane("cpu")],
                 mode="run")
    assert solved == ["level3/1_MLP"] and store.failed_for_environment() == []


def test_the_problem_process_reports_the_module_it_could_not_import(tmp_path: Path) -> None:
    outcome = run_in_child(bench_children.import_missing, ("kw_test_missing_dep",), log_path=tmp_path / "p.log")
    assert (outcome.failure, outcome.missing_module) == ("raised", "kw_test_missing_dep")
    assert any(f.endswith("bench_children.py") for f in outcome.import_files)
    assert "No module named 'kw_test_missing_dep'" in (tmp_path / "p.log").read_text()  # its traceback, in its log


@pytest.mark.parametrize(("outcome", "expect"), [
    # kernelwright's own import in the problem's process: the environment's (torch too, though problems import it)
    (ChildOutcome(None, "raised", "ModuleNotFoundError: No module named 'chromadb'", 5.0, None, "chromadb",
                  ("/site/kernelwright/graphs/run.py",)), "environment"),
    (ChildOutcome(None, "raised", "ModuleNotFoundError: No module named 'torch'", 5.0, None, "torch",
                  ("/site/kernelwright/eval/kernelbench/full_job.py",)), "environment"),
    # the problem's own import, wrapped as a load error by the loader
    (ChildOutcome(None, "raised", "p.py:2: importing the problem file raised ModuleNotFoundError: No module named "
                                  "'kw_test_missing_einops'", 5.0, "load"), "missing_module"),
    (ChildOutcome(None, "crash", "the problem's process exited with status 1: ModuleNotFoundError: No module named "
                                 "'chromadb'", 5.0), "environment"),
    (ChildOutcome(None, "raised", "RuntimeError: boom", 5.0), "error"),
])
def test_the_full_job_tells_the_problems_import_from_kernelwrights(tmp_path: Path, monkeypatch, outcome: ChildOutcome,
                                                                   expect: str) -> None:
    (problem,) = _problems(tmp_path / "kb", {"1_Mamba": NEEDS_EINOPS})
    monkeypatch.setattr(full_job, "run_in_child", lambda *args, **kwargs: outcome)
    job = SimpleNamespace(timeout_s=None, precision="strict")  # all the solver reads of its job around the child
    solve = full_job.graph_solver(job, tmp_path / "out")  # type: ignore[arg-type]
    try:
        if expect == "environment":
            with pytest.raises(EnvironmentFailure) as info:
                solve(problem, Lane("gpu0", "0"), threading.Event())
            assert info.value.problem == "level3/1_Mamba" and missing_module(outcome.message) in str(info.value)
        else:
            row = solve(problem, Lane("gpu0", "0"), threading.Event())
            assert (row.status, row.failure) == ("failed", expect)
    finally:
        solve.close()  # the lane's next problem's process, started and waiting


def test_a_problem_files_imports_are_read_without_running_it(tmp_path: Path) -> None:
    path = tmp_path / "p.py"
    path.write_text("import torch.nn as nn\nfrom einops import rearrange\nfrom . import sibling\nraise SystemExit\n")
    assert problem_imports(path) == {"torch", "einops"}
    assert missing_module("ModuleNotFoundError: No module named 'chromadb.api'") == "chromadb.api"
    assert missing_module("RuntimeError: No module named 'x' in this message") is None
