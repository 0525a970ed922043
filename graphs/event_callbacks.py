"""A LangChain callback handler that turns a graph run into node and LLM-call events.

Passed in the graph's `config["callbacks"]`, it sees every node (LangGraph runs
each node as a chain tagged `graph:step:N` whose name is the node's) and every
chat-model call made inside one: LangGraph hands the config down through
context variables, so the agents' plain `llm.invoke(...)` calls report here
without any change to agent code. It never raises into the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from kernelwright.agents.model_chain import FALLBACK_EVENT, RETRY_EVENT
from kernelwright.graphs.nodes import CRITIQUE, NODE_AGENTS
from kernelwright.tools.run_folder import LINEAGE_KEY, EventLog, lineage_of


@dataclass
class _NodeRun:
    node: str
    started: float
    generation: int


@dataclass
class _LlmStart:
    started: float
    node: str
    node_run: str | None
    generation: int
    model: str
    temperature: float | None
    messages: list[dict[str, str]]
    subject: str | None = None  # the candidate the call concerns, when the caller said (metadata kw_subject)
    role: str | None = None  # screen | critique | ... (metadata kw_role)


class GraphEventHandler(BaseCallbackHandler):
    raise_error = False  # a recording failure is logged by langchain, never fatal to the run

    def __init__(self, log: EventLog, on_graph_start: Callable[[], None] | None = None) -> None:
        self._log = log
        self._on_graph_start = on_graph_start
        self._nodes: dict[UUID, _NodeRun] = {}
        self._llm: dict[UUID, _LlmStart] = {}
        self._within: dict[UUID, UUID] = {}  # a runnable inside a node (e.g. a structured-output chain) -> its parent
        self._prices: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._generation = 0

    def set_prices(self, prices: Mapping[str, tuple[float, float]]) -> None:
        """USD per million input/output tokens, by the model name a call reports."""
        self._prices = dict(prices)

    # -- nodes -------------------------------------------------------------------------------------
    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
                       parent_run_id: UUID | None = None, tags: list[str] | None = None,
                       metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if parent_run_id is None:
            if self._on_graph_start is not None:
                self._on_graph_start()
            return
        node = (metadata or {}).get("langgraph_node")
        if not node or kwargs.get("name") != node or not any(t.startswith("graph:step:") for t in tags or []):
            with self._lock:  # an edge function or a runnable inside a node, not the node itself
                self._within[run_id] = parent_run_id
            return
        fields: dict[str, Any] = {}
        if isinstance(inputs, Mapping):
            if isinstance(inputs.get("generation"), int):
                self._generation = inputs["generation"]
            if "candidate_id" in inputs:
                fields["candidate_id"] = inputs["candidate_id"]
            if node == CRITIQUE and inputs.get("best_id"):
                fields["subject"] = inputs["best_id"]  # the candidate the critic reviews
        with self._lock:
            self._nodes[run_id] = _NodeRun(node, time.perf_counter(), self._generation)
        self._log.emit("node_start", node=node, node_run=str(run_id), step=(metadata or {}).get("langgraph_step"),
                       generation=self._generation, **fields)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            run = self._nodes.pop(run_id, None)
            self._within.pop(run_id, None)
        if run is not None:
            self._log.emit("node_end", node=run.node, node_run=str(run_id), generation=run.generation,
                           duration_s=round(time.perf_counter() - run.started, 4), **summarize_update(outputs))

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            run = self._nodes.pop(run_id, None)
            self._within.pop(run_id, None)
        if run is not None:
            self._log.emit("node_error", node=run.node, node_run=str(run_id), generation=run.generation,
                           duration_s=round(time.perf_counter() - run.started, 4),
                           error=f"{type(error).__name__}: {error}")

    # -- LLM calls ---------------------------------------------------------------------------------
    def on_chat_model_start(self, serialized: dict[str, Any] | None, messages: list[list[Any]], *, run_id: UUID,
                            parent_run_id: UUID | None = None, tags: list[str] | None = None,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        meta = metadata or {}
        params = kwargs.get("invocation_params") or {}
        with self._lock:
            node_run = self._enclosing_node(parent_run_id)
            parent = self._nodes.get(node_run) if node_run else None
            self._llm[run_id] = _LlmStart(
                started=time.perf_counter(), node=parent.node if parent else str(meta.get("langgraph_node", "")),
                node_run=str(node_run) if parent else None,
                generation=parent.generation if parent else self._generation,
                model=str(params.get("model") or params.get("model_name") or meta.get("ls_model_name")
                          or _serialized_name(serialized)),
                temperature=_float(params.get("temperature", meta.get("ls_temperature"))),
                messages=[{"role": getattr(m, "type", "unknown"), "content": _text(getattr(m, "content", m))}
                          for m in (messages[0] if messages else [])],
                subject=meta.get("kw_subject"), role=meta.get("kw_role"))

    def _enclosing_node(self, run_id: UUID | None) -> UUID | None:
        """The node run a call was made in, through any runnables between them (call with the lock held)."""
        seen = 0
        while run_id is not None and run_id not in self._nodes and seen < 64:
            run_id, seen = self._within.get(run_id), seen + 1
        return run_id if run_id in self._nodes else None

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            start = self._llm.pop(run_id, None)
        if start is None:
            return
        text, usage = _reply(response)
        price_in, price_out = self._prices.get(start.model, (0.0, 0.0))
        cost = (usage["input_tokens"] * price_in + usage["output_tokens"] * price_out) / 1e6
        self._emit_llm(run_id, start, response=text, cost_usd=round(cost, 8), candidate_id=_candidate_in(text),
                       **usage)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            start = self._llm.pop(run_id, None)
        if start is not None:
            self._emit_llm(run_id, start, response="", input_tokens=0, output_tokens=0, total_tokens=0, cost_usd=0.0,
                           candidate_id=None, error=f"{type(error).__name__}: {error}")

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, tags: list[str] | None = None,
                        metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """A model chain's retry or switch to its next model (agents.model_chain), in the node it happened in."""
        if name not in (RETRY_EVENT, FALLBACK_EVENT) or not isinstance(data, Mapping):
            return
        with self._lock:
            node_run = self._enclosing_node(run_id)
            parent = self._nodes.get(node_run) if node_run else None
        node = parent.node if parent else str((metadata or {}).get("langgraph_node", ""))
        self._log.emit(name, agent=NODE_AGENTS.get(node, node or "unknown"), node=node,
                       node_run=str(node_run) if parent else None,
                       generation=parent.generation if parent else self._generation, **data)

    def _emit_llm(self, run_id: UUID, start: _LlmStart, **fields: Any) -> None:
        self._log.emit("llm_call", agent=NODE_AGENTS.get(start.node, start.node or "unknown"), node=start.node,
                       node_run=start.node_run, llm_run=str(run_id), generation=start.generation, model=start.model,
                       temperature=start.temperature, messages=start.messages,
                       latency_s=round(time.perf_counter() - start.started, 4),
                       **({"subject": start.subject, "role": start.role} if start.subject else {}), **fields)


