"""A run killed in the middle of evaluating a generation resumes without evaluating anything twice."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.sqlite import SqliteSaver

from graph_run_helper import answer, run
from kernelwright.graphs.optimize import build_optimize_graph
from kernelwright.run import RunError, optimize

HERE = Path(__file__).parent


def test_kill_mid_generation_then_resume(tmp_path: Path) -> None:
    runs, log = tmp_path / "runs", tmp_path / "evaluated.log"
    killed = subprocess.run([sys.executable, str(HERE / "graph_run_helper.py"), str(runs), "r1", str(log),
                             "--crash-after", "2"], capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert len(log.read_text().splitlines()) == 2  # two of generation 0's three candidates were evaluated
    conn = sqlite3.connect(runs / "r1" / "checkpoints.sqlite")
    try:  # the kill came mid-"evaluate": translate's checkpoint must already be on disk
        saved = build_optimize_graph(checkpointer=SqliteSaver(conn)).get_state({"configurable": {"thread_id": "r1"}})
        assert saved.next == ("evaluate",) and len(saved.values["candidates"]) == 3
    finally:
        conn.close()
    # Resume in this process: generation 1's answers come from a new scripted model.
    critic = AIMessage("VERDICT: fine\nDIRECTIONS:\n- unroll")
    llm = GenericFakeChatModel(messages=iter([critic] + [AIMessage(answer(s)) for s in (1.5, 1.6, 1.7)]))
    result = run(runs, "r1", log, None, True, llm)
    evaluated = log.read_text().splitlines()
    assert len(evaluated) == len(set(evaluated)) == 6, evaluated  # each candidate exactly once, none lost
    assert result.state["generation"] == 2 and result.best["speedup_vs_eager"] == 1.7
    assert all(r["status"] == "passed" for r in result.state["candidates"].values())


def test_resume_of_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no run 'nope'"):
        optimize(HERE / "fixtures" / "problems" / "relu_affine.py", runs_dir=tmp_path, resume="nope", llm=object(),
                 evaluator=object())
