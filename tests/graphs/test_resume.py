"""A run killed in the middle of evaluating a generation resumes without evaluating anything twice."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch.nn as nn
from langgraph.checkpoint.sqlite import SqliteSaver

from kernelwright.graphs.optimize import build_optimize_graph
from kernelwright.run import LLMRunError, RunError, optimize
from support.graph_fakes import answer, scripted
from support.graph_run import run
from support.paths import PROBLEMS, TESTS


def test_kill_mid_generation_then_resume(tmp_path: Path) -> None:
    runs, log = tmp_path / "runs", tmp_path / "evaluated.log"
    # tests/ is the working directory so that `-m support.graph_run` finds the support package
    killed = subprocess.run([sys.executable, "-m", "support.graph_run", str(runs), "r1", str(log),
                             "--crash-after", "2"], cwd=TESTS, capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert len(log.read_text().splitlines()) == 2  # two of generation 0's three candidates were evaluated
    conn = sqlite3.connect(runs / "r1" / "checkpoints.sqlite")
    try:  # the kill came mid-evaluation: the proposals' checkpoint must already be on disk
        saved = build_optimize_graph(checkpointer=SqliteSaver(conn)).get_state({"configurable": {"thread_id": "r1"}})
        assert set(saved.next) == {"evaluate_one"} and len(saved.values["candidates"]) == 3
    finally:
        conn.close()
    # Resume in this process: generation 1's answers come from a new scripted model.
    llm = scripted("VERDICT: fine\nDIRECTIONS:\n- unroll", *(answer(s) for s in (1.5, 1.6, 1.7)))
    result = run(runs, "r1", log, None, True, llm)
    evaluated = log.read_text().splitlines()
    assert len(evaluated) == len(set(evaluated)) == 6, evaluated  # each candidate exactly once, none lost
    assert result.state["generation"] == 2 and result.best["speedup_vs_eager"] == 1.7
    assert all(r["status"] == "passed" for r in result.state["candidates"].values())


def test_resume_of_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no run 'nope'"):
        optimize(PROBLEMS / "relu_affine.py", runs_dir=tmp_path, resume="nope", llm=object(),
                 evaluator=object())


def test_llm_outage_stops_the_run_with_its_id_then_resume_finishes(tmp_path: Path) -> None:
    from kernelwright.agents.context import RunSettings
    from kernelwright.agents.llm import ModelSettings
    from kernelwright.eval.fakes.replay_server import ReplayRule, ReplayServer
    from support.graph_run import LoggingEvaluator

    problem = PROBLEMS / "relu_affine.py"
    settings = RunSettings(generations=2, candidates_per_generation=1, screen=False, profile=False, critic=False)
    log = tmp_path / "evaluated.log"
    outage = ReplayRule("service unavailable", repeat=True, status=503)
    with ReplayServer([ReplayRule(answer(1.3)), outage]) as server:  # one answer, then HTTP 503 for good
        model = ModelSettings(model="replay", base_url=server.base_url, max_retries=0)
        with pytest.raises(LLMRunError) as info:
            optimize(problem, runs_dir=tmp_path, run_id="r9", settings=settings, model=model,
                     evaluator=LoggingEvaluator(log, None), offline=False)
    assert isinstance(info.value, RunError) and info.value.details["run_id"] == "r9"
    assert info.value.message == (
        f"run r9 stopped in node 'mutate': the LLM 'replay' at {server.base_url} failed with a server error: HTTP 503, "
        f"service unavailable (1 attempt). Everything evaluated so far is saved; once the LLM answers, continue with "
        f"`kernelwright run {problem} --resume r9 --runs-dir {tmp_path}`")
    assert len(log.read_text().splitlines()) == 1
    with ReplayServer([ReplayRule(answer(1.8))]) as server:  # a new endpoint, named explicitly, replaces the recorded
        model = ModelSettings(model="replay", base_url=server.base_url, max_retries=0)
        result = optimize(problem, runs_dir=tmp_path, resume="r9", settings=settings, model=model,
                          evaluator=LoggingEvaluator(log, None), offline=False)
    assert result.best["speedup_vs_eager"] == 1.8 and len(log.read_text().splitlines()) == 2


class Scale(nn.Module):
    def forward(self, x):
        return x * 3.0


def test_public_optimize_takes_a_module_and_reports_the_best_kernel(tmp_path: Path) -> None:
    import torch

    import kernelwright
    from kernelwright.agents.context import RunSettings
    from support.graph_fakes import FakeEvaluator

    result = kernelwright.optimize(Scale, example_inputs=[torch.randn(8, 8)], runs_dir=tmp_path,
                                   llm=scripted(answer(1.6)), evaluator=FakeEvaluator(), offline=False,
                                   settings=RunSettings(generations=1, candidates_per_generation=1, screen=False,
                                                        profile=False))
    assert result.speedup_vs_eager == 1.6 and result.best_kernel.exists() and result.run_dir.is_dir()
    with pytest.raises(TypeError, match="example_inputs"):
        kernelwright.optimize(Scale)
