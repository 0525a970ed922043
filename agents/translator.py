"""Translator node: the problem's functional form -> first CUDA candidates, one per temperature step."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from kernelwright.agents.context import KContext
from kernelwright.agents.examples import examples_block
from kernelwright.agents.offline_proposer import offline_candidates
from kernelwright.agents.proposals import ProposalRequest, propose
from kernelwright.agents.run_state import RunState
from kernelwright.prompts.library import RenderedPrompt
from kernelwright.tools.problem.files import read_source


def translator_prompt(state: RunState, ctx: KContext) -> RenderedPrompt:
    functional = state.get("functional") or {}
    return ctx.prompts.get("translator").render(
        gpu=ctx.settings.gpu_description, problem_source=read_source(state["problem_path"], "problem"),
        functional_source=functional.get("source") or "(not traced)",
        op_list=", ".join(sorted(functional.get("op_counts") or {})) or "see the problem",
        examples=examples_block(state, ctx), candidate_format=ctx.prompts.get("candidate_format").render().user)


def translate(state: RunState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """First candidates: the LLM's (with the offline translator's as seeds), or the offline translator's alone."""
    ctx = runtime.context
    with_seeds = ctx.offline is not None and (not ctx.has_llm or ctx.settings.offline_seeds)
    if not ctx.has_llm:
        return offline_candidates(state, ctx) if with_seeds else {}
    prompt = translator_prompt(state, ctx)
    # The LLM first: an unreachable one stops the run in seconds, before the seeds' tracing and planning.
    update = propose(state, ctx, [ProposalRequest(prompt, "translator")] * ctx.settings.candidates_per_generation)
    seeds = offline_candidates(state, ctx) if with_seeds else {}
    update["candidates"] = {**(seeds.get("candidates") or {}), **update["candidates"]}
    update["errors"] = [*(seeds.get("errors") or []), *update["errors"]]
    return update
