"""Ask chat models for candidate files and store them: shared by the translator, mutator and repairer.

Malformed answers are asked again a bounded number of times (`max_repairs`), with the re-ask prompt of
what was wrong (agents.answer_parsing); what still fails becomes an error record, never an exception out
of the node. Every call's tokens and cost are counted, and no
call is made once a run budget is reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from kernelwright.agents.answer_parsing import AnswerError, parse_candidate
from kernelwright.agents.budget import exhausted
from kernelwright.agents.context import KContext, NamedModel
from kernelwright.agents.model_chain import answered_by
from kernelwright.agents.run_state import CandidateRecord, RunState
from kernelwright.prompts.library import PromptLibrary, RenderedPrompt
from kernelwright.tools.run_folder import CandidateMeta, RunFolder

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Spend:
    tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: Spend) -> None:
        self.tokens += other.tokens
        self.cost_usd += other.cost_usd

    def as_counts(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "cost_usd": round(self.cost_usd, 6)}


@dataclass(frozen=True)
class ProposalRequest:
    """One candidate to ask for: the prompt, who asks, and the lineage it will carry."""

    prompt: RenderedPrompt
    agent: str
    parents: tuple[str, ...] = ()
    repair_depth: int = 0
    temperature: float | None = None  # None: the generation's temperature schedule decides
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in the candidate's metadata


def reply_spend(reply: Any, model: NamedModel | None = None) -> Spend:
    """Tokens and cost a chat reply reports (zero when the model reports no usage)."""
    usage = getattr(reply, "usage_metadata", None) or {}
    spend = Spend(tokens=int(usage.get("total_tokens", 0)))
    if model is not None:
        # priced as the model that answered (a chain's fallback has its own prices), as the trace prices it
        price_in, price_out = model.chain_prices.get(answered_by(reply, model.name),
                                                     (model.price_in_per_mtok, model.price_out_per_mtok))
        spend.cost_usd = (int(usage.get("input_tokens", 0)) * price_in
                          + int(usage.get("output_tokens", 0)) * price_out) / 1e6
    return spend


def ask_for_candidate(llm: Any, prompt: RenderedPrompt, temperature: float, max_repairs: int,
                      model: NamedModel | None = None, *, prompts: PromptLibrary) -> tuple[str, int, Spend, str]:
    """(candidate source, re-asks used, spend, the model that answered: one of a chain's); raises AnswerError
    (spend in details) after max_repairs re-asks."""
    bound = llm.bind(temperature=temperature) if hasattr(llm, "bind") and _accepts_temperature(llm) else llm
    messages: list[BaseMessage] = ([SystemMessage(prompt.system)] if prompt.system.strip() else []) + [HumanMessage(prompt.user)]
    spend = Spend()
    for attempt in range(max_repairs + 1):
        reply = bound.invoke(messages)
        spend.add(reply_spend(reply, model))
        try:
            source = parse_candidate(str(reply.content)).source
            return source, attempt, spend, answered_by(reply, model.name if model is not None else "")
        except AnswerError as exc:
            if attempt == max_repairs:
                exc.details.update(tokens=spend.tokens, cost_usd=spend.cost_usd)
                raise
            reask = prompts.get(exc.reask_template).render(**exc.facts).user.strip()
            messages += [AIMessage(str(reply.content)), HumanMessage(reask)]
    raise AssertionError("unreachable")


def temperatures_for(ctx: KContext, generation: int) -> tuple[float, ...]:
    """The generation's temperatures: fixed, or annealed down to half by the last generation."""
    s = ctx.settings
    if s.temperature_schedule == "fixed" or s.generations <= 1:
        return s.temperatures
    scale = 1.0 - 0.5 * min(generation, s.generations - 1) / (s.generations - 1)
    return tuple(round(t * scale, 3) for t in s.temperatures)


def propose(state: RunState, ctx: KContext, requests: Sequence[ProposalRequest]) -> dict[str, Any]:
    """Ask for each request in turn (models of the ensemble take turns) and return the state update.

    Stops asking as soon as a budget is reached. A kernel already known (same
    normalised source) is not added again.
    """
    generation = state.get("generation", 0)
    temps = temperatures_for(ctx, generation)
    models = ctx.proposal_models()
    known = state.get("candidates") or {}
    records: dict[str, CandidateRecord] = {}
    errors: list[dict[str, Any]] = []
    spend = Spend()
    pending = sum(r.get("status") == "pending" for r in known.values())
    for i, req in enumerate(requests):
        # candidates waiting for evaluation count against the candidate budget already
        reached = exhausted(state.get("budget"), state.get("spent"),
                            {**spend.as_counts(), "candidates": pending + len(records)})
        if reached:
            log.info("proposals_stopped_by_budget", agent=req.agent, budget=reached, asked=i, wanted=len(requests))
            break
        model = models[i % len(models)]
        temperature = req.temperature if req.temperature is not None else temps[i % len(temps)]
        try:
            source, repairs, used, answered = ask_for_candidate(model.llm, req.prompt, temperature,
                                                                ctx.settings.max_repairs, model, prompts=ctx.prompts)
        except AnswerError as exc:
            spend.add(Spend(int(exc.details.get("tokens", 0)), float(exc.details.get("cost_usd", 0.0))))
            errors.append({"node": req.agent, "generation": generation, "model": model.name, **exc.to_dict()})
            continue
        spend.add(used)
        meta = CandidateMeta(agent=req.agent, generation=generation, model=answered, temperature=temperature,
                             prompt=req.prompt.tag, prompt_sha256=req.prompt.sha256, parents=tuple(req.parents),
                             repairs=repairs, repair_depth=req.repair_depth, extra=dict(req.extra))
        cid, folder = RunFolder(ctx.run_dir).store_candidate(source, meta)
        if cid in known or cid in records:
            continue  # the same kernel again (normalised source): nothing new to evaluate
        records[cid] = CandidateRecord(id=cid, generation=generation, parents=list(req.parents), agent=req.agent,
                                       model=answered, temperature=temperature, prompt=req.prompt.tag,
                                       source_path=str(folder.source_path), status="pending",
                                       repair_depth=req.repair_depth)
    return {"candidates": records, "errors": errors, "spent": spend.as_counts()}


def _accepts_temperature(llm: Any) -> bool:
    return bool(getattr(llm, "accepts_temperature", False)) or "temperature" in getattr(type(llm), "model_fields", {})
