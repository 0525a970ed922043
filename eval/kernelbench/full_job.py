"""A bench problem solved by the main job: the agent graph of `kernelwright run`, in the problem's own process.

Offline translator and tuner by default, the LLM agents when a model is configured (graphs.run decides, as for
`run`), under the per-problem budget (evaluations, minutes, tokens, cost) and a hard time limit. Each problem's
run folder is `<out>/runs/<level>-<stem>/` (`kernelwright runs/report/trace --runs-dir <out>/runs` read it);
a problem whose run was stopped before it finished (Ctrl-C, an LLM outage) continues from its checkpoint.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelwright.agents.llm import ModelSettings
from kernelwright.eval.kernelbench.child import ChildOutcome, StandbyChild, run_in_child
from kernelwright.eval.kernelbench.environment import missing_module, no_cuda, requirement_or_failure
from kernelwright.eval.kernelbench.problems import BenchProblem
from kernelwright.eval.kernelbench.rows import FailureKind, ProblemRow, ProblemStatus, failed_row
from kernelwright.eval.kernelbench.runner import Interrupted, Lane
from kernelwright.graphs.run import RunBudget, RunResult, RunSetup
from kernelwright.tools.problem.files import check_source
from kernelwright.tools.run_folder import CandidateFolder, CandidateReport
from kernelwright.tools.verify.code_check import REASON as FORBIDDEN_CODE

LOGS_DIR = "logs"
# harness reasons of a candidate that never ran (forbidden_code: refused by the pre-check before any build)
BUILD_FAILURES = frozenset({"compile_error", "load_error", FORBIDDEN_CODE})
NOT_EVALUATED = frozenset({"pending", "screened_out"})


@dataclass(frozen=True)
class RunJob:
    """What every problem's run gets: the settings (setup.runs_dir is the bench's runs/), the per-problem budget,
    the models named for the bench (none: the configured ones, else offline), an archive, a hard time limit."""

    setup: RunSetup
    budget: RunBudget = field(default_factory=RunBudget)
    models: tuple[ModelSettings, ...] = ()
    critic_model: ModelSettings | None = None
    archive: Path | None = None  # None: no archive, so a table measures the system, not remembered kernels
    timeout_s: float | None = None  # the problem's process is killed past it

    @property
    def precision(self) -> str:
        return self.setup.eval_settings.precision


def graph_solver(job: RunJob, out: Path) -> GraphSolver:
    """Solve each problem with the agent graph in a child process on the lane's GPU (GraphSolver)."""
    return GraphSolver(job, out)


# What a problem's process imports before its problem arrives (StandbyChild): the run's graph and the report.
PRELOAD = ("kernelwright.eval.kernelbench.full_job", "kernelwright.eval.report")


