"""The bench's bookkeeping: resume skips finished problems, a failing problem is recorded and the bench goes on,
rows from several GPU lanes land in one results folder, and a problem's own process reports crashes and
timeouts as rows."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kernelwright.eval.kernelbench.child import StandbyChild, run_in_child
from kernelwright.eval.kernelbench.problems import BenchProblem, find_problems
from kernelwright.eval.kernelbench.rows import ProblemRow, ResultStore
from kernelwright.eval.kernelbench.runner import BenchEvent, Interrupted, Lane, run_problems
from kernelwright.tools.errors import InputFileError, ProblemError
from support import bench_children


def _problems(root: Path, names: dict[str, list[str]]) -> list[BenchProblem]:
    for level, stems in names.items():
        (root / level).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            (root / level / f"{stem}.py").write_text("# a problem the fake solvers never read\n")
    return find_problems([root / level for level in names])


def _row(problem: BenchProblem, lane: Lane, speedup: float = 1.5) -> ProblemRow:
    return ProblemRow(problem.key, problem.level, str(problem.path), "run", "verified", candidate=True, compiled=True,
                      verified=True, speedup_vs_eager=speedup, gpu=lane.gpu)


def test_problems_are_found_in_level_order_with_numbers_compared_as_numbers(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"level2": ["10_b", "2_a"], "level10": ["1_c"], "level1": ["1_d"]})
    assert [p.key for p in problems] == ["level1/1_d", "level2/2_a", "level2/10_b", "level10/1_c"]
    assert problems[1].run_id == "level2-2_a"
    assert [p.key for p in find_problems([tmp_path])] == [p.key for p in problems]  # a checkout: its levelN folders


@pytest.mark.parametrize(("make", "says"), [
    (lambda root: root / "missing", "no such problem file or folder"),
    (lambda root: (root / "empty").mkdir() or root / "empty", "no problem files (*.py)"),
    (lambda root: (root / "notes.txt").write_text("x") and root / "notes.txt", "must be a Python file"),
])
def test_a_path_that_holds_no_problem_is_a_typed_error_naming_it(tmp_path: Path, make, says: str) -> None:
    path = make(tmp_path)
    with pytest.raises(InputFileError) as info:
        find_problems([path])
    assert str(info.value).startswith(f"{path}: ") and says in str(info.value)


def test_resume_skips_finished_problems_and_never_redoes_them(tmp_path: Path) -> None:
    problems = _problems(tmp_path / "kb", {"level1": ["1_a", "2_b"], "level2": ["1_c"]})
    store = ResultStore(tmp_path / "out")
    earlier = _row(problems[0], Lane("gpu0", "0"), speedup=9.0)
    store.write(earlier)
    solved: list[str] = []
    events: list[BenchEvent] = []

    def solve(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
        solved.append(problem.key)
        return _row(problem, lane)

    result = run_problems(problems, store, solve, [Lane("gpu0", "0")], mode="run", on_event=events.append)
    assert solved == ["level1/2_b", "level2/1_c"]
    assert [e.kind for e in events if e.problem.key == "level1/1_a"] == ["skipped"]
    assert result.rows[0] == earlier and result.solved == 2 and not result.interrupted
    again = run_problems(problems, store, solve, [Lane("gpu0", "0")], mode="run")
    assert again.solved == 0 and solved == ["level1/2_b", "level2/1_c"]  # a second resume solves nothing
    assert {r.key for r in again.rows} == {p.key for p in problems}


def test_a_problem_asked_again_keeps_its_old_row_until_the_new_one_replaces_it(tmp_path: Path) -> None:
    problems = _problems(tmp_path / "kb", {"level1": ["1_a", "2_b"]})
    store = ResultStore(tmp_path / "out")
    for problem in problems:
        store.write(_row(problem, Lane("gpu0", "0"), speedup=9.0))
    stop = threading.Event()

    def stopped(problem: BenchProblem, lane: Lane, stop_: threading.Event) -> ProblemRow | None:
        stop.set()
        return None  # stopped before it finished: no new row

    run_problems(problems, store, stopped, [Lane("gpu0", "0")], mode="run", stop=stop, again=frozenset({"level1/2_b"}))
    assert store.finished()["level1/2_b"].speedup_vs_eager == 9.0  # a stop loses nothing
    solved: list[str] = []

    def solve(problem: BenchProblem, lane: Lane, stop_: threading.Event) -> ProblemRow:
        solved.append(problem.key)
        return _row(problem, lane, speedup=1.1)

    result = run_problems(problems, store, solve, [Lane("gpu0", "0")], mode="run", again=frozenset({"level1/2_b"}))
    assert solved == ["level1/2_b"] and result.solved == 1
    assert store.finished()["level1/2_b"].speedup_vs_eager == 1.1 and store.finished()["level1/1_a"].speedup_vs_eager == 9.0


def test_a_failing_problem_is_recorded_with_its_reason_and_the_bench_goes_on(tmp_path: Path) -> None:
    problems = _problems(tmp_path / "kb", {"level1": ["1_crash", "2_bad", "3_fine"]})
    store = ResultStore(tmp_path / "out")

    def solve(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
        if "crash" in problem.key:
            raise RuntimeError("the solver fell over")
        if "bad" in problem.key:
            raise ProblemError("problem file defines no top-level class `Model`", where=str(problem.path))
        return _row(problem, lane)

    result = run_problems(problems, store, solve, [Lane("cpu")], mode="run", precision="kernelbench")
    crash, bad, fine = result.rows
    assert (crash.status, crash.failure, crash.reason) == ("failed", "error", "RuntimeError: the solver fell over")
    assert (bad.status, bad.failure) == ("failed", "bad_problem") and "defines no top-level class `Model`" in bad.reason
    assert crash.precision == "kernelbench" and fine.verified
    assert {r.key for r in store.rows()} == {p.key for p in problems}  # every one has its result file
    assert ResultStore(tmp_path / "out").finished().keys() == {p.key for p in problems}  # failures are finished


def test_rows_from_two_gpu_lanes_merge_into_one_results_folder(tmp_path: Path) -> None:
    problems = _problems(tmp_path / "kb", {"level1": [f"{i}_p" for i in range(1, 7)]})
    store = ResultStore(tmp_path / "out")
    store.write(_row(problems[0], Lane("gpu7", "7")))  # measured by an earlier bench on another card
    running: set[str] = set()
    overlap = threading.Event()
    lock = threading.Lock()

    def solve(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
        with lock:
            running.add(lane.name)
            if len(running) == 2:
                overlap.set()
        time.sleep(0.05)
        with lock:
            running.discard(lane.name)
        return _row(problem, lane)

    lanes = [Lane("gpu0", "0", (0,)), Lane("gpu1", "1", (1,))]
    result = run_problems(problems, store, solve, lanes, mode="run")
    assert [r.key for r in result.rows] == [p.key for p in problems]  # one row each, in problem order
    assert result.rows[0].gpu == "7" and {r.gpu for r in result.rows[1:]} == {"0", "1"}  # both lanes took work
    assert overlap.is_set()  # the lanes ran at once
    assert sorted(r.key for r in store.rows()) == sorted(p.key for p in problems)


def test_an_llm_outage_leaves_its_problem_to_the_next_resume_and_a_stop_leaves_no_row(tmp_path: Path) -> None:
    problems = _problems(tmp_path / "kb", {"level1": ["1_llm", "2_stopped"]})
    store = ResultStore(tmp_path / "out")

    def first(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
        if "stopped" in problem.key:
            raise Interrupted(problem.key)
        return ProblemRow(problem.key, problem.level, str(problem.path), "run", "failed", reason="LLM unreachable",
                          failure="llm")

    run_problems(problems, store, first, [Lane("cpu")], mode="run")
    assert [r.failure for r in store.rows()] == ["llm"] and store.finished() == {}
    solved: list[str] = []
    run_problems(problems, store, lambda p, lane, stop: solved.append(p.key) or _row(p, lane), [Lane("cpu")], mode="run")
    assert solved == ["level1/1_llm", "level1/2_stopped"]


def test_a_problem_process_returns_its_result_on_its_gpu_and_logs_to_its_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "p.log"
    outcome = run_in_child(bench_children.report_environment, ("x",), log_path=log, gpu="3")
    assert outcome.failure is None and outcome.result is not None
    assert outcome.result["tag"] == "x" and outcome.result["gpu"] == "3"
    assert "child x says hello" in log.read_text()


def test_a_problem_process_that_dies_times_out_raises_or_is_stopped_says_so(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    crashed = run_in_child(bench_children.exit_hard, (7,), log_path=log)
    assert crashed.failure == "crash" and crashed.message == "the problem's process exited with status 7: about to die"
    timed_out = run_in_child(bench_children.sleep, (60,), log_path=log, timeout_s=1.0)
    assert timed_out.failure == "timeout" and "killed after 1 s" in timed_out.message and timed_out.seconds < 30
    raised = run_in_child(bench_children.raise_problem_error, ("get_inputs() raised",), log_path=log)
    assert (raised.failure, raised.error_kind) == ("raised", "load") and "get_inputs() raised" in raised.message
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    stopped = run_in_child(bench_children.sleep, (60,), log_path=log, stop=stop)
    assert stopped.failure == "stopped" and stopped.seconds < 30


def test_a_standby_child_runs_the_work_it_is_handed_with_its_preload_done(tmp_path: Path) -> None:
    standby = StandbyChild(gpu="3", preload=("kernelwright.tools.errors",))
    outcome = run_in_child(bench_children.report_loaded, ("kernelwright.tools.errors",), log_path=tmp_path / "p.log",
                           gpu="3", standby=standby)
    assert outcome.failure is None and outcome.result == {"loaded": True, "pid": standby.proc.pid, "gpu": "3"}
    assert not standby.proc.is_alive()
    fresh = run_in_child(bench_children.report_loaded, ("kernelwright.tools.errors",), log_path=tmp_path / "p.log")
    assert fresh.result is not None and fresh.result["loaded"] is False  # the check can tell: a fresh child has not


def test_a_standby_child_started_for_another_gpu_is_stopped_not_used(tmp_path: Path) -> None:
    standby = StandbyChild(gpu="1")
    outcome = run_in_child(bench_children.report_loaded, ("json",), log_path=tmp_path / "p.log", gpu="3",
                           standby=standby)
    assert outcome.result is not None and outcome.result["pid"] != standby.proc.pid and outcome.result["gpu"] == "3"
    assert not standby.proc.is_alive()


def test_a_standby_child_past_its_time_limit_is_killed(tmp_path: Path) -> None:
    standby = StandbyChild()
    timed_out = run_in_child(bench_children.sleep, (60,), log_path=tmp_path / "p.log", timeout_s=1.0, standby=standby)
    assert timed_out.failure == "timeout" and timed_out.seconds < 30 and not standby.proc.is_alive()


def test_a_standby_child_never_handed_work_stops_on_close() -> None:
    standby = StandbyChild(preload=("json",))
    standby.close()
    assert not standby.proc.is_alive()
