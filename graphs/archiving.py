"""The archive node: every kernel the harness verified goes into the kernel archive, generation by generation.

At the run's end it runs once more after the winner's memcheck (graphs/sanitizing), which marks the
candidates it sanitized for archiving again: their records then carry the verdict.

Archiving each generation (not only at the end) keeps the kernels of a run that is
later killed. The archive is an aid: when it fails, the run warns and goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from langgraph.runtime import Runtime

from kernelwright.agents.context import KContext
from kernelwright.graphs.state import KState
from kernelwright.tools.harness.sanitizer import OUT_OF_BOUNDS

log = structlog.get_logger(__name__)


def archive(state: KState, runtime: Runtime[KContext]) -> dict[str, Any]:
    ctx = runtime.context
    if ctx.archive is None:
        return {}
    from kernelwright.memory.records import record_from_candidate

    # A kernel memcheck rejected is stored too: its record replaces an earlier verified one (memory.records).
    todo = [r for r in (state.get("candidates") or {}).values() if not r.get("archived")
            and (r.get("status") == "passed" or r.get("reason") == OUT_OF_BOUNDS)]
    if not todo:
        return {}
    problem_name = Path(state["problem_path"]).stem
    try:
        records = [record_from_candidate(Path(r["source_path"]).parent, state.get("functional") or {},
                                         run_id=state.get("run_id", ""), problem_name=problem_name) for r in todo]
        outcomes = ctx.archive.add_many(records)
    except Exception as exc:  # noqa: BLE001 - never lose a run to its archive
        log.warning("archive_store_failed", error=f"{type(exc).__name__}: {exc}", kernels=len(todo))
        return {}
    log.info("kernels_archived", kernels=len(todo), outcomes=sorted(set(map(str, outcomes.values()))))
    return {"candidates": {r["id"]: {"archived": True} for r in todo}}
