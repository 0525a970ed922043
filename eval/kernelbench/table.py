"""The field's table from a bench's rows: per level and overall, how many problems got how far, fast_p, and the
speedups over eager and torch.compile.

Definitions (README "Benchmarking on KernelBench"):
- fast_p: the share of ALL problems whose kernel is correct (verified) and more than p times faster than the
  baseline, as KernelBench's `fastp` counts it (speedup > p); fast_0 is the share that is correct.
- speedups "over all problems": a problem with no verified kernel counts as 1.0x (the user keeps PyTorch); a
  verified kernel counts with its measured speedup, also when it is slower. "Over correct": verified kernels only.
- the geometric mean is exp(mean(log speedup)); medians and means of an empty set are None (shown as "-").
- torch.compile vs eager: torch.compile's own speedup over eager in a problem's run (eager's time over
  torch.compile's, i.e. our speedup over eager divided by our speedup over torch.compile), median over the verified
  problems (whose runs timed both): the figure a level's median over eager is held against.
- x floor: a verified kernel's median time over its problem's roofline floor (tools.measure.problem_floor:
  bytes at the card's measured copy bandwidth or FLOPs at its peak rate, whichever is longer); per level, the
  median over the verified kernels that have one.
Baselines are those timed in each problem's own run on its own card, so every ratio compares like with like.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kernelwright.eval.kernelbench.problems import natural_key
from kernelwright.eval.kernelbench.rows import ProblemRow

FAST_P: tuple[float, ...] = (0.0, 1.0, 1.5, 2.0)
OVERALL = "all"


def fast_p_name(p: float) -> str:
    return f"fast_{p:g}"


def fast_p(rows: Sequence[ProblemRow], p: float, speedup: Callable[[ProblemRow], float | None]) -> float | None:
    """Share of `rows` that are correct and more than `p` times faster (fast_0: correct); None for no rows."""
    if not rows:
        return None
    hits = sum(1 for r in rows if r.verified and (p == 0 or ((s := speedup(r)) is not None and s > p)))
    return hits / len(rows)


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def geomean(values: Sequence[float]) -> float | None:
    positive = [v for v in values if v > 0]
    return math.exp(statistics.fmean(math.log(v) for v in positive)) if positive else None


@dataclass(frozen=True, slots=True)
class SpeedupStats:
    median_all: float | None  # every problem, 1.0x where nothing is verified
    geomean_all: float | None
    median_correct: float | None  # verified kernels only
    geomean_correct: float | None
    correct_measured: int  # verified kernels with this speedup measured

    @classmethod
    def of(cls, rows: Sequence[ProblemRow], speedup: Callable[[ProblemRow], float | None]) -> SpeedupStats:
        correct = [s for r in rows if r.verified and (s := speedup(r)) is not None]
        every = [s if r.verified and (s := speedup(r)) is not None else 1.0 for r in rows]
        return cls(median(every), geomean(every), median(correct), geomean(correct), len(correct))


def _eager(row: ProblemRow) -> float | None:
    return row.speedup_vs_eager


def _compile(row: ProblemRow) -> float | None:
    return row.speedup_vs_compile


def _compile_over_eager(row: ProblemRow) -> float | None:
    eager, compiled = row.speedup_vs_eager, row.speedup_vs_compile
    return eager / compiled if eager and compiled else None


@dataclass(frozen=True, slots=True)
class LevelSummary:
    level: str  # a level's name, or OVERALL
    problems: int
    candidate: int
    compiled: int
    correct: int
    failed: int
    reached_gpu: int  # problems whose candidates a GPU judged (0 for a translate-only bench)
    fast_p_eager: dict[str, float | None]
    fast_p_compile: dict[str, float | None]
    vs_eager: SpeedupStats
    vs_compile: SpeedupStats
    wall_s: float  # the problems' own times, summed (lanes run at once: the bench's elapsed time is less)
    gpu_s: float
    tokens: int
    cost_usd: float
    median_floor_ratio: float | None = None  # verified kernels' time over their problem's roofline floor
    compile_vs_eager_median: float | None = None  # torch.compile's own median speedup over eager (verified rows)

    @classmethod
    def of(cls, level: str, rows: Sequence[ProblemRow]) -> LevelSummary:
        return cls(
            level, len(rows), sum(r.candidate for r in rows), sum(r.compiled for r in rows),
            sum(r.verified for r in rows), sum(r.status == "failed" for r in rows),
            sum(r.status in ("verified", "not_verified") for r in rows),
            {fast_p_name(p): fast_p(rows, p, _eager) for p in FAST_P},
            {fast_p_name(p): fast_p(rows, p, _compile) for p in FAST_P},
            SpeedupStats.of(rows, _eager), SpeedupStats.of(rows, _compile),
            round(sum(r.wall_s for r in rows), 1), round(sum(r.gpu_s for r in rows), 1), sum(r.tokens for r in rows),
            round(sum(r.cost_usd for r in rows), 4),
            median([r.floor_ratio for r in rows if r.verified and r.floor_ratio is not None]),
            median([v for r in rows if r.verified and (v := _compile_over_eager(r)) is not None]))


@dataclass(frozen=True)
class BenchTable:
    levels: list[LevelSummary]  # each level, then OVERALL
    rows: list[ProblemRow]  # sorted by level, then problem
    precisions: dict[str, int] = field(default_factory=dict)  # profile -> problems judged under it
    gpus: list[str] = field(default_factory=list)  # the cards kernels were timed on
    modes: dict[str, int] = field(default_factory=dict)

    @property
    def overall(self) -> LevelSummary:
        return self.levels[-1]

    @property
    def translate_only(self) -> bool:
        return set(self.modes) == {"translate_only"}

    @property
    def without_gpu(self) -> bool:
        """No problem ran where a GPU could judge it (--translate-only, or a bench on a machine without one): the
        table then has no correct, fast_p or speedup figures rather than zeros."""
        return not any(r.gpu is not None or r.status in ("verified", "not_verified") for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"precisions": self.precisions, "gpus": self.gpus, "modes": self.modes,
                "levels": [asdict(s) for s in self.levels], "rows": [r.to_dict() for r in self.rows]}


def summarise(rows: Sequence[ProblemRow]) -> BenchTable:
    ordered = sorted(rows, key=lambda r: (natural_key(r.level), natural_key(r.key)))
    levels = sorted({r.level for r in ordered}, key=natural_key)
    summaries = [LevelSummary.of(level, [r for r in ordered if r.level == level]) for level in levels]
    summaries.append(LevelSummary.of(OVERALL, ordered))
    return BenchTable(summaries, ordered, dict(Counter(r.precision for r in ordered)),
                      sorted({r.gpu_name for r in ordered if r.gpu_name}), dict(Counter(r.mode for r in ordered)))
