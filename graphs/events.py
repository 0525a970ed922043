"""What a run's event log records (the log itself is tools.run_folder.EventLog, one JSON object per line).

What a user needs to see what the agents did: node starts and ends, every LLM
call (prompt, response, tokens, latency, cost) and every evaluator call (tool
calls). A resumed run keeps appending to the same log.

Event names and their fields (every line also has `ts` (ISO, UTC), `t` (epoch
seconds), `run_id` and `event`):

    run_start   resumed, pid
    node_start  node, node_run, step, generation, candidate_id | subject
    node_end    node, node_run, duration_s, generation, candidates[{id, status, reason, speedup, screen}], spent,
                errors, next_generation, best_id, population, stop_reason
    node_error  node, node_run, duration_s, error
    llm_call    agent, node, node_run, llm_run, generation, model, temperature, messages[{role, content}],
                response, input_tokens, output_tokens, total_tokens, latency_s, cost_usd, candidate_id, error
    tool_call   tool (evaluate | prepare | profile | functional_form | sanitize), candidate_id, status, reason,
                seconds, speedup, summary, error
    run_end     status (finished | failed | interrupted), best_id, best_speedup, sanitized, stop_reason, spent, error
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from kernelwright.graphs.sanitizing import memcheck_rejected
from kernelwright.tools.run_folder import LINEAGE_KEY, CandidateFolder, EventLog, RunFolder, lineage_of


def candidate_id_of(path: Path) -> str:
    """The full candidate id of a candidate's source file (its folder's metadata, else the folder's name)."""
    return CandidateFolder.of_source(path).candidate_id()


class RecordingEvaluator:
    """Wraps a CandidateEvaluator: each evaluate/sanitize/prepare/profile call becomes a tool_call event.

    Optional methods stay optional: `getattr(wrapper, "prepare", None)` is None when
    the wrapped evaluator has no `prepare`, exactly as the graph expects.
    """

    _RECORDED = ("evaluate", "sanitize", "prepare", "profile", "functional_form")

    def __init__(self, inner: Any, log: EventLog) -> None:
        self._inner, self._log = inner, log

    def evaluate(self, candidate: Path) -> dict[str, Any]:
        return self._call("evaluate", self._inner.evaluate, candidate)

    def sanitize(self, candidate: Path) -> dict[str, Any]:
        return self._call("sanitize", self._inner.sanitize, candidate)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)  # AttributeError for absent optional methods, as without the wrapper
        if name in self._RECORDED and callable(attr):
            return functools.partial(self._call, name, attr)
        return attr

    def _call(self, tool: str, fn: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        cid = candidate_id_of(args[0]) if args else None
        try:
            result = fn(*args)
        except Exception as exc:
            self._log.emit("tool_call", tool=tool, candidate_id=cid, status="error", seconds=_since(started),
                           error=f"{type(exc).__name__}: {exc}")
            raise
        self._log.emit("tool_call", tool=tool, candidate_id=cid, seconds=_since(started), **_tool_outcome(tool, result))
        return result


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 4)


def _tool_outcome(tool: str, result: Any) -> dict[str, Any]:
    if tool == "prepare" and result is None:
        return {"status": "built"}
    if not isinstance(result, Mapping):
        return {"status": "done"}
    if tool == "profile":
        return {"status": "profiled" if result.get("available", True) else "unavailable",
                "summary": str(result.get("summary") or result.get("reason") or "")[:500]}
    if tool == "functional_form":
        return {"status": "traced", "method": result.get("method")}
    if tool == "sanitize":
        return {"status": result.get("status"), "summary": str(result.get("message") or "")[:500]}
    return {"status": result.get("status"), "reason": result.get("reason"), "speedup": result.get("speedup_vs_eager"),
            "message": str(result.get("message") or "")[:500]}


