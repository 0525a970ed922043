"""The critic's verdicts as structured output, and the tolerant reading of models that do not comply.

The critic's model is asked for a JSON object of a fixed schema (`with_structured_output`: OpenAI's
`response_format: json_schema`, tool calling elsewhere). A reply is read, in order, as: the structured
result; JSON in the reply's text (bare or fenced); the plain-text forms the prompts once asked for
(`VERDICT:` / `DIRECTIONS:` / `- ...`, `SCREEN: PASS|FAIL - why`). A model that cannot bind a schema, or an
endpoint that rejects one (HTTP 400/422), is asked the same messages without it. Unreadable replies leave
no directions (critique) or pass (screen): only the harness verifies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, TypeVar

import structlog
from langchain_core.messages import BaseMessage
from pydantic import BaseModel, Field, ValidationError

log = structlog.get_logger(__name__)

MAX_DIRECTIONS = 3
_REJECTED_SCHEMA_STATUS = (400, 422)  # an endpoint without structured output says so with these
_DIRECTION_RE = re.compile(r"^\s*[-*]\s+(.+?)\s*$", re.M)
_SCREEN_RE = re.compile(r"SCREEN:\s*(PASS|FAIL)\b\s*[-:—]?\s*(.*)", re.I)
_JSON_RE = re.compile(r"\{.*\}", re.S)

Reply = TypeVar("Reply", bound=BaseModel)


class Critique(BaseModel):
    """The critic's review of the best candidate."""

    verdict: str = Field(description="one line: what is wrong or slow, with evidence from the evaluation and profile")
    directions: list[str] = Field(description=f"at most {MAX_DIRECTIONS} directions, each one sentence a mutator "
                                              "can act on")


class Screen(BaseModel):
    """The critic's screen of a candidate before it is compiled."""

    passed: bool = Field(description="false only for a clear defect")
    defect: str = Field(description="the defect in one sentence; empty when passed")


def ask_structured(llm: Any, messages: Sequence[BaseMessage], schema: type[Reply],
                   config: Any = None) -> tuple[Reply | None, Any]:
    """(the reply as `schema` when the model gave it structured, else None; the raw reply message)."""
    try:
        structured = llm.with_structured_output(schema.model_json_schema(), include_raw=True)
    except (NotImplementedError, ValueError):  # the model cannot bind a schema: ask in plain text
        return None, llm.invoke(list(messages), config=config)
    try:
        out = structured.invoke(list(messages), config=config)
    except Exception as exc:
        if getattr(exc, "status_code", None) not in _REJECTED_SCHEMA_STATUS:
            raise  # an outage or a rejected key: the run's failure, not the schema's
        log.warning("structured_output_rejected", schema=schema.__name__, error=f"{type(exc).__name__}: {exc}")
        return None, llm.invoke(list(messages), config=config)
    return _validated(schema, out.get("parsed")), out.get("raw")


def read_critique(structured: Critique | None, text: str) -> Critique:
    """The structured critique, else JSON in the text, else the VERDICT/DIRECTIONS text (maybe empty)."""
    found = structured or _json_in(Critique, text)
    if found is None:
        verdict, directions = parse_critique(text)
        found = Critique(verdict=verdict, directions=directions)
    directions = [d.strip() for d in found.directions if d.strip()][:MAX_DIRECTIONS]
    return Critique(verdict=found.verdict.strip(), directions=directions)


def read_screen(structured: Screen | None, text: str) -> tuple[bool, str]:
    """(passed, reason): the structured screen, else JSON in the text, else the SCREEN line; none passes."""
    found = structured or _json_in(Screen, text)
    if found is None:
        return parse_screen(text)
    return found.passed, found.defect.strip() or ("PASS" if found.passed else "FAIL")


def parse_critique(text: str) -> tuple[str, list[str]]:
    """(verdict line, up to three directions) from 'VERDICT: ...' / 'DIRECTIONS:' / '- ...' replies."""
    verdict = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                    if line.strip().upper().startswith("VERDICT:")), "")
    tail = text.split("DIRECTIONS:", 1)[1] if "DIRECTIONS:" in text else text
    return verdict, list(_DIRECTION_RE.findall(tail))[:MAX_DIRECTIONS]


def parse_screen(text: str) -> tuple[bool, str]:
    """(passed, reason); an answer without a SCREEN line passes (the harness decides)."""
    match = _SCREEN_RE.search(text)
    if match is None:
        return True, "unparsed screen reply: passed to the harness"
    return match.group(1).upper() == "PASS", match.group(2).strip() or match.group(1).upper()


def reply_text(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return "" if content is None else str(content)


def _validated(schema: type[Reply], parsed: Any) -> Reply | None:
    if parsed is None:
        return None
    try:
        return schema.model_validate(parsed)
    except ValidationError:
        return None


def _json_in(schema: type[Reply], text: str) -> Reply | None:
    """The first {...} of the text (a model that ignored the schema but wrote JSON, fenced or not)."""
    match = _JSON_RE.search(text)
    if match is None:
        return None
    try:
        return _validated(schema, json.loads(match.group(0)))
    except ValueError:
        return None