class GraphSolver:
    """Solve each problem with the agent graph in a child process on the lane's GPU. Each lane keeps its next
    problem's process started (child.StandbyChild), so one problem's interpreter start and imports overlap the
    previous problem's run; `close()` stops the ones still waiting when the bench ends."""

    def __init__(self, job: RunJob, out: Path):
        self.job, self.out = job, out
        self._standby: dict[str, StandbyChild] = {}
        self._lock = threading.Lock()

    def __call__(self, problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
        check_source(problem.path, "problem")  # a file that is no problem fails here, before a process starts
        with self._lock:
            ready = self._standby.pop(lane.name, None)
            if not stop.is_set():
                # the lane's next problem's
                self._standby[lane.name] = StandbyChild(lane.gpu, lane.cores, PRELOAD, gate_dir=lane.gate_dir)
        return self._row(problem, lane, run_in_child(
            solve_here, (self.job, problem), log_path=self.out / LOGS_DIR / f"{problem.key}.log", gpu=lane.gpu,
            cores=lane.cores, timeout_s=self.job.timeout_s, stop=stop, standby=ready, gate_dir=lane.gate_dir))

    def close(self) -> None:
        with self._lock:
            waiting, self._standby = list(self._standby.values()), {}
        for child in waiting:
            child.close()

    def _row(self, problem: BenchProblem, lane: Lane, outcome: ChildOutcome) -> ProblemRow:
        job = self.job
        if outcome.failure == "stopped":
            raise Interrupted(problem.key)
        if outcome.result is not None:
            data = {**outcome.result, "wall_s": round(outcome.seconds, 2), "gpu": lane.gpu}
            row = ProblemRow.from_dict(data)
            if lane.gpu is not None and row.status == "compiled":  # compiled, and no GPU to verify on: not the problem's
                raise no_cuda(lane.gpu, problem.key)
            return row
        module = _missing_module(outcome)
        if module is not None:  # kernelwright's own dependency raises EnvironmentFailure: the bench stops
            reason = requirement_or_failure(module, problem.key, problem.path, while_loading=outcome.error_kind == "load",
                                            import_files=outcome.import_files)
            return failed_row(problem, "run", "missing_module", reason, wall_s=outcome.seconds, gpu=lane.gpu,
                              precision=job.precision)
        failure: FailureKind = ("timeout" if outcome.failure == "timeout" else "crash" if outcome.failure == "crash"
                                else "bad_problem" if outcome.error_kind == "load"
                                else "llm" if outcome.error_kind == "llm" else "error")
        return failed_row(problem, "run", failure, outcome.message, wall_s=outcome.seconds, gpu=lane.gpu,
                          precision=job.precision)


def _missing_module(outcome: ChildOutcome) -> str | None:
    """The module the problem's process could not import, where that is why it failed."""
    if outcome.failure not in ("raised", "crash"):
        return None
    return outcome.missing_module or missing_module(outcome.message)


def solve_here(job: RunJob, problem: BenchProblem) -> dict[str, Any]:
    """The child's work: the problem's run (continued from its checkpoint when one exists), as a row."""
    from kernelwright.graphs.run import optimize_problem
    from kernelwright.tools.run_folder import RunFolder

    started = RunFolder(job.setup.runs_dir / problem.run_id).checkpoints_path.exists()
    result = optimize_problem(problem.path, job.setup, resume=problem.run_id if started else None,
                              run_id=problem.run_id, budget=job.budget, models=job.models,
                              critic_model=job.critic_model, archive=job.archive)
    _write_report(result.run_dir)
    return row_from_run(problem, result, job.precision).to_dict()


def _write_report(run_dir: Path) -> None:
    """The run's HTML report, which the bench's page links to; a report that cannot be written costs only the link."""
    import structlog

    from kernelwright.eval.report import write_report

    try:
        write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - the row matters, the report is a convenience
        structlog.get_logger(__name__).warning("bench_report_failed", run_dir=str(run_dir), error=str(exc))


def row_from_run(problem: BenchProblem, result: RunResult, precision: str) -> ProblemRow:
    """A finished run's row: how far its candidates got, its best kernel's speedups, what it spent."""
    state = result.state
    records = list((state.get("candidates") or {}).values())
    evaluated = [r for r in records if r.get("status") not in NOT_EVALUATED]
    compiled = [r for r in evaluated if _compiled(r)]
    on_gpu = [r for r in compiled if r.get("status") != "needs_gpu"]
    spent = state.get("spent") or {}
    best = result.best
    status: ProblemStatus
    if best is not None:
        status, reason = "verified", ""
    elif not records:
        status, reason = "no_candidate", _why_none(state)
    elif not compiled:
        status, reason = "not_compiled", _first_build_error(evaluated) or "no candidate was evaluated"
    elif not on_gpu:
        status, reason = "compiled", "verification needs a CUDA GPU and none is visible"
    else:
        status, reason = "not_verified", _rejections(on_gpu)
    return ProblemRow(
        problem.key, problem.level, str(problem.path), "run", status, reason=reason, candidate=bool(records),
        compiled=bool(compiled), verified=best is not None,
        speedup_vs_eager=(best or {}).get("speedup_vs_eager"), speedup_vs_compile=(best or {}).get("speedup_vs_compile"),
        sanitized=result.sanitized if best is not None else None, precision=precision,
        gpu_name=_gpu_name(best) if best is not None else None,
        gpu_s=round(sum(float(r.get("seconds") or 0.0) for r in on_gpu), 2), evaluations=len(evaluated),
        tokens=int(spent.get("tokens") or 0), cost_usd=float(spent.get("cost_usd") or 0.0),
        run_dir=str(result.run_dir), kernel=str(result.best_kernel) if result.best_kernel else None,
        cuda_graph=_replays_a_graph(best) if best is not None else None,
        **(_headroom(best) if best is not None else {}))


def _compiled(record: dict[str, Any]) -> bool:
    status = record.get("status")
    return status in ("passed", "needs_gpu") or (status in ("rejected", "error")
                                                 and record.get("reason") not in BUILD_FAILURES)


def _why_none(state: dict[str, Any]) -> str:
    errors = [e for e in state.get("errors") or [] if isinstance(e, dict)]
    message = next((str(e.get("message")) for e in errors if e.get("message")), "")
    return message or str(state.get("stop_reason") or "nothing was proposed")


def _first_build_error(records: list[dict[str, Any]]) -> str:
    from kernelwright.eval.kernelbench.rows import first_error_line

    for record in records:
        report = _report(record)
        if report is not None:
            return f"{report.reason or record.get('reason')}: {first_error_line(report.error or {'message': report.message})}"
    return ""


def _rejections(records: list[dict[str, Any]]) -> str:
    counts = Counter(str(r.get("reason") or r.get("status")) for r in records)
    return "rejected: " + ", ".join(f"{reason} x{n}" for reason, n in counts.most_common(4))


def _gpu_name(best: dict[str, Any]) -> str | None:
    report = _report(best)
    name = report.gpu.get("name") if report is not None else None
    return str(name) if name else None


def _headroom(best: dict[str, Any]) -> dict[str, Any]:
    """The best kernel's share of GPU time in library kernels and its time over the problem's roofline floor,
    from its report; absent figures (an old report, no trace, no GPU measurement) stay None."""
    report = _report(best)
    if report is None:
        return {}
    usage, floor = report.kernel_usage, report.floor
    share = usage.get("library_time_share")
    ratio = floor.get("floor_ratio")
    return {"library_share": float(share) if isinstance(share, (int, float)) else None,
            "floor_ratio": float(ratio) if isinstance(ratio, (int, float)) else None,
            "floor_bound": str(floor["roofline_bound"]) if floor.get("roofline_bound") else None}


# What a source that captures a CUDA graph calls (torch's two capture APIs, and the graph object): a label for the
# table, not a check; the harness's checks are the same for graphed kernels (docs/KERNEL_POLICY.md).
_GRAPH_CAPTURE = re.compile(r"\bCUDAGraph\s*\(|\bcuda\.graph\s*\(|\bmake_graphed_callables\s*\(")


def _replays_a_graph(best: dict[str, Any]) -> bool | None:
    """Whether the best kernel's source captures a CUDA graph; None where the source cannot be read."""
    try:
        return bool(_GRAPH_CAPTURE.search(Path(str(best.get("source_path") or "")).read_text()))
    except OSError:
        return None


def _report(record: dict[str, Any]) -> CandidateReport | None:
    """The candidate's report.json, read through its owner (tools.run_folder); None where there is none."""
    if not record.get("source_path"):
        return None
    return CandidateFolder.of_source(str(record["source_path"])).read_report()