def summarize_update(outputs: Any) -> dict[str, Any]:
    """The part of a node's state update worth a line: candidate outcomes, spending, errors, selection."""
    if not isinstance(outputs, Mapping):
        return {"output": type(outputs).__name__}
    out: dict[str, Any] = {}
    candidates = outputs.get("candidates")
    if isinstance(candidates, Mapping):
        out["candidates"] = [_candidate_summary(cid, r) for cid, r in candidates.items() if isinstance(r, Mapping)]
    if isinstance(outputs.get("spent"), Mapping):
        out["spent"] = dict(outputs["spent"])
    errors = outputs.get("errors")
    if isinstance(errors, list) and errors:
        out["errors"] = [{k: e.get(k) for k in ("kind", "message", "model") if k in e} for e in errors
                         if isinstance(e, Mapping)]
    for key, name in (("generation", "next_generation"), ("best_id", "best_id"), ("stop_reason", "stop_reason")):
        if outputs.get(key) is not None:
            out[name] = outputs[key]
    if isinstance(outputs.get("population"), list):
        out["population"] = list(outputs["population"])
    return out


def _candidate_summary(cid: str, record: Mapping[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {"id": cid}
    for key, name in (("status", "status"), ("reason", "reason"), ("speedup_vs_eager", "speedup"), ("agent", "agent"),
                      ("screen", "screen"), ("critique", "critique")):
        if record.get(key) is not None:
            summary[name] = record[key]
    parents = lineage_of(record)  # also under the old key, in a state checkpointed by an older version
    if parents or LINEAGE_KEY in record:
        summary[LINEAGE_KEY] = list(parents)
    return summary


def _reply(response: Any) -> tuple[str, dict[str, int]]:
    """The reply text and its token usage (message usage_metadata, else the provider's llm_output)."""
    generation = response.generations[0][0] if getattr(response, "generations", None) else None
    message = getattr(generation, "message", None)
    text = _text(getattr(message, "content", None) if message is not None else getattr(generation, "text", ""))
    usage = dict(getattr(message, "usage_metadata", None) or {})
    if not usage:
        raw = (getattr(response, "llm_output", None) or {}).get("token_usage") or {}
        usage = {"input_tokens": raw.get("prompt_tokens", 0), "output_tokens": raw.get("completion_tokens", 0),
                 "total_tokens": raw.get("total_tokens", 0)}
    tokens = {k: int(usage.get(k) or 0) for k in ("input_tokens", "output_tokens", "total_tokens")}
    if not tokens["total_tokens"]:
        tokens["total_tokens"] = tokens["input_tokens"] + tokens["output_tokens"]
    return text, tokens


def _candidate_in(text: str) -> str | None:
    """The id of the candidate this reply proposes (the same hash the proposer stores it under), if any."""
    from kernelwright.agents.answer_parsing import parse_candidate
    from kernelwright.tools.source_hash import candidate_id

    try:
        return candidate_id(parse_candidate(text).source)
    except Exception:  # noqa: BLE001 - not a candidate (a critique, a malformed answer): no link
        return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, Mapping) else str(b) for b in content)
    return "" if content is None else str(content)


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _serialized_name(serialized: Mapping[str, Any] | None) -> str:
    ident = (serialized or {}).get("id") or ["unknown"]
    return str(ident[-1]) if isinstance(ident, list) else str(ident)
