"""Several lanes per GPU (`--lanes-per-gpu K`): K lanes on each GPU, named gpu<g>.<i> (one lane keeps gpu<g>), each
on its own share of the cores, and every GPU lane's problem processes get the host's GPU gate directory in their
own environment (never the bench's); a standby started with other gates is not used. K is no search setting: a
resume may change it."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kernelwright.eval.bench import gpu_split
from kernelwright.eval.kernelbench import bench, full_job
from kernelwright.eval.kernelbench.bench import BenchOptions, _lanes, plan_bench, run_bench
from kernelwright.eval.kernelbench.child import ChildOutcome, StandbyChild, run_in_child
from kernelwright.eval.kernelbench.full_job import RunJob
from kernelwright.eval.kernelbench.problems import BenchProblem
from kernelwright.eval.kernelbench.rows import ProblemRow
from kernelwright.eval.kernelbench.runner import Interrupted, Lane
from kernelwright.graphs.run import RunSetup
from kernelwright.tools.measure.gpu_gate import GATE_ENV
from support import bench_children
from support.paths import ROOT


@pytest.fixture(autouse=True)
def _temp_and_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the host gate directory goes there
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(gpu_split.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    for var in ("KERNELWRIGHT_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def _gates(tmp_path: Path) -> str:
    return str(tmp_path / "tmp" / f"kernelwright-gpu-gate-{os.getuid()}")


def test_two_lanes_on_each_of_two_gpus(tmp_path: Path) -> None:
    lanes = _lanes(BenchOptions(tmp_path / "out", lanes_per_gpu=2), lambda: ["0", "1"])
    assert [(lane.name, lane.gpu) for lane in lanes] == [("gpu0.1", "0"), ("gpu0.2", "0"), ("gpu1.1", "1"),
                                                         ("gpu1.2", "1")]
    cores = [set(lane.cores or ()) for lane in lanes]
    assert all(len(c) == 2 for c in cores) and len(set().union(*cores)) == 8  # disjoint shares of the 8 cores
    assert {lane.gate_dir for lane in lanes} == {_gates(tmp_path)} and Path(_gates(tmp_path)).is_dir()


def test_one_lane_per_gpu_runs_as_before_without_a_gate(tmp_path: Path) -> None:
    lanes = _lanes(BenchOptions(tmp_path / "out"), lambda: ["0", "1"])
    assert [(lane.name, lane.gpu, lane.cores) for lane in lanes] == [("gpu0", "0", (0, 1, 2, 3)),
                                                                      ("gpu1", "1", (4, 5, 6, 7))]
    assert {lane.gate_dir for lane in lanes} == {None}  # the default path is unchanged until lanes share a GPU
    assert [lane.gate_dir for lane in _lanes(BenchOptions(tmp_path / "o", lanes_per_gpu=3), lambda: [])] == [None]
    translate = _lanes(BenchOptions(tmp_path / "o", translate_only=True, jobs=2, lanes_per_gpu=3), lambda: ["0"])
    assert [(lane.name, lane.gate_dir) for lane in translate] == [("cpu0", None), ("cpu1", None)]


def test_the_problem_process_gets_the_gates_in_its_own_environment(tmp_path: Path) -> None:
    gates, before = str(tmp_path / "gates"), os.environ.get(GATE_ENV)
    outcome = run_in_child(bench_children.report_gate_env, (), log_path=tmp_path / "p.log", gpu="3", gate_dir=gates)
    assert outcome.result is not None and (outcome.result["gate"], outcome.result["gpu"]) == (gates, "3")
    assert os.environ.get(GATE_ENV) == before  # set in the child, never in the bench's process
    plain = run_in_child(bench_children.report_gate_env, (), log_path=tmp_path / "p.log", gpu="3")
    assert plain.result is not None and plain.result["gate"] == before  # none given: the child's as inherited


def test_a_standby_serves_only_its_gpu_cores_and_gates(tmp_path: Path) -> None:
    gates = str(tmp_path / "gates")
    standby = StandbyChild(gpu="3", gate_dir=gates)
    try:
        assert standby.serves("3", None, gates)
        assert not standby.serves("3", None) and not standby.serves("3", None, gates + "x")
        assert not standby.serves("4", None, gates)
        outcome = run_in_child(bench_children.report_gate_env, (), log_path=tmp_path / "p.log", gpu="3",
                               gate_dir=gates, standby=standby)
    finally:
        standby.close()
    assert outcome.result is not None and outcome.result["pid"] == standby.proc.pid and outcome.result["gate"] == gates
    other = StandbyChild(gpu="3", gate_dir=gates)
    moved = run_in_child(bench_children.report_gate_env, (), log_path=tmp_path / "p.log", gpu="3",
                         gate_dir=str(tmp_path / "elsewhere"), standby=other)
    assert moved.result is not None and moved.result["pid"] != other.proc.pid  # a fresh child, with the gates asked
    assert moved.result["gate"] == str(tmp_path / "elsewhere") and not other.proc.is_alive()


def test_the_graph_solver_hands_each_lane_its_gates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[dict[str, Any]] = []
    ran: list[dict[str, Any]] = []

    class FakeStandby:
        def __init__(self, *args: Any, **kwargs: Any):
            started.append({"args": args, **kwargs})

        def close(self) -> None:
            pass

    def fake_run(*args: Any, **kwargs: Any) -> ChildOutcome:
        ran.append(kwargs)
        return ChildOutcome(None, "stopped")

    monkeypatch.setattr(full_job, "StandbyChild", FakeStandby)
    monkeypatch.setattr(full_job, "run_in_child", fake_run)
    solver = full_job.GraphSolver(RunJob(RunSetup()), tmp_path)
    problem = BenchProblem("misc/tiny_relu", "misc", ROOT / "eval" / "problems" / "tiny_relu.py")
    with pytest.raises(Interrupted):
        solver(problem, Lane("gpu0.2", "0", (2, 3), gate_dir="/gates"), threading.Event())
    assert started[0]["args"][:2] == ("0", (2, 3)) and started[0]["gate_dir"] == "/gates"
    assert (ran[0]["gpu"], ran[0]["cores"], ran[0]["gate_dir"]) == ("0", (2, 3), "/gates")


def test_a_resume_may_change_the_lanes_per_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    solved: list[tuple[str, str]] = []

    def fake_solver(job: RunJob, out: Path):
        def solve(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
            solved.append((problem.key, lane.name))
            return ProblemRow(problem.key, problem.level, str(problem.path), "run", "verified", candidate=True,
                              compiled=True, verified=True, speedup_vs_eager=1.5, gpu=lane.gpu, precision=job.precision)
        return solve

    monkeypatch.setattr(bench, "graph_solver", fake_solver)
    (tmp_path / "kb" / "level1").mkdir(parents=True)
    paths = [tmp_path / "kb" / "level1" / f"{stem}.py" for stem in ("1_a", "2_b")]
    for path in paths:
        path.write_text("# a problem the fake solver never reads\n")
    out = tmp_path / "out"
    run_bench(plan_bench(paths[:1], BenchOptions(out), RunJob(RunSetup()), visible=lambda: ["0"]))
    manifest = json.loads((out / "bench.json").read_text())
    plan = plan_bench(paths, BenchOptions(out, resume=True, lanes_per_gpu=2), RunJob(RunSetup()), visible=lambda: ["0"])
    assert [lane.name for lane in plan.lanes] == ["gpu0.1", "gpu0.2"]
    # each lane's CPUs are named (whole physical cores: gpu_split.cpu_shares), as the kernel writes CPU lists
    shown = replace(plan, lanes=[Lane("gpu0.1", "0", (0, 1, 2, 3, 8, 9, 10, 11)), Lane("gpu0.2", "0", (4, 5, 7, 12))])
    assert shown.start_line().endswith(f"on gpu0.1 (CPUs 0-3,8-11), gpu0.2 (CPUs 4-5,7,12); results in {out}")
    assert replace(plan, lanes=[Lane("gpu0", "0", (0, 1))]).start_line().endswith(f"on gpu0; results in {out}")
    run_bench(plan)
    assert solved[0] == ("level1/1_a", "gpu0") and solved[1][0] == "level1/2_b" and solved[1][1].startswith("gpu0.")
    assert json.loads((out / "bench.json").read_text()) == {**manifest, "paths": [str(p) for p in paths]}
    assert "lanes" not in json.dumps(manifest)  # not recorded: where problems run is no search setting