def best_summary(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run record's `best`: the winner, and whether memcheck passed it (`sanitized`, with the status and why)."""
    record = (state.get("candidates") or {}).get(state.get("best_id") or "")
    if not record:
        return None
    verdict = state.get("winner_sanitizer") or {}
    return {**{k: record.get(k) for k in ("id", "speedup_vs_eager", "speedup_vs_compile", "source_path", "agent",
                                          "model", "generation")},
            LINEAGE_KEY: list(lineage_of(record)),
            "sanitized": bool(verdict.get("sanitized")), "sanitizer_status": verdict.get("status"),
            "sanitizer_message": verdict.get("message")}


def gpu_facts_of(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The GPU the harness reported (from the best candidate's report, else any report that names one)."""
    records = list((state.get("candidates") or {}).values())
    best = (state.get("candidates") or {}).get(state.get("best_id") or "")
    for record in ([best] if best else []) + records:
        if not record.get("report_path"):
            continue
        report = CandidateFolder.of_source(record["source_path"]).read_report()
        if report is not None and report.gpu:
            return report.gpu
    return None


class EventRecorder(AbstractContextManager["EventRecorder"]):
    """Everything a run records about itself; `with recorder:` around the graph's stream.

    `graph_config(ctx)` gives the keys to merge into the graph's RunnableConfig
    (the callback handler, plus `tracers` such as LangSmith's); `wrap(evaluator)`
    records tool calls; `finish(state)` writes the outcome into the run record. `scope`
    is entered for the run's duration (e.g. a tracing on/off context), `on_close`
    run at exit (e.g. flushing a tracer's queue).
    """

    def __init__(self, run_dir: Path, run_id: str, *, tracers: Iterable[Any] = (), tags: Iterable[str] = (),
                 scope: AbstractContextManager[Any] | None = None, on_close: Iterable[Callable[[], None]] = ()) -> None:
        from kernelwright.graphs.event_callbacks import GraphEventHandler

        self.run_dir, self.run_id = Path(run_dir), run_id
        self.folder = RunFolder(self.run_dir)
        self.log = self.folder.event_log(run_id)
        self.handler = GraphEventHandler(self.log, on_graph_start=self._graph_started)
        self.tracers, self.tags = list(tracers), list(tags)
        self._scope, self._on_close = scope, list(on_close)
        self._stack = ExitStack()
        self._finished = False

    def wrap(self, evaluator: Any) -> RecordingEvaluator:
        return RecordingEvaluator(evaluator, self.log)

    def graph_config(self, ctx: Any = None) -> dict[str, Any]:
        """callbacks/tags/metadata for the graph's config; prices come from the context's models."""
        if ctx is not None:
            models = list(ctx.proposal_models())
            self.handler.set_prices({_model_key(m.llm, m.name): (m.price_in_per_mtok, m.price_out_per_mtok)
                                     for m in models})
        return {"callbacks": [self.handler, *self.tracers], "tags": ["kernelwright", *self.tags],
                "metadata": {"kernelwright_run_id": self.run_id}}

    def _graph_started(self) -> None:
        self.log.emit("run_start", resumed=self.log.resumed, pid=os.getpid())
        self.folder.update_info(status="running", pid=os.getpid(), host=socket.gethostname(),
                                last_started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def finish(self, state: Mapping[str, Any]) -> None:
        best = best_summary(state)
        spent = dict(state.get("spent") or {})
        self.log.emit("run_end", status="finished", best_id=state.get("best_id"),
                      best_speedup=(best or {}).get("speedup_vs_eager"), sanitized=(best or {}).get("sanitized"),
                      stop_reason=state.get("stop_reason"), spent=spent)
        self.folder.update_info(status="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), best=best,
                                sanitizer_rejected=memcheck_rejected(state.get("candidates") or {}),
                                stop_reason=state.get("stop_reason"), spent=spent,
                                generations_done=state.get("generation"),
                                candidates_total=len(state.get("candidates") or {}), gpu=gpu_facts_of(state),
                                error=None)
        self._finished = True

    def __enter__(self) -> EventRecorder:
        if self._scope is not None:
            self._stack.enter_context(self._scope)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc is not None and not self._finished:
                status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                error = f"{type(exc).__name__}: {exc}"
                self.log.emit("run_end", status=status, error=error)
                self.folder.update_info(status=status, error=error,
                                        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        finally:
            for hook in self._on_close:
                try:
                    hook()
                except Exception as hook_exc:  # noqa: BLE001 - a tracer that cannot flush must not mask the run's outcome
                    structlog.get_logger(__name__).warning("event_close_hook_failed", error=str(hook_exc))
            self._stack.close()
            self.log.close()


def _model_key(llm: Any, fallback: str) -> str:
    """The name a chat model reports in its calls (what the callback handler sees)."""
    for attr in ("model_name", "model"):
        value = getattr(llm, attr, None)
        if isinstance(value, str) and value:
            return value
    return fallback
