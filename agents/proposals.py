"""Ask the chat model for candidate files and store them: shared by the translator and the mutator.

Malformed answers get a bounded number of repair turns (the repair message
names what was wrong); what still fails becomes an error record, never an
exception out of the node.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from kernelwright.agents.answer_parsing import AnswerError, parse_candidate
from kernelwright.prompts.library import RenderedPrompt
from kernelwright.tools.source_hash import candidate_id


def ask_for_candidate(llm: Any, prompt: RenderedPrompt, temperature: float, max_repairs: int) -> tuple[str, int, int]:
    """(candidate source, repairs used, tokens spent); raises AnswerError after max_repairs."""
    model = llm.bind(temperature=temperature) if hasattr(llm, "bind") and _accepts_temperature(llm) else llm
    messages: list[BaseMessage] = ([SystemMessage(prompt.system)] if prompt.system.strip() else []) + [HumanMessage(prompt.user)]
    tokens = 0
    for attempt in range(max_repairs + 1):
        reply = model.invoke(messages)
        tokens += reply_tokens(reply)
        try:
            return parse_candidate(str(reply.content)).source, attempt, tokens
        except AnswerError as exc:
            if attempt == max_repairs:
                exc.details["tokens"] = tokens
                raise
            messages += [AIMessage(str(reply.content)), HumanMessage(exc.repair)]
    raise AssertionError("unreachable")


def reply_tokens(reply: Any) -> int:
    """Tokens a chat reply reports spending (0 when the model reports none)."""
    return int((getattr(reply, "usage_metadata", None) or {}).get("total_tokens", 0))


def _accepts_temperature(llm: Any) -> bool:
    return "temperature" in getattr(type(llm), "model_fields", {})


def store_candidate(run_dir: Path, source: str, meta: dict[str, Any]) -> tuple[str, Path]:
    """Write candidates/<id>/candidate.py and meta.json; the id is the normalised-source hash."""
    cid = candidate_id(source)
    folder = run_dir / "candidates" / cid[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "candidate.py"
    path.write_text(source)
    (folder / "meta.json").write_text(json.dumps({"id": cid, **meta}, indent=2, default=str))
    return cid, path
