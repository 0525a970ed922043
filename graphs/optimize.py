"""The optimisation graph, generation by generation:

    describe -> translate -> [plugins] -> screen -> dispatch =Send=> evaluate_one* -> collect
      collect -> repair (rejected candidates, up to K rounds, with diagnostics) -> [plugins] -> screen -> ...
      collect -> [plugins] -> profile -> select -> archive -> critique -> mutate (mutation | crossover) -> ...
      archive -> sanitize_winner -> archive -> END when a budget (generations, candidates, wall time, tokens,
      cost) is reached
    (archive stores the verified kernels in the Chroma archive when one is attached; sanitize_winner runs
    compute-sanitizer memcheck on the best verified kernel, falling back to the next best on memory errors,
    and its archive pass stores the verdicts)

Agent nodes are timed into the run's wall-time budget; the evaluation phase is
timed from dispatch to collect, since its tasks overlap.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any, Protocol

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from kernelwright.agents.context import KContext, RunSettings
from kernelwright.agents.critic import critique, screen
from kernelwright.agents.mutator import mutate, repair
from kernelwright.agents.profiler import profile
from kernelwright.agents.translator import translate
from kernelwright.graphs.archiving import archive
from kernelwright.graphs.evaluation import collect, describe, dispatch, evaluate_one, fan_out
from kernelwright.graphs.nodes import (
    ARCHIVE,
    COLLECT,
    CRITIQUE,
    DESCRIBE,
    DISPATCH,
    EVALUATE_ONE,
    MUTATE,
    PROFILE,
    REPAIR,
    SANITIZE_WINNER,
    SCREEN,
    SELECT,
    TRANSLATE,
)
from kernelwright.graphs.plugins import AgentPlugin, chains
from kernelwright.graphs.sanitizing import sanitize_winner
from kernelwright.graphs.selection import AFTER_EVALUATE, after_collect, next_step, select
from kernelwright.graphs.state import KState


class Node(Protocol):
    """An agent node: LangGraph passes the runtime by keyword, `timed` by position."""

    def __call__(self, state: KState, runtime: Runtime[KContext]) -> dict[str, Any]: ...


def timed(node: Node) -> Node:
    """The node's own duration joins the run's spent wall time."""

    @functools.wraps(node)
    def run(state: KState, runtime: Runtime[KContext]) -> dict[str, Any]:
        started = time.perf_counter()
        update = dict(node(state, runtime) or {})
        spent = dict(update.get("spent") or {})
        spent["wall_s"] = round(spent.get("wall_s", 0.0) + time.perf_counter() - started, 3)
        update["spent"] = spent
        return update

    return run


def build_optimize_graph(checkpointer: Any = None, plugins: Sequence[AgentPlugin] = ()) -> Any:
    """The compiled graph; `plugins` are inserted at their attach points, in order."""
    grouped = chains(plugins)
    builder = StateGraph(KState, context_schema=KContext)
    for name, node in ((DESCRIBE, describe), (TRANSLATE, translate), (MUTATE, mutate), (REPAIR, repair),
                       (SCREEN, screen), (CRITIQUE, critique), (PROFILE, profile), (SELECT, select),
                       (ARCHIVE, archive), (SANITIZE_WINNER, sanitize_winner)):
        builder.add_node(name, timed(node))
    builder.add_node(DISPATCH, dispatch)
    # langgraph's add_node overloads solve a node's input to Never under mypy when it is a Send payload (EvalTask)
    # rather than the graph's state, and `input_schema=EvalTask` does not help (a TypedDict is no `type[...]`)
    builder.add_node(EVALUATE_ONE, evaluate_one)  # type: ignore[arg-type]
    builder.add_node(COLLECT, collect)
    for plugin in plugins:
        builder.add_node(plugin.name, plugin.node)

    builder.add_edge(START, DESCRIBE)
    builder.add_edge(DESCRIBE, TRANSLATE)
    after_propose = [p.name for p in grouped["after_propose"]] + [SCREEN, DISPATCH]
    for source in (TRANSLATE, MUTATE, REPAIR):
        builder.add_edge(source, after_propose[0])
    _chain(builder, after_propose)
    builder.add_conditional_edges(DISPATCH, fan_out, [EVALUATE_ONE, COLLECT])
    builder.add_edge(EVALUATE_ONE, COLLECT)
    after_evaluate = [p.name for p in grouped["after_evaluate"]] + [PROFILE, SELECT, ARCHIVE]
    builder.add_conditional_edges(COLLECT, after_collect, {REPAIR: REPAIR, AFTER_EVALUATE: after_evaluate[0]})
    _chain(builder, after_evaluate)
    builder.add_conditional_edges(ARCHIVE, next_step, [CRITIQUE, MUTATE, SANITIZE_WINNER, END])
    builder.add_edge(SANITIZE_WINNER, ARCHIVE)  # the verdicts go into the archive before END
    builder.add_edge(CRITIQUE, MUTATE)
    return builder.compile(checkpointer=checkpointer)


def _chain(builder: StateGraph[KState, KContext, KState, KState], names: list[str]) -> None:
    for a, b in zip(names, names[1:]):
        builder.add_edge(a, b)


def run_config(settings: RunSettings, thread_id: str) -> dict[str, Any]:
    """The graph's RunnableConfig for a run with these settings: its thread, how many evaluations run at once,
    and a step limit that a finished run of `settings.generations` stays under."""
    return {"configurable": {"thread_id": thread_id}, "max_concurrency": settings.eval_concurrency,
            "recursion_limit": (12 + 8 * settings.repair_rounds) * settings.generations + 30}
