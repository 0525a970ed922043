"""The winner's memcheck: a run's best verified kernel goes through compute-sanitizer before it is reported.

At the run's end (`sanitize_winner`, between the last archive pass and END) the best verified candidate is
sanitized (`CandidateEvaluator.sanitize`). Memory errors (status out_of_bounds) reject it with that reason,
in its record and its report, and the next best is sanitized, until one is not rejected or none is
left. A sanitizer that cannot run (unavailable, timeout, error) leaves the kernel the best, and every report
says `sanitized: no` and why. `sanitize_in_order` is that rule for the suite benchmark too
(eval/bench/offline); `sanitized_text` is how every report words a verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from langgraph.runtime import Runtime

from kernelwright.agents.context import KContext
from kernelwright.graphs.selection import ranked_verified
from kernelwright.graphs.state import CandidateRecord, KState
from kernelwright.tools.harness.sanitizer import OUT_OF_BOUNDS, SanitizeVerdict, verdict_update
from kernelwright.tools.run_folder import CandidateFolder

log = structlog.get_logger(__name__)
Sanitize = Callable[[Path], Mapping[str, Any]]  # candidate file -> SanitizeVerdict.to_dict()


@dataclass(frozen=True, slots=True)
class WinnerCheck:
    winner: str | None  # the first candidate memcheck did not reject (None: it rejected every one)
    verdicts: dict[str, dict[str, Any]]  # candidate -> verdict, in the order sanitized

    @property
    def rejected(self) -> list[str]:
        return [key for key, verdict in self.verdicts.items() if verdict.get("status") == OUT_OF_BOUNDS]


def sanitize_in_order(ranked: Sequence[tuple[str, Path]], sanitize: Sanitize) -> WinnerCheck:
    """Sanitize the candidates best first and stop at the first one memcheck does not reject."""
    verdicts: dict[str, dict[str, Any]] = {}
    for key, path in ranked:
        try:
            verdict = dict(sanitize(path))
        except Exception as exc:  # noqa: BLE001 - a broken sanitizer leaves the kernel unsanitized, not the run failed
            verdict = SanitizeVerdict("error", f"the sanitizer raised {type(exc).__name__}: {exc}", 0.0).to_dict()
        verdicts[key] = verdict
        if verdict.get("status") != OUT_OF_BOUNDS:
            return WinnerCheck(key, verdicts)
    return WinnerCheck(None, verdicts)


def sanitized_text(verdict: Mapping[str, Any] | None) -> str:
    """'yes', or 'no (why)': how reports word a verdict (None or empty: memcheck did not run)."""
    if not verdict:
        return "no (memcheck not run)"
    if verdict.get("sanitized"):
        return "yes"
    return f"no ({verdict.get('status')}: {verdict.get('message')})"


def memcheck_rejected(candidates: Mapping[str, CandidateRecord]) -> list[str]:
    """The verified candidates the winner's memcheck rejected."""
    return [cid for cid, r in candidates.items() if r.get("sanitizer") == OUT_OF_BOUNDS and r.get("status") == "rejected"]


def sanitize_winner(state: KState, runtime: Runtime[KContext]) -> dict[str, Any]:
    """The run's end: memcheck its best verified candidate, falling back to the next best on memory errors."""
    evaluator = runtime.context.evaluator
    records = state.get("candidates") or {}
    ranked = [(r["id"], Path(r["source_path"])) for r in ranked_verified(records)]

    def sanitize(source: Path) -> Mapping[str, Any]:
        # a verdict already in the report (the harness's own pass, harness.sanitize; a resumed end) counts
        report = CandidateFolder.of_source(source).read_report()
        return (report.sanitizer if report is not None else None) or evaluator.sanitize(source).to_dict()

    check = sanitize_in_order(ranked, sanitize)
    rejected = set(check.rejected)
    verdict = check.verdicts.get(check.winner) if check.winner else None
    log.info("winner_sanitized", run_id=state.get("run_id"), best_id=check.winner, rejected=len(rejected),
             status=(verdict or {}).get("status"))
    return {"candidates": {cid: _apply(records[cid], v) for cid, v in check.verdicts.items()},
            "best_id": check.winner, "winner_checked": True, "winner_sanitizer": verdict,
            "population": [cid for cid in state.get("population") or [] if cid not in rejected]}


def _apply(record: CandidateRecord, verdict: dict[str, Any]) -> CandidateRecord:
    """Write the verdict into the candidate's report; its record update (archived again with it)."""
    update = verdict_update(verdict)
    if record.get("report_path"):
        CandidateFolder.of_source(record["source_path"]).update_report(update)
    out = CandidateRecord(sanitizer=verdict["status"], archived=False)
    if "status" in update:
        out["status"], out["reason"] = update["status"], update["reason"]
    return out
