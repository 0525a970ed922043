"""`--translate-only`: what a machine without a GPU can tell about a problem, as `kernelwright run` does there.

The offline translator writes the problem's candidate in a memory-capped child process that runs get_inputs()
on the meta device (eval.bench.harness_prepare: level-1 inputs are GB-sized, level-3 models big); nvcc then
builds it in a CPU-only sandbox worker (tools.harness.precompile, the run's own build path). The row says
whether a candidate was produced (else the translator's reason) and whether it compiled (else nvcc's first
error line). Nothing is verified: that needs a GPU.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from kernelwright.agents.context import RunSettings
from kernelwright.eval.bench.harness_prepare import candidate_path, child_budget, prepare_one
from kernelwright.eval.kernelbench.problems import BenchProblem
from kernelwright.eval.kernelbench.rows import ProblemRow, first_error_line
from kernelwright.eval.kernelbench.runner import Lane, Solve
from kernelwright.tools.harness.evaluate import EvalSettings
from kernelwright.tools.problem.files import check_source
from kernelwright.tools.verify.precision import precision_profile

CANDIDATES_DIR = "candidates"
PREPARE_BUDGET_BYTES = 16 << 30  # room for users' own big models; child_budget keeps it under half of what is free
PREPARE_TIMEOUT_S = 900.0


def translate_solver(out: Path, settings: EvalSettings, *, lanes: int = 1, precision: str = "strict",
                     preview: bool) -> Solve:
    """`settings`: the job's (its build, pre-check and jail, as a graph run's builds take them). `preview`:
    RunSettings.offline_preview (the config's [agents] offline_preview), as a graph run would take it."""

    def solve(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
        return translate_and_build(problem, out / CANDIDATES_DIR / problem.level, settings, lanes=lanes,
                                   precision=precision, preview=preview)

    return solve


def translate_and_build(problem: BenchProblem, folder: Path, settings: EvalSettings, *, lanes: int = 1,
                        precision: str = "strict", preview: bool = RunSettings.offline_preview) -> ProblemRow:
    """One problem's translate-only row; its candidate (where the translator gives one) goes to `folder`, built
    with `settings`' build, pre-check and jail."""
    from kernelwright.tools.harness.precompile import build_candidate

    started = time.perf_counter()
    check_source(problem.path, "problem")
    entry = prepare_one(problem.path, folder, budget_bytes=child_budget(PREPARE_BUDGET_BYTES, lanes),
                        timeout_s=PREPARE_TIMEOUT_S, passthrough=False, preview=preview,
                        allow_tf32=precision_profile(precision).allows_tf32)
    row = ProblemRow(problem.key, problem.level, str(problem.path), "translate_only", "no_candidate",
                     reason=entry.why, precision=precision)
    if entry.kind == "offline":
        candidate = candidate_path(folder, problem.path.stem)
        built = build_candidate(problem.path, candidate, settings)
        row = ProblemRow(problem.key, problem.level, str(problem.path), "translate_only",
                         "compiled" if built.ok else "not_compiled",
                         reason="" if built.ok else first_error_line(built.error), candidate=True,
                         compiled=built.ok, precision=precision, kernel=str(candidate))
    return replace(row, wall_s=round(time.perf_counter() - started, 2))
