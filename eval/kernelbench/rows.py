"""One bench problem's outcome (`ProblemRow`) and the results folder that keeps one JSON file per problem.

The status words and the failure kinds live here and nowhere else. A row is written once its problem is
finished, atomically, so a stopped bench resumes where it stopped and never redoes a finished problem. A
problem stopped by its LLM (an outage) is recorded but not finished: `--resume` continues its run.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Final, Literal, get_args

from kernelwright.eval.kernelbench.environment import missing_outside_problem
from kernelwright.eval.kernelbench.problems import BenchProblem

# verified: a kernel passed the harness (and memcheck) on a GPU; not_verified: candidates reached the GPU, none
# passed; compiled: a candidate compiled and nothing could verify it (no GPU, or --translate-only);
# not_compiled: candidates were written, none compiled; no_candidate: nothing to compile; failed: the problem's
# run crashed, timed out, the file is no problem, or it imports a module not installed here (`failure` says which).
# A failure of the machine itself (kernelwright's own dependency missing, an unwritable results folder) is no
# problem's failure and gets no row: it stops the bench (eval.kernelbench.environment).
ProblemStatus = Literal["verified", "not_verified", "compiled", "not_compiled", "no_candidate", "failed"]
PROBLEM_STATUSES: Final[tuple[ProblemStatus, ...]] = get_args(ProblemStatus)
FailureKind = Literal["bad_problem", "missing_module", "crash", "timeout", "llm", "error"]
BenchMode = Literal["run", "translate_only"]  # the agent graph on each problem, or translate and compile only
RESULTS_DIR = "results"


@dataclass(frozen=True, slots=True)
class ProblemRow:
    key: str
    level: str
    problem: str  # the problem file
    mode: BenchMode
    status: ProblemStatus
    reason: str = ""  # why it stopped where it did: the translator's reason, nvcc's first error, rejections, failure
    failure: FailureKind | None = None  # with status "failed"
    candidate: bool = False  # a candidate kernel was produced
    compiled: bool = False  # one of them compiled
    verified: bool = False  # one passed the harness on a GPU (correct)
    speedup_vs_eager: float | None = None  # the best verified kernel's, against baselines timed in its run
    speedup_vs_compile: float | None = None
    sanitized: bool | None = None  # compute-sanitizer memcheck passed the best kernel (None: nothing verified)
    precision: str = "strict"  # the precision profile it was judged under (tools.verify.precision)
    gpu: str | None = None  # the lane's GPU index
    gpu_name: str | None = None  # the card the best kernel was timed on
    wall_s: float = 0.0  # the problem's own wall time
    gpu_s: float = 0.0  # evaluation time of candidates that reached the GPU
    evaluations: int = 0  # candidates the harness evaluated
    tokens: int = 0
    cost_usd: float = 0.0
    run_dir: str | None = None  # the problem's run folder (mode "run")
    kernel: str | None = None  # the best verified kernel, or (translate-only) the candidate file
    library_share: float | None = None  # share of the best kernel's GPU time in library kernels (docs/KERNEL_POLICY.md)
    floor_ratio: float | None = None  # the best kernel's median time over the problem's roofline floor (1.0: at it)
    floor_bound: str | None = None  # what sets that floor: "memory" (bytes) or "compute" (FLOPs)
    # the best kernel replays its launches as a CUDA graph (its source captures one; docs/KERNEL_POLICY.md)
    cuda_graph: bool | None = None

    @property
    def finished(self) -> bool:
        """Never redone by --resume; an LLM outage leaves its problem resumable, and so does a row an older
        bench recorded for the environment's failure."""
        return self.failure != "llm" and not self.failed_for_environment

    @property
    def failed_for_environment(self) -> bool:
        """Recorded before the bench told the machine's failures from the problem's: a plain error naming a
        module that the problem file does not import (kernelwright's dependency, missing where it ran)."""
        return self.failure == "error" and missing_outside_problem(self.reason, Path(self.problem))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProblemRow:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def failed_row(problem: BenchProblem, mode: BenchMode, failure: FailureKind, reason: str, *,
               wall_s: float = 0.0, gpu: str | None = None, precision: str = "strict") -> ProblemRow:
    return ProblemRow(problem.key, problem.level, str(problem.path), mode, "failed", reason=reason, failure=failure,
                      wall_s=round(wall_s, 2), gpu=gpu, precision=precision)


def first_error_line(error: dict[str, Any] | None) -> str:
    """A build or load error's first line: nvcc's first diagnostic when it gave one, else the message's."""
    from kernelwright.tools.compile.diagnostics import Diagnostic

    error = error or {}
    diagnostics = [d for d in error.get("diagnostics") or [] if isinstance(d, dict)]
    errors = [d for d in diagnostics if d.get("severity") == "error"] or diagnostics
    if errors:
        return Diagnostic.from_dict(errors[0]).headline()[:300]
    message = str(error.get("message") or "").strip()
    return (message.splitlines() or ["(no message)"])[0][:300]


class ResultStore:
    """<out>/results/<level>/<stem>.json, one per problem."""

    def __init__(self, out: Path):
        self.root = Path(out) / RESULTS_DIR

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def write(self, row: ProblemRow) -> Path:
        path = self.path(row.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(row.to_dict(), indent=2, default=str))
        tmp.replace(path)  # a reader (or a resume) never sees half a row
        return path

    def read(self, path: Path) -> ProblemRow | None:
        """The row in `path`; None where it is unreadable (a resume redoes that problem)."""
        try:
            data = json.loads(path.read_text())
            return ProblemRow.from_dict(data) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError):
            return None

    def rows(self) -> list[ProblemRow]:
        """Every readable row under results/, in no particular order."""
        if not self.root.is_dir():
            return []
        return [row for path in self.root.rglob("*.json") if (row := self.read(path)) is not None]

    def finished(self) -> dict[str, ProblemRow]:
        return {row.key: row for row in self.rows() if row.finished}

    def failed_for_environment(self) -> list[ProblemRow]:
        """Rows an older bench recorded for the machine's failure: `--resume` redoes their problems."""
        return [row for row in self.rows() if row.failed_for_environment]

    def remove(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
