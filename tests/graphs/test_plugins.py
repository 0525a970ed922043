"""User agents attach to the graph through the builder API or an entry point, without editing kernelwright."""

from __future__ import annotations

import importlib.util
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from kernelwright.graphs.optimize import build_optimize_graph
from kernelwright.graphs.plugins import AgentPlugin, PluginError, discover_plugins
from support.graph_fakes import PROBLEM, FakeEvaluator, answer
from support.paths import ROOT


def _example_plugin_module():
    spec = importlib.util.spec_from_file_location("static_lint", ROOT / "examples" / "plugins" / "static_lint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_plugin_runs_inside_the_graph(tmp_path: Path) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    from kernelwright.agents.context import KContext, RunSettings
    from kernelwright.graphs.state import Budget, make_initial_state

    plugin = _example_plugin_module().static_lint_plugin()
    suspicious = answer(1.3).replace("return x", "return torch.softmax(x, -1)")
    llm = GenericFakeChatModel(messages=iter([AIMessage(answer(1.1)), AIMessage(suspicious)]))
    ctx = KContext(llm=llm, evaluator=FakeEvaluator(), run_dir=tmp_path,
                   settings=RunSettings(generations=1, candidates_per_generation=2, screen=False, profile=False))
    graph = build_optimize_graph(checkpointer=InMemorySaver(), plugins=[plugin])
    assert "translate --> static_lint" in graph.get_graph().draw_mermaid(with_styles=False)
    final = graph.invoke(make_initial_state("p", str(PROBLEM), Budget(generations=1, candidates=10, wall_s=0, tokens=0)),
                         context=ctx, config={"configurable": {"thread_id": "p"}})
    lints = sorted(r["lint"] for r in final["candidates"].values())
    assert lints == ["clean", "torch.softmax"]


def test_plugins_chain_in_order_at_their_points() -> None:
    def noop(state, runtime):
        return {}

    graph = build_optimize_graph(plugins=[AgentPlugin("tune", noop, "after_evaluate"),
                                          AgentPlugin("sanitize", noop, "after_evaluate")])
    mermaid = graph.get_graph().draw_mermaid(with_styles=False)
    assert "after_evaluate&nbsp; .-> tune" in mermaid and "tune --> sanitize" in mermaid
    assert "sanitize --> profile" in mermaid and "profile --> select" in mermaid


def test_entry_point_discovery_and_errors() -> None:
    good = EntryPoint(name="static_lint", value="static_lint:static_lint_plugin", group="kernelwright.agents")
    import sys

    sys.modules["static_lint"] = _example_plugin_module()
    try:
        (plugin,) = discover_plugins(lambda: [good])
        assert plugin.name == "static_lint" and plugin.attach == "after_propose"
        broken = EntryPoint(name="broken", value="no_such_module_xyz:thing", group="kernelwright.agents")
        with pytest.raises(PluginError, match="'broken'.*failed to load"):
            discover_plugins(lambda: [broken])
    finally:
        sys.modules.pop("static_lint", None)
    with pytest.raises(PluginError, match="reserved"):
        build_optimize_graph(plugins=[AgentPlugin("screen", lambda s, r: {}, "after_propose")])
    with pytest.raises(PluginError, match="attach must be"):
        build_optimize_graph(plugins=[AgentPlugin("x", lambda s, r: {}, "before_everything")])  # type: ignore[arg-type]
