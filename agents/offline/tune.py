"""The parametric tuner: real timings over a candidate's TuneSpace, within a budget of evaluations.

First the proposed variants (fused, fused_scalar, aten_reductions) are evaluated; the best passing
one picks the plan to tune. Then random samples of its space, then local search (one tunable
moved one step) from the best setting so far, restarting from a fresh random point when no
neighbour improves. Only candidates the evaluator reports "passed" count: a rejected or failing
setting is recorded in the history and never returned. Settings whose generated source is the
same as one already tried cost nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from kernelwright.agents.offline.propose import GeneratedCandidate, propose, tuning_target
from kernelwright.agents.offline.space import TuneSpace
from kernelwright.agents.offline.trace import TracedProblem
from kernelwright.tools.source_hash import candidate_id

log = structlog.get_logger(__name__)
Evaluate = Callable[[Path], Mapping[str, Any]]  # candidate file -> EvalReport.to_dict()-shaped report


@dataclass(frozen=True)
class TuneTrial:
    variant: str
    params: dict[str, Any]
    path: str
    status: str
    reason: str | None = None
    speedup_vs_eager: float | None = None
    speedup_vs_compile: float | None = None
    median_ms: float | None = None
    phase: str = "variant"  # variant | random | local

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def score(self) -> float:
        """Higher is better; only meaningful for passed trials."""
        if self.speedup_vs_eager is not None:
            return self.speedup_vs_eager
        return 1.0 / self.median_ms if self.median_ms else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TuneResult:
    problem: str
    best: TuneTrial | None
    history: list[TuneTrial] = field(default_factory=list)
    budget: int = 0

    @property
    def evaluations(self) -> int:
        return len(self.history)

    def to_dict(self) -> dict[str, Any]:
        return {"problem": self.problem, "best": self.best.to_dict() if self.best else None, "budget": self.budget,
                "evaluations": self.evaluations, "history": [t.to_dict() for t in self.history]}


class _Search:
    def __init__(self, problem: str, evaluate: Evaluate, budget: int, out_dir: Path):
        self.problem, self.evaluate, self.budget, self.out_dir = problem, evaluate, budget, out_dir
        self.history: list[TuneTrial] = []
        self.seen: dict[str, TuneTrial | None] = {}

    @property
    def left(self) -> int:
        return self.budget - len(self.history)

    def run(self, variant: str, params: Mapping[str, Any], source: str, phase: str) -> TuneTrial | None:
        """Evaluate one source (None when it was already tried or the budget is spent)."""
        cid = candidate_id(source)
        if cid in self.seen or self.left <= 0:
            return None
        self.seen[cid] = None
        path = self.out_dir / f"{variant}_{cid[:12]}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        try:
            report = dict(self.evaluate(path))
        except Exception as exc:  # an evaluator failure is one failed trial, not the end of tuning
            report = {"status": "error", "reason": f"evaluator raised {type(exc).__name__}: {exc}"}
        timing = (report.get("timing") or {}).get("candidate") or {}
        trial = TuneTrial(variant, dict(params), str(path), str(report.get("status", "error")), report.get("reason"),
                          report.get("speedup_vs_eager"), report.get("speedup_vs_compile"), timing.get("median_ms"), phase)
        self.seen[cid] = trial
        self.history.append(trial)
        log.info("tune_trial", problem=self.problem, variant=variant, phase=phase, status=trial.status,
                 speedup_vs_eager=trial.speedup_vs_eager)
        return trial

    def best(self, variant: str | None = None) -> TuneTrial | None:
        passed = [t for t in self.history if t.passed and (variant is None or t.variant == variant)]
        return max(passed, key=lambda t: t.score()) if passed else None


def tune(problem_path: str | Path, evaluate: Evaluate, budget: int = 12, out_dir: str | Path = "offline_tune",
         seed: int = 0, *, traced: Sequence[TracedProblem] | None = None,
         candidates: Sequence[GeneratedCandidate] | None = None) -> TuneResult:
    """Search the offline candidates' tunables with real evaluations; returns the best passed trial and the history.

    Raises OfflineUnsupported (from propose) when the problem has no candidate at all."""
    from kernelwright.agents.offline.propose import trace_all

    rng = random.Random(seed)
    out = Path(out_dir)
    traced = list(traced or trace_all(problem_path))
    candidates = list(candidates or propose(problem_path, traced=traced))
    search = _Search(str(problem_path), evaluate, budget, out)
    for cand in candidates:
        search.run(cand.variant, cand.params, cand.source, "variant")
    start = search.best()
    if start is None or search.left <= 0:
        return TuneResult(str(problem_path), start, search.history, budget)
    target = tuning_target(traced, start.variant)
    if target is None:
        return TuneResult(str(problem_path), start, search.history, budget)

    def attempt(params: Mapping[str, Any], phase: str) -> TuneTrial | None:
        return search.run(target.variant, params, target.render(params), phase)

    _random_phase(search, target.space, attempt, rng, n=max(0, search.left // 2))
    _local_phase(search, target.space, attempt, rng,
                 start_params=dict((search.best() or start).params) or target.space.defaults())
    return TuneResult(str(problem_path), search.best(), search.history, budget)


def _random_phase(search: _Search, space: TuneSpace, attempt: Callable[[Mapping[str, Any], str], TuneTrial | None],
                  rng: random.Random, n: int) -> None:
    tries = 0
    done = 0
    while done < n and search.left > 0 and tries < 20 * max(n, 1):
        tries += 1
        if attempt(space.sample(rng), "random") is not None:
            done += 1


def _local_phase(search: _Search, space: TuneSpace, attempt: Callable[[Mapping[str, Any], str], TuneTrial | None],
                 rng: random.Random, start_params: dict[str, Any]) -> None:
    current = {**space.defaults(), **{k: v for k, v in start_params.items() if k in space.to_dict()}}
    current_score = _score_of(search, current)
    stale_rounds = 0
    while search.left > 0 and stale_rounds < 3:
        neighbours = space.neighbours(current)
        rng.shuffle(neighbours)
        improved = False
        for params in neighbours:
            if search.left <= 0:
                break
            trial = attempt(params, "local")
            if trial is not None and trial.passed and trial.score() > current_score:
                current, current_score, improved = dict(params), trial.score(), True
                break
        if not improved:
            stale_rounds += 1
            current = space.sample(rng)  # restart from a fresh point
            current_score = _score_of(search, current)


def _score_of(search: _Search, params: Mapping[str, Any]) -> float:
    for t in search.history:
        if t.passed and t.params == dict(params):
            return t.score()
    return float("-inf")

