"""Critic node: reads the best candidate's evaluation (and profile, when there is one) and proposes
concrete directions for the mutator. A reply that cannot be parsed leaves no directions, never a crash."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from kernelwright.agents.proposals import reply_tokens
from kernelwright.graphs.context import KContext
from kernelwright.graphs.state import KState

_DIRECTION_RE = re.compile(r"^\s*[-*]\s+(.+?)\s*$", re.M)


def parse_critique(text: str) -> tuple[str, list[str]]:
    """(verdict line, up to three directions) from 'VERDICT: ...' / 'DIRECTIONS:' / '- ...' replies."""
    verdict = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                    if line.strip().upper().startswith("VERDICT:")), "")
    tail = text.split("DIRECTIONS:", 1)[1] if "DIRECTIONS:" in text else text
    return verdict, [d for d in _DIRECTION_RE.findall(tail)][:3]


def critique(state: KState, runtime: Runtime[KContext]) -> dict[str, Any]:
    ctx = runtime.context
    best_id = state.get("best_id")
    if not best_id:
        return {}
    record = state["candidates"][best_id]
    report_path = record.get("report_path")
    report = json.loads(Path(report_path).read_text()) if report_path and Path(report_path).exists() else {}
    evaluation = {k: report.get(k) for k in ("status", "reason", "speedup_vs_eager", "speedup_vs_compile",
                                              "timing", "kernel_usage", "weak_checks")}
    prompt = ctx.prompts.get("critic").render(
        gpu=ctx.settings.gpu_description, problem_source=Path(state["problem_path"]).read_text(),
        candidate_source=Path(record["source_path"]).read_text(), evaluation=json.dumps(evaluation, default=str),
        profile_summary=(report.get("profile") or {}).get("summary", "no profile"))
    llm = ctx.critic_llm or ctx.llm
    reply = llm.invoke([SystemMessage(prompt.system), HumanMessage(prompt.user)])
    verdict, directions = parse_critique(str(reply.content))
    return {"candidates": {best_id: {"critique": verdict, "directions": directions}},
            "spent": {"tokens": reply_tokens(reply)}}
