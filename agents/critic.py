"""Critic nodes.

- critique: reads the best candidate's evaluation and profile and proposes concrete directions for the mutator.
- screen: a cheap soft pre-verification of each new candidate before it is compiled. It catches obvious
  defects and cheating patterns; its verdict is recorded, and a failed screen skips evaluation when
  `screen_blocks` is on. Passing the screen proves nothing: only the harness verifies.

Both ask for structured output and read non-compliant replies tolerantly (agents.critic_replies); replies
that cannot be read leave no directions (critique) or pass (screen), never a crash.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from kernelwright.agents.budget import exhausted
from kernelwright.agents.context import KContext
from kernelwright.agents.critic_replies import Critique, Screen, ask_structured, read_critique, read_screen, reply_text
from kernelwright.agents.proposals import Spend, reply_spend
from kernelwright.agents.run_state import SCREENED_OUT, CandidateRecord, RunState
from kernelwright.tools.problem.files import read_source
from kernelwright.tools.run_folder import CandidateFolder

_KERNEL_MARKERS = ("__global__", "load_cuda", "load_inline", "cpp_extension", "triton.jit", "cupy")


def critique(state: RunState, runtime: Runtime[KContext]) -> dict[str, Any]:
    ctx = runtime.context
    best_id = state.get("best_id")
    if not best_id:
        return {}
    record = state["candidates"][best_id]
    files = CandidateFolder.of_source(record["source_path"])
    report, profile = files.read_report(), files.read_profile()
    evaluation = {k: report.data.get(k) if report else None for k in (
        "status", "reason", "speedup_vs_eager", "speedup_vs_compile", "timing", "kernel_usage", "weak_checks")}
    prompt = ctx.prompts.get("critic").render(
        gpu=ctx.settings.gpu_description, problem_source=read_source(state["problem_path"], "problem"),
        candidate_source=files.read_source(), evaluation=json.dumps(evaluation, default=str),
        profile_summary=record.get("profile_summary") or (profile.summary if profile else "") or "no profile")
    structured, reply = ask_structured(ctx.critic_model(), [SystemMessage(prompt.system), HumanMessage(prompt.user)],
                                       Critique)
    found = read_critique(structured, reply_text(reply))
    return {"candidates": {best_id: {"critique": found.verdict, "directions": found.directions}},
            "spent": reply_spend(reply).as_counts()}


def static_screen(source: str) -> str | None:
    """A defect visible without a model: no kernel code of any kind."""
    if not any(marker in source for marker in _KERNEL_MARKERS):
        return "no custom kernel code (no __global__, load_cuda or load_inline): it can only call PyTorch ops"
    return None


def about_candidate(cid: str, role: str) -> Any:
    """The ambient run config plus which candidate an LLM call concerns; the trace records it (a verdict's
    text does not name its candidate, and a failed call would shift any matching by order)."""
    from langchain_core.runnables.config import ensure_config

    config = ensure_config()
    config["metadata"] = {**(config.get("metadata") or {}), "kw_subject": cid, "kw_role": role}
    return config


def screen(state: RunState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """Screen every pending, unscreened candidate; record the verdict on each."""
    ctx = runtime.context
    updates: dict[str, CandidateRecord] = {}
    spend = Spend()
    problem_source = read_source(state["problem_path"], "problem")
    for cid, record in (state.get("candidates") or {}).items():
        if record.get("status") != "pending" or record.get("screen"):
            continue
        source = CandidateFolder.of_source(record["source_path"]).read_source()
        defect = static_screen(source)
        ask_model = ctx.settings.screen and ctx.has_llm and not exhausted(state.get("budget"), state.get("spent"),
                                                                           spend.as_counts())
        if defect is None and ask_model:
            prompt = ctx.prompts.get("screen").render(problem_source=problem_source, candidate_source=source)
            structured, reply = ask_structured(ctx.critic_model(),
                                               [SystemMessage(prompt.system), HumanMessage(prompt.user)], Screen,
                                               config=about_candidate(cid, "screen"))
            spend.add(reply_spend(reply))
            passed, reason = read_screen(structured, reply_text(reply))
            defect = None if passed else reason
            verdict = "PASS" if passed else f"FAIL: {reason}"
        else:
            verdict = "PASS (static)" if defect is None else f"FAIL (static): {defect}"
        update: CandidateRecord = {"screen": verdict}
        if defect is not None and ctx.settings.screen_blocks:
            update["status"] = update["reason"] = SCREENED_OUT
        updates[cid] = update
    return {"candidates": updates, "spent": spend.as_counts()}
