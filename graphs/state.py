"""The state of an optimisation run, as LangGraph sees it.

Nodes return partial updates; keys that accumulate declare their reducer with
`Annotated[...]`. Reducers are pure module-level functions. A reset goes through
the typed `Replace` marker. TypedDict fields get no defaults (Python ignores them):
initial values come from `make_initial_state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from kernelwright.agents.run_state import Budget, CandidateRecord, RunState
from kernelwright.graphs.generations import FIRST_GENERATION

__all__ = ["Budget", "CandidateRecord", "KState", "Replace", "RunState", "add_counts", "extend_list",
           "make_initial_state", "merge_candidates"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Replace(Generic[T]):
    """Return `Replace(value)` from a node to overwrite an accumulating key instead of extending it."""

    value: T


def merge_candidates(current: dict[str, CandidateRecord] | None,
                     update: dict[str, CandidateRecord] | Replace[dict[str, CandidateRecord]]) -> dict[str, CandidateRecord]:
    """Candidates by id; an update for a known id overrides only the fields it names."""
    if isinstance(update, Replace):
        return dict(update.value)
    merged = dict(current or {})
    for cid, record in update.items():
        merged[cid] = {**merged.get(cid, {}), **record}
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


class KState(RunState, total=False):
    """RunState as LangGraph merges it: accumulating keys declare their reducer."""

    candidates: Annotated[dict[str, CandidateRecord], merge_candidates]
    errors: Annotated[list[dict[str, Any]], extend_list]
    spent: Annotated[Budget, add_counts]  # nodes return increments


def make_initial_state(run_id: str, problem_path: str, budget: Budget) -> KState:
    return KState(run_id=run_id, problem_path=problem_path, functional={}, generation=FIRST_GENERATION,
                  candidates={}, population=[], errors=[], budget=budget,
                  spent=Budget(generations=0, candidates=0, wall_s=0.0, tokens=0, cost_usd=0.0), best_id=None,
                  eval_started_at=0.0, stop_reason=None, winner_checked=False, winner_sanitizer=None)
