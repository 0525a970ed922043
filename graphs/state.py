"""The state of an optimisation run, as LangGraph sees it.

Nodes return partial updates; keys that accumulate declare their reducer with
`Annotated[...]`. Reducers are pure module-level functions. A reset goes through
the typed `Replace` marker. TypedDict fields get no defaults (Python ignores them):
initial values come from `make_initial_state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypedDict, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Replace(Generic[T]):
    """Return `Replace(value)` from a node to overwrite an accumulating key instead of extending it."""

    value: T


class CandidateRecord(TypedDict, total=False):
    id: str  # kernelwright.tools.source_hash.candidate_id of its source
    generation: int
    parent_ids: list[str]
    agent: str  # translator | mutator | crossover | offline | a plugin's name
    model: str
    temperature: float
    prompt: str  # template tag, e.g. translator@v1
    source_path: str
    status: str  # pending | passed | rejected | needs_gpu | error | screened_out
    reason: str | None
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


def merge_candidates(current: dict[str, CandidateRecord] | None,
                     update: dict[str, CandidateRecord] | Replace[dict[str, CandidateRecord]]) -> dict[str, CandidateRecord]:
    """Candidates by id; an update for a known id overrides only the fields it names."""
    if isinstance(update, Replace):
        return dict(update.value)
    merged = dict(current or {})
    for cid, record in update.items():
        merged[cid] = {**merged.get(cid, {}), **record}  # type: ignore[typeddict-item]
    return merged


def extend_list(current: list[Any] | None, update: list[Any] | Replace[list[Any]]) -> list[Any]:
    if isinstance(update, Replace):
        return list(update.value)
    return [*(current or []), *update]


def add_counts(current: dict[str, Any] | None, update: dict[str, Any] | Replace[dict[str, Any]]) -> dict[str, Any]:
    """Nodes report what they spent ({"tokens": 812}); the state keeps the running totals."""
    if isinstance(update, Replace):
        return dict(update.value)
    totals = dict(current or {})
    for key, value in update.items():
        totals[key] = totals.get(key, 0) + value
    return totals


class Budget(TypedDict, total=False):
    """Limits (state["budget"]) and what was spent (state["spent"]); 0 or absent means no limit."""

    generations: int
    candidates: int
    wall_s: float
    tokens: int
    cost_usd: float


class KState(TypedDict, total=False):
    run_id: str
    problem_path: str
    functional: dict[str, Any]
    generation: int
    candidates: Annotated[dict[str, CandidateRecord], merge_candidates]
    population: list[str]  # ids of the current elite, replaced each generation
    errors: Annotated[list[dict[str, Any]], extend_list]
    budget: Budget
    spent: Annotated[Budget, add_counts]  # nodes return increments
    best_id: str | None
    eval_started_at: float  # when the current evaluation fan-out began (wall-time accounting)
    stop_reason: str | None  # which budget ended the run, when one did


def make_initial_state(run_id: str, problem_path: str, budget: Budget) -> KState:
    return KState(run_id=run_id, problem_path=problem_path, functional={}, generation=0, candidates={},
                  population=[], errors=[], budget=budget,
                  spent=Budget(generations=0, candidates=0, wall_s=0.0, tokens=0, cost_usd=0.0), best_id=None,
                  eval_started_at=0.0, stop_reason=None)
