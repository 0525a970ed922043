"""Evaluation nodes: the problem's functional form, and the parallel fan-out of candidate evaluations.

dispatch marks the start of an evaluation phase; `fan_out` sends one
`evaluate_one` task per pending candidate (LangGraph `Send`), which run
concurrently up to the run's `max_concurrency`: builds overlap, and the
evaluator bounds how many use a GPU at once. `collect` joins them and
accounts the phase's wall time. Each report is written next to its candidate
before the task returns, so a run killed mid-phase and resumed from its
checkpoint evaluates no candidate twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TypedDict

import structlog
from langgraph.runtime import Runtime
from langgraph.types import Send

from kernelwright.agents.context import KContext
from kernelwright.agents.run_state import candidate_status
from kernelwright.graphs.nodes import COLLECT, EVALUATE_ONE, NodeName
from kernelwright.graphs.state import CandidateRecord, KState
from kernelwright.tools.errors import KernelwrightError, ReferenceFailure
from kernelwright.tools.run_folder import CandidateFolder, CandidateReport

log = structlog.get_logger(__name__)


class EvalTask(TypedDict):
    candidate_id: str
    source_path: str


def describe(state: KState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """Stage 1: the problem's functional form (traced op list), or the module source with the reason."""
    ctx = runtime.context
    if ctx.offline is not None and ctx.evaluator.traces_out_of_process:
        ctx.offline.start(state["problem_path"])  # the offline translator's trace overlaps the worker's
    if (state.get("functional") or {}).get("method"):
        return {}
    try:
        form = ctx.evaluator.functional_form()
    except ReferenceFailure:
        raise  # the problem itself is broken: bad input, reported by the caller
    except KernelwrightError as exc:
        log.warning("functional_form_failed", error=str(exc))
        form = {"method": "source", "fallback_reason": f"{exc.kind}: {exc}"}
    return {"functional": form}


def dispatch(state: KState) -> dict[str, Any]:
    return {"eval_started_at": time.time()}


def fan_out(state: KState) -> list[Send] | NodeName:
    tasks = [Send(EVALUATE_ONE, EvalTask(candidate_id=cid, source_path=r["source_path"]))
             for cid, r in (state.get("candidates") or {}).items() if r.get("status") == "pending"]
    return tasks or COLLECT


def evaluate_one(task: EvalTask, runtime: Runtime[KContext]) -> dict[str, Any]:
    """Build (may overlap with others), then verify and time one candidate; its verdict becomes the record's status."""
    evaluator = runtime.context.evaluator
    source = Path(task["source_path"])
    folder = CandidateFolder.of_source(source)
    started = time.perf_counter()
    report = folder.read_report()  # evaluated before a resume: not again
    if report is None:
        verdict = evaluator.prepare(source) or evaluator.evaluate(source)  # a failed build is the verdict
        report = CandidateReport.from_dict(verdict.to_dict())
        folder.write_report(report)
    record = CandidateRecord(status=candidate_status(report.status), reason=report.reason, speedup_vs_eager=report.speedup_vs_eager,
                             speedup_vs_compile=report.speedup_vs_compile, report_path=str(folder.report_path),
                             seconds=round(time.perf_counter() - started, 3))
    return {"candidates": {task["candidate_id"]: record}, "spent": {"candidates": 1}}


def collect(state: KState) -> dict[str, Any]:
    """Join point of the fan-out: the evaluation phase's wall time."""
    started = state.get("eval_started_at") or time.time()
    return {"spent": {"wall_s": round(max(0.0, time.time() - started), 3)}}
