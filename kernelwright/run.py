"""`optimize()`: run the agent graph on a problem, resumable from its SQLite checkpoint."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from langgraph.checkpoint.sqlite import SqliteSaver

from kernelwright.agents.llm import ModelSettings, make_chat_model
from kernelwright.graphs.context import CandidateEvaluator, KContext, RunSettings
from kernelwright.graphs.optimize import build_optimize_graph
from kernelwright.graphs.plugins import AgentPlugin, discover_plugins
from kernelwright.graphs.state import Budget, make_initial_state
from kernelwright.tools.errors import KernelwrightError
from kernelwright.tools.problem import check_source

log = structlog.get_logger(__name__)


class RunError(KernelwrightError):
    kind = "run"


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    best: dict[str, Any] | None
    state: dict[str, Any]


class HarnessEvaluator:
    """The graph's evaluator on a GPU: tools.evaluate.Evaluator, one per run (warm workers)."""

    def __init__(self, problem: Path, config: Any = None):
        from kernelwright.config import load_config
        from kernelwright.tools.evaluate import Evaluator
        from kernelwright.tools.sandbox.pool import WorkerOptions

        config = config or load_config()
        self._evaluator = Evaluator(problem, config.eval_settings(), WorkerOptions(env=config.worker_env()))

    def evaluate(self, candidate: Path) -> dict[str, Any]:
        return self._evaluator.evaluate(candidate).to_dict()

    def close(self) -> None:
        self._evaluator.close()


@contextmanager
def _checkpointer(run_dir: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(run_dir / "checkpoints.sqlite", check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def optimize(problem: str | Path, *, runs_dir: str | Path = "runs", resume: str | None = None, run_id: str | None = None,
             settings: RunSettings = RunSettings(), model: ModelSettings = ModelSettings(), llm: Any = None,
             evaluator: CandidateEvaluator | None = None, candidates_budget: int = 200,
             on_update: Callable[[str, dict[str, Any]], None] | None = None,
             plugins: Sequence[AgentPlugin] | None = None) -> RunResult:
    """Optimise `problem`; with `resume=RUN_ID` continue that run from its last checkpoint.

    `plugins` default to those installed under the `kernelwright.agents` entry-point group.
    """
    problem = check_source(problem, "problem").path
    run_id = resume or run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    run_dir = Path(runs_dir) / run_id
    if resume and not (run_dir / "checkpoints.sqlite").exists():
        raise RunError(f"no run {resume!r} to resume under {runs_dir}", where=str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    if llm is None:
        llm = make_chat_model(model)  # ToolUnavailable without an LLM: the offline proposer is issue 5
    owned = evaluator is None
    evaluator = evaluator or HarnessEvaluator(problem)
    ctx = KContext(llm=llm, evaluator=evaluator, run_dir=run_dir, settings=settings, model_name=model.model or "default")
    config = {"configurable": {"thread_id": run_id}, "recursion_limit": 10 * settings.generations + 20}
    try:
        with _checkpointer(run_dir) as saver:
            graph = build_optimize_graph(checkpointer=saver,
                                         plugins=discover_plugins() if plugins is None else plugins)
            start = None if resume else make_initial_state(
                run_id, str(problem), Budget(generations=settings.generations, candidates=candidates_budget,
                                             wall_s=0.0, tokens=0))
            if not resume:
                (run_dir / "run.json").write_text(json.dumps({"run_id": run_id, "problem": str(problem),
                                                              "settings": settings.__dict__}, default=str, indent=2))
            # durability="sync": a step's checkpoint is on disk before the next step starts, so a kill loses no step.
            for chunk in graph.stream(start, context=ctx, config=config, stream_mode="updates", durability="sync"):
                for node, update in chunk.items():
                    log.info("node_done", run_id=run_id, node=node)
                    if on_update is not None:
                        on_update(node, update or {})
            state = graph.get_state(config).values
    finally:
        if owned and hasattr(evaluator, "close"):
            evaluator.close()
    best = state.get("candidates", {}).get(state.get("best_id") or "")
    return RunResult(run_id, run_dir, best, state)
