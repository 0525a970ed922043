"""What agent nodes read from a run's state and return to it: the candidate records, the budget, and the
state's keys. Agents import these, never `graphs/` (the dependency direction); `graphs.state.KState`
extends `RunState` with the reducers that decide how the graph merges node updates.

A candidate's status is a `CandidateStatus`: the harness's verdicts (tools.harness.results.Status) plus the two the
graph adds. Its reason is the harness's stable name for a rejection (tools: compile_error, wrong_output, the
integrity check's name, tools.harness.sanitizer.OUT_OF_BOUNDS, ...) or SCREENED_OUT, which this module owns."""

from __future__ import annotations

from typing import Any, Final, Literal, TypedDict, get_args

from kernelwright.tools.harness.results import Status
from kernelwright.tools.harness.sanitizer import SanitizeStatus

# pending: proposed, not yet evaluated; screened_out: the critic's screen kept it from the harness
CandidateStatus = Literal[Status, "pending", "screened_out"]
CANDIDATE_STATUSES: Final[tuple[CandidateStatus, ...]] = get_args(CandidateStatus)
SCREENED_OUT: Final = "screened_out"  # a status, and the reason a screened-out candidate carries


def candidate_status(value: object) -> CandidateStatus:
    """A status read back from a file or an event: one of CANDIDATE_STATUSES, anything else "error"."""
    return next((s for s in CANDIDATE_STATUSES if s == value), "error")


class CandidateRecord(TypedDict, total=False):
    id: str  # kernelwright.tools.source_hash.candidate_id of its source
    generation: int
    parents: list[str]  # the lineage (tools.run_folder.LINEAGE_KEY): ids of the candidates it was made from
    agent: str  # translator | mutator | crossover | offline | a plugin's name
    model: str
    temperature: float
    prompt: str  # template tag, e.g. translator@v1
    source_path: str
    status: CandidateStatus
    reason: str | None  # why it is not passed: a harness reason name, or SCREENED_OUT
    speedup_vs_eager: float | None
    speedup_vs_compile: float | None
    report_path: str
    lint: str  # written by plugins that look at sources before evaluation
    screen: str  # the critic's soft pre-verification verdict (never a substitute for the harness)
    critique: str  # the critic's verdict
    directions: list[str]  # the critic's proposals, used by the mutator
    profile_summary: str  # the profiler's bottleneck summary
    repair_depth: int  # how many diagnostic repairs led here (0 for a fresh proposal)
    repair_tried: bool  # a repair of this failed candidate was already proposed
    seconds: float  # evaluation wall time
    variant: str  # the offline translator's variant (fused, fused_scalar, aten_reductions, *_tuned)
    params: dict[str, Any]  # the offline translator's tunables for this candidate
    archived: bool  # stored in the kernel archive
    sanitizer: SanitizeStatus  # compute-sanitizer memcheck of a winner


class Budget(TypedDict, total=False):
    """Limits (state["budget"]) and what was spent (state["spent"]); 0 or absent means no limit."""

    generations: int
    candidates: int
    wall_s: float
    tokens: int
    cost_usd: float


class RunState(TypedDict, total=False):
    """Every key of a run's state, as agent nodes read it (graphs.state.KState adds the reducers)."""

    run_id: str
    problem_path: str
    functional: dict[str, Any]
    generation: int
    candidates: dict[str, CandidateRecord]
    population: list[str]  # ids of the current elite, replaced each generation
    errors: list[dict[str, Any]]
    budget: Budget
    spent: Budget  # nodes return increments
    best_id: str | None
    eval_started_at: float  # when the current evaluation fan-out began (wall-time accounting)
    stop_reason: str | None  # which budget ended the run, when one did
    winner_checked: bool  # the run's end: its best verified candidate went through memcheck (graphs/sanitizing)
    winner_sanitizer: dict[str, Any] | None  # that best's verdict (SanitizeVerdict.to_dict()); None: nothing verified
