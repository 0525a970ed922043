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
    llm_retry   agent, node, node_run, generation, model, endpoint, attempt, of, wait_s, retry_after_s, error
                (a chat model call failed and is tried again: agents.model_chain)
    llm_fallback agent, node, node_run, generation, model, endpoint, to_model, to_endpoint, error
                (a model of a chain failed past its retries; the next one is asked)
    tool_call   tool (evaluate | prepare | profile | functional_form | sanitize), candidate_id, status, reason,
                seconds, speedup, summary, error
    manual_prompt  number, node, path, command: a manual run's prompt waits for `kernelwright answer`
    run_end     status (finished | failed | interrupted), best_id, best_speedup, sanitized, stop_reason, spent, error
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import structlog

from kernelwright.agents.evaluator import CandidateEvaluator, CandidateProfile
from kernelwright.graphs.sanitizing import memcheck_rejected
from kernelwright.tools.harness.results import EvalReport
from kernelwright.tools.harness.sanitizer import SanitizeVerdict
from kernelwright.tools.run_folder import LINEAGE_KEY, CandidateFolder, EventLog, RunFolder, lineage_of

T = TypeVar("T")


def candidate_id_of(path: Path) -> str:
    """The full candidate id of a candidate's source file (its folder's metadata, else the folder's name)."""
    return CandidateFolder.of_source(path).candidate_id()


class RecordingEvaluator:
    """A CandidateEvaluator that records each call of the one it wraps as a tool_call event."""

    def __init__(self, inner: CandidateEvaluator, log: EventLog) -> None:
        self._inner, self._log = inner, log

    @property
    def traces_out_of_process(self) -> bool:
        return self._inner.traces_out_of_process

    @property
    def gpus(self) -> Sequence[str]:
        return self._inner.gpus

    def functional_form(self) -> dict[str, Any]:
        return self._call("functional_form", None, self._inner.functional_form,
                          lambda form: {"status": "traced", "method": form.get("method")})

    def prepare(self, candidate: Path) -> EvalReport | None:
        return self._call("prepare", candidate, lambda: self._inner.prepare(candidate),
                          lambda report: {"status": "built"} if report is None else _report_outcome(report))

    def evaluate(self, candidate: Path) -> EvalReport:
        return self._call("evaluate", candidate, lambda: self._inner.evaluate(candidate), _report_outcome)

    def sanitize(self, candidate: Path) -> SanitizeVerdict:
        return self._call("sanitize", candidate, lambda: self._inner.sanitize(candidate),
                          lambda verdict: {"status": verdict.status, "summary": verdict.message[:500]})

    def profile(self, candidate: Path) -> CandidateProfile:
        return self._call("profile", candidate, lambda: self._inner.profile(candidate),
                          lambda found: {"status": "profiled" if found.available else "unavailable",
                                         "summary": found.summary[:500]})

    def close(self) -> None:
        self._inner.close()

    def _call(self, tool: str, candidate: Path | None, fn: Callable[[], T], outcome: Callable[[T], dict[str, Any]]) -> T:
        started = time.perf_counter()
        cid = candidate_id_of(candidate) if candidate is not None else None
        try:
            result = fn()
        except Exception as exc:
            self._log.emit("tool_call", tool=tool, candidate_id=cid, status="error", seconds=_since(started),
                           error=f"{type(exc).__name__}: {exc}")
            raise
        self._log.emit("tool_call", tool=tool, candidate_id=cid, seconds=_since(started), **outcome(result))
        return result


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 4)


def _report_outcome(report: EvalReport) -> dict[str, Any]:
    return {"status": report.status, "reason": report.reason, "speedup": report.speedup_vs_eager,
            "message": str(report.message or "")[:500]}


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

    def wrap(self, evaluator: CandidateEvaluator) -> RecordingEvaluator:
        return RecordingEvaluator(evaluator, self.log)

    def graph_config(self, ctx: Any = None,
                     extra_prices: Mapping[str, tuple[float, float]] | None = None) -> dict[str, Any]:
        """callbacks/tags/metadata for the graph's config; prices come from the context's models, and
        `extra_prices` (by the model name a call reports) for the critic and the models of fallback chains."""
        if ctx is not None:
            models = list(ctx.proposal_models())
            prices = {reported_model_name(m.llm, m.name): (m.price_in_per_mtok, m.price_out_per_mtok) for m in models}
            for name, price in (extra_prices or {}).items():
                prices.setdefault(name, price)
            self.handler.set_prices(prices)
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


def reported_model_name(llm: Any, fallback: str) -> str:
    """The name a chat model reports in its calls (what the callback handler sees)."""
    for attr in ("model_name", "model"):
        value = getattr(llm, attr, None)
        if isinstance(value, str) and value:
            return value
    return fallback
