"""The optimisation graph end to end on CPU: scripted chat models, a fake evaluator where a GPU would be."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from kernelwright.agents.llm import ModelSettings, make_chat_model
from kernelwright.eval.replay_server import ReplayRule, ReplayServer
from kernelwright.graphs.context import KContext, RunSettings
from kernelwright.graphs.optimize import build_optimize_graph
from kernelwright.graphs.state import Budget, make_initial_state

PROBLEM = Path(__file__).parent / "fixtures" / "problems" / "relu_affine.py"


CRITIC = "VERDICT: memory-bound at 40% of DRAM bandwidth\nDIRECTIONS:\n- vectorize loads to float4\n- fuse the two passes"


def answer(speed: float) -> str:
    return (f"```python\nimport torch.nn as nn\nSPEED = {speed}\n\n\nclass ModelNew(nn.Module):\n"
            f"    def forward(self, x):\n        return x\n```")


class FakeEvaluator:
    """Reads the SPEED the scripted answer put in the file; stands in for the GPU harness."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def evaluate(self, candidate: Any) -> dict[str, Any]:
        text = Path(candidate).read_text()
        self.seen.append(text)
        speed = float(re.search(r"SPEED = ([\d.]+)", text).group(1))
        if speed == 0:
            return {"status": "rejected", "reason": "wrong_output"}
        return {"status": "passed", "speedup_vs_eager": speed, "speedup_vs_compile": speed / 1.2}


def run_graph(llm: Any, tmp_path: Path, *, generations: int = 2, per_gen: int = 2) -> tuple[dict, FakeEvaluator]:
    evaluator = FakeEvaluator()
    ctx = KContext(llm=llm, evaluator=evaluator, run_dir=tmp_path / "run", model_name="scripted",
                   settings=RunSettings(generations=generations, candidates_per_generation=per_gen, max_repairs=1))
    graph = build_optimize_graph(checkpointer=InMemorySaver())
    state = make_initial_state("r1", str(PROBLEM), Budget(generations=generations, candidates=100, wall_s=600.0, tokens=10**6))
    final = graph.invoke(state, context=ctx, config={"configurable": {"thread_id": "r1"}})
    return final, evaluator


def test_generations_of_translate_then_mutate_keep_the_fastest(tmp_path: Path) -> None:
    script = [AIMessage(answer(1.2)), AIMessage("sorry, no code"), AIMessage(answer(0)),  # gen 0 (one repaired)
              AIMessage(CRITIC),  # the critic on gen 0's best
              AIMessage(answer(1.9)), AIMessage(answer(1.9))]  # gen 1: the same kernel twice
    final, evaluator = run_graph(GenericFakeChatModel(messages=iter(script)), tmp_path)
    records = final["candidates"]
    assert sorted(r["status"] for r in records.values()) == ["passed", "passed", "rejected"]
    best = records[final["best_id"]]
    assert best["speedup_vs_eager"] == 1.9 and best["agent"] == "mutator" and best["parent_ids"]
    parent = records[best["parent_ids"][0]]
    assert parent["speedup_vs_eager"] == 1.2
    assert parent["directions"] == ["vectorize loads to float4", "fuse the two passes"]
    assert parent["critique"].startswith("memory-bound")
    assert final["generation"] == 2 and final["spent"]["candidates"] == 3 == len(evaluator.seen)
    assert all(Path(r["source_path"]).exists() for r in records.values())


def test_unrepairable_answers_become_errors_not_crashes(tmp_path: Path) -> None:
    script = [AIMessage("no code"), AIMessage("still none"), AIMessage(answer(1.1)), AIMessage(CRITIC),
              AIMessage(answer(1.3)), AIMessage(answer(1.4))]
    final, _ = run_graph(GenericFakeChatModel(messages=iter(script)), tmp_path, generations=2, per_gen=2)
    assert any(e["details"]["problem"] == "no_code" for e in final["errors"])
    assert final["candidates"][final["best_id"]]["speedup_vs_eager"] == 1.4


def test_real_openai_client_over_http_with_temperature_schedule(tmp_path: Path) -> None:
    rules = [ReplayRule(answer(1.1)), ReplayRule(answer(1.5)), ReplayRule(answer(1.6))]
    with ReplayServer(rules) as server:
        llm = make_chat_model(ModelSettings(model="replay", base_url=server.base_url), env={})
        final, _ = run_graph(llm, tmp_path, generations=1, per_gen=3)
        temperatures = [r.get("temperature") for r in server.requests]
    assert temperatures == [0.2, 0.7, 1.0]
    assert "Target GPU" in server.requests[0]["messages"][-1]["content"]
    assert final["candidates"][final["best_id"]]["speedup_vs_eager"] == 1.6


def test_graph_shape() -> None:
    mermaid = build_optimize_graph().get_graph().draw_mermaid(with_styles=False)
    for edge in ("__start__ --> translate", "translate --> evaluate", "mutate --> evaluate", "evaluate --> select"):
        assert edge in mermaid, mermaid
    assert "select -.-> mutate" in mermaid and "select -.-> __end__" in mermaid
    assert "select -.-> critique" in mermaid and "critique --> mutate" in mermaid


def test_critique_parsing() -> None:
    from kernelwright.agents.critic import parse_critique

    assert parse_critique(CRITIC) == ("memory-bound at 40% of DRAM bandwidth",
                                      ["vectorize loads to float4", "fuse the two passes"])
    assert parse_critique("no structure at all") == ("", [])
    many = "DIRECTIONS:\n- a\n- b\n* c\n- d"
    assert parse_critique(many)[1] == ["a", "b", "c"]
