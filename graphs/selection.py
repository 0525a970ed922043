"""Selection and routing: the elite by verified speedup, repairs of rejected candidates, and when to stop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, cast

from langgraph.graph import END
from langgraph.runtime import Runtime

from kernelwright.agents.budget import exhausted
from kernelwright.agents.context import KContext
from kernelwright.agents.mutator import repairable
from kernelwright.agents.run_state import SCREENED_OUT
from kernelwright.graphs.generations import FIRST_GENERATION
from kernelwright.graphs.nodes import CRITIQUE, MUTATE, REPAIR, SANITIZE_WINNER, NodeName
from kernelwright.graphs.state import Budget, CandidateRecord, KState

AfterEvaluate = Literal["after_evaluate"]
AFTER_EVALUATE: Final = "after_evaluate"  # a route, not a node: the first after-evaluate plugin, else profile


def after_collect(state: KState, runtime: Runtime[KContext]) -> NodeName | AfterEvaluate:
    """Back to the repairer with diagnostics while rejected candidates have repairs left and budget remains."""
    settings = runtime.context.settings
    if not runtime.context.has_llm or exhausted(state.get("budget"), state.get("spent")):
        return AFTER_EVALUATE  # the offline translator does not repair: its tuner moves on
    if any(repairable(r, settings.repair_rounds) for r in (state.get("candidates") or {}).values()):
        return REPAIR
    return AFTER_EVALUATE


def select(state: KState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """Keep the fastest verified candidates (distinct kernels: ids are normalised-source hashes); next generation."""
    passed = ranked_verified(state.get("candidates") or {})
    elite = [r["id"] for r in passed[: runtime.context.settings.population]]
    update: dict[str, Any] = {"population": elite, "best_id": elite[0] if elite else state.get("best_id"),
                              "generation": state.get("generation", FIRST_GENERATION) + 1, "spent": {"generations": 1}}
    spent = (state.get("spent") or Budget()).copy()
    spent["generations"] = spent.get("generations", 0) + 1
    update["stop_reason"] = (exhausted(state.get("budget"), spent) or _nothing_verifiable(state)
                             or _nothing_to_propose(state, runtime.context))
    return update


def ranked_verified(candidates: Mapping[str, CandidateRecord]) -> list[CandidateRecord]:
    """The verified candidates with a measured speedup, fastest first: the elite's and the winner's order."""
    passed = [r for r in candidates.values() if r.get("status") == "passed" and r.get("speedup_vs_eager")]
    return sorted(passed, key=lambda r: r["speedup_vs_eager"], reverse=True)  # type: ignore[arg-type, return-value]


def _nothing_to_propose(state: KState, ctx: KContext) -> str | None:
    """No LLM, and the offline translator could not translate the problem: later generations would have
    nothing to start from either."""
    if ctx.has_llm or state.get("candidates"):
        return None
    why = next((e.get("message") for e in state.get("errors") or [] if e.get("kind") == "offline_unsupported"), None)
    if why is None:
        return None
    return (f"nothing to propose: the offline translator does not support this problem ({why}); "
            "an LLM (OPENAI_API_KEY, or OPENAI_BASE_URL and a model) can try it")


def _nothing_verifiable(state: KState) -> str | None:
    """Every evaluation said 'needs a GPU': more generations would only compile more unverifiable kernels."""
    statuses = {r.get("status") for r in (state.get("candidates") or {}).values()} - {SCREENED_OUT}
    if statuses == {"needs_gpu"}:
        return "no CUDA GPU: candidates compile but cannot be verified here"
    return None


def next_step(state: KState, runtime: Runtime[KContext]) -> NodeName | Literal["__end__"]:
    """Another generation, or the end: the winner's memcheck first, then (after its archive pass) END."""
    if state.get("stop_reason") or exhausted(state.get("budget"), state.get("spent")):
        end = cast(Literal["__end__"], END)  # langgraph types END as str (sys.intern("__end__")), not its literal
        return end if state.get("winner_checked") else SANITIZE_WINNER
    ctx = runtime.context
    return CRITIQUE if ctx.settings.critic and ctx.has_llm and state.get("best_id") else MUTATE
