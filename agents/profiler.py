"""Profiler node: profile the generation's best verified candidate and condense it for the critic and mutator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from langgraph.runtime import Runtime

from kernelwright.agents.context import KContext
from kernelwright.agents.run_state import RunState
from kernelwright.tools.run_folder import CandidateFolder, CandidateProfile

log = structlog.get_logger(__name__)


def profile(state: RunState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """Profile (Nsight Compute through the evaluator) the fastest verified, not yet profiled candidate.

    An evaluator without a profiler, a profiler that cannot read counters, or one that fails, leaves a
    'profiler unavailable: why' summary; the run goes on.
    """
    ctx = runtime.context
    candidates = state.get("candidates") or {}
    passed = [r for r in candidates.values() if r.get("status") == "passed" and r.get("speedup_vs_eager")
              and not r.get("profile_summary")]
    if not ctx.settings.profile or not passed:
        return {}
    best = max(passed, key=lambda r: r["speedup_vs_eager"])  # type: ignore[arg-type, return-value]
    try:
        outcome = ctx.evaluator.profile(Path(best["source_path"]))
    except Exception as exc:  # noqa: BLE001 - profiling is advice; its failure must not end the run
        log.warning("profile_failed", candidate=best["id"][:16], error=f"{type(exc).__name__}: {exc}")
        outcome = CandidateProfile.unavailable(f"{type(exc).__name__}: {exc}")
    CandidateFolder.of_source(best["source_path"]).write_profile(outcome)
    return {"candidates": {best["id"]: {"profile_summary": outcome.summary}}}
