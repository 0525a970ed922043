"""Translator and mutator nodes: functional form -> CUDA candidates; parent + direction -> new candidate."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from kernelwright.agents.answer_parsing import AnswerError
from kernelwright.agents.proposals import ask_for_candidate, store_candidate
from kernelwright.graphs.context import KContext
from kernelwright.graphs.state import CandidateRecord, KState
from kernelwright.prompts.library import RenderedPrompt


def translate(state: KState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """First candidates for the problem, one per temperature step."""
    ctx = runtime.context
    functional = state.get("functional") or {}
    prompt = ctx.prompts.get("translator").render(
        gpu=ctx.settings.gpu_description, problem_source=_read(state["problem_path"]),
        functional_source=functional.get("source", "(not traced)"),
        op_list=", ".join(sorted(functional.get("op_counts", {}))) or "see the problem",
        examples="", candidate_format=ctx.prompts.get("candidate_format").render().user)
    return _propose(state, ctx, prompt, agent="translator", parents=[])


def mutate(state: KState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """Rewrite the best verified candidate; with none yet, translate again."""
    ctx = runtime.context
    best = state.get("best_id")
    if not best:
        return translate(state, runtime)
    parent = state["candidates"][best]
    prompt = ctx.prompts.get("mutator").render(
        gpu=ctx.settings.gpu_description, problem_source=_read(state["problem_path"]),
        parent_source=_read(parent["source_path"]),
        parent_result=f"verified, {parent.get('speedup_vs_eager') or 0:.2f}x vs eager",
        direction="; ".join(parent.get("directions") or []) or "make it faster without changing what it computes",
        examples="")
    return _propose(state, ctx, prompt, agent="mutator", parents=[best])


def _propose(state: KState, ctx: KContext, prompt: RenderedPrompt, *, agent: str, parents: list[str]) -> dict[str, Any]:
    generation = state.get("generation", 0)
    temps = ctx.settings.temperatures
    records: dict[str, CandidateRecord] = {}
    errors: list[dict[str, Any]] = []
    tokens = 0
    for i in range(ctx.settings.candidates_per_generation):
        temperature = temps[i % len(temps)]
        try:
            source, repairs, spent = ask_for_candidate(ctx.llm, prompt, temperature, ctx.settings.max_repairs)
        except AnswerError as exc:
            tokens += int(exc.details.get("tokens", 0))
            errors.append({"node": agent, "generation": generation, **exc.to_dict()})
            continue
        tokens += spent
        cid, path = store_candidate(ctx.run_dir, source, {"agent": agent, "generation": generation,
                                                          "temperature": temperature, "prompt": prompt.tag,
                                                          "parents": parents, "repairs": repairs})
        if cid in (state.get("candidates") or {}) or cid in records:
            continue  # the same kernel again (normalised source): nothing new to evaluate
        records[cid] = CandidateRecord(id=cid, generation=generation, parent_ids=parents, agent=agent,
                                       model=ctx.model_name, temperature=temperature, prompt=prompt.tag,
                                       source_path=str(path), status="pending")
    return {"candidates": records, "errors": errors, "spent": {"tokens": tokens}}


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()
