"""The optimisation graph: translate -> evaluate -> select -> critique -> mutate, by generation.

Evaluation is sequential for now; the Send fan-out, profiler and crossover
nodes of issue 4 attach here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from kernelwright.agents.critic import critique
from kernelwright.agents.translator import mutate, translate
from kernelwright.graphs.context import KContext
from kernelwright.graphs.plugins import AgentPlugin, chains
from kernelwright.graphs.state import KState


def evaluate(state: KState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """Run the harness on every pending candidate; its verdict becomes the record's status.

    Each report is written next to its candidate as soon as it exists, so a run
    killed mid-node and resumed from its checkpoint evaluates no candidate twice.
    """
    updates: dict[str, Any] = {}
    for cid, record in (state.get("candidates") or {}).items():
        if record.get("status") != "pending":
            continue
        report_path = Path(record["source_path"]).with_name("report.json")
        if report_path.exists():
            report = json.loads(report_path.read_text())
        else:
            report = runtime.context.evaluator.evaluate(Path(record["source_path"]))
            tmp = report_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(report, default=str))
            os.replace(tmp, report_path)  # atomic: a half-written report never counts
        updates[cid] = {"status": report.get("status", "error"), "reason": report.get("reason"),
                        "speedup_vs_eager": report.get("speedup_vs_eager"),
                        "speedup_vs_compile": report.get("speedup_vs_compile"), "report_path": str(report_path)}
    return {"candidates": updates, "spent": {"candidates": len(updates)}}


def select(state: KState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """Keep the fastest verified candidates (distinct by id); advance the generation."""
    passed = [r for r in (state.get("candidates") or {}).values()
              if r.get("status") == "passed" and r.get("speedup_vs_eager")]
    passed.sort(key=lambda r: r["speedup_vs_eager"], reverse=True)  # type: ignore[arg-type, return-value]
    elite = [r["id"] for r in passed[: runtime.context.settings.population]]
    return {"population": elite, "best_id": elite[0] if elite else state.get("best_id"),
            "generation": state.get("generation", 0) + 1, "spent": {"generations": 1}}


def next_step(state: KState, runtime: Runtime[KContext]) -> Literal["critique", "mutate", "__end__"]:
    budget, spent = state.get("budget") or {}, state.get("spent") or {}
    if spent.get("generations", 0) >= budget.get("generations", 1):
        return END
    if budget.get("candidates") and spent.get("candidates", 0) >= budget["candidates"]:
        return END
    return "critique" if runtime.context.settings.critic and state.get("best_id") else "mutate"


def build_optimize_graph(checkpointer: Any = None, plugins: Sequence[AgentPlugin] = ()) -> Any:
    """The compiled graph; `plugins` are inserted at their attach points, in order."""
    grouped = chains(plugins)
    builder = StateGraph(KState, context_schema=KContext)
    builder.add_node("translate", translate)
    builder.add_node("mutate", mutate)
    builder.add_node("evaluate", evaluate)
    builder.add_node("select", select)
    builder.add_node("critique", critique)
    for plugin in plugins:
        builder.add_node(plugin.name, plugin.node)
    builder.add_edge(START, "translate")
    after_propose = [p.name for p in grouped["after_propose"]] + ["evaluate"]
    for source in ("translate", "mutate"):
        builder.add_edge(source, after_propose[0])
    _chain(builder, after_propose)
    _chain(builder, ["evaluate", *[p.name for p in grouped["after_evaluate"]], "select"])
    builder.add_conditional_edges("select", next_step, ["critique", "mutate", END])
    builder.add_edge("critique", "mutate")
    return builder.compile(checkpointer=checkpointer)


def _chain(builder: StateGraph, names: list[str]) -> None:
    for a, b in zip(names, names[1:]):
        builder.add_edge(a, b)
