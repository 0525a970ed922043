"""The bench's bookkeeping: deal the problems to lanes (one or more per GPU), solve each once, keep every row.

A finished problem (one with a result file) is skipped, never redone. Each lane takes the next pending
problem from one shared queue, so a GPU that finishes early takes more (level 3's networks differ in cost by
minutes). A problem whose solver raises is recorded as failed with the reason, and the lane goes on. Rows
are written as each problem finishes, from whichever lane solved it, into one results folder: that is the
merge across GPUs. When `stop` is set (Ctrl-C), lanes take no new problem and the problems in progress get
no row, so `--resume` runs them again. A failure of the machine rather than the problem (EnvironmentFailure:
kernelwright's own dependency missing, an unwritable results folder) gets no row either: lanes take no new
problem, the others finish the one they run, and the run ends with the failure named (BenchRun.environment).
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import structlog

from kernelwright.eval.kernelbench.environment import (
    EnvironmentFailure,
    missing_module,
    requirement_or_failure,
    traceback_files,
    unwritable,
)
from kernelwright.eval.kernelbench.problems import BenchProblem
from kernelwright.eval.kernelbench.rows import BenchMode, ProblemRow, ResultStore, failed_row
from kernelwright.tools.errors import ProblemError

log = structlog.get_logger(__name__)
STOP_WAIT_S = 10.0  # on Ctrl-C, how long each lane may take to let go of its problem


@dataclass(frozen=True, slots=True)
class Lane:
    """Where problems run: one GPU (its index as CUDA_VISIBLE_DEVICES names it) and a share of the cores, or
    (`on_cluster`) one slot of a Ray cluster: its problem's work goes to the cluster (eval.kernelbench.cluster).
    Several lanes may share a GPU: `gate_dir` is then the GPU gates' directory (tools.measure.gpu_gate) its
    problems' processes get, so a timing on the GPU never runs beside another lane's GPU work or builds."""

    name: str
    gpu: str | None = None
    cores: tuple[int, ...] | None = None
    on_cluster: bool = False
    gate_dir: str | None = None


class Interrupted(Exception):
    """The bench was stopped while this problem ran: it gets no row (a resume runs it again)."""


Solve = Callable[[BenchProblem, Lane, threading.Event], ProblemRow]  # raises Interrupted when stopped


@dataclass(frozen=True, slots=True)
class BenchEvent:
    kind: Literal["skipped", "started", "finished", "stopped"]  # stopped: no row (an environment failure)
    problem: BenchProblem
    lane: Lane | None = None
    row: ProblemRow | None = None


@dataclass
class BenchRun:
    rows: list[ProblemRow] = field(default_factory=list)  # every problem's row, in problem order (where it has one)
    solved: int = 0  # problems solved in this call (the others were finished before, or not reached)
    interrupted: bool = False
    environment: EnvironmentFailure | None = None  # the machine's failure that stopped the bench (the first)


def run_problems(problems: Sequence[BenchProblem], store: ResultStore, solve: Solve, lanes: Sequence[Lane], *,
                 mode: BenchMode, precision: str = "strict", stop: threading.Event | None = None,
                 on_event: Callable[[BenchEvent], None] | None = None, again: frozenset[str] = frozenset()) -> BenchRun:
    """Solve every problem without a finished row, and those in `again` (keys: `--redo`) whatever their row, on
    `lanes` at once; the rows of all of them. A problem run again keeps its old row until the new one replaces it,
    so a stop before it is reached loses nothing."""
    stop = stop or threading.Event()
    emit = on_event or (lambda event: None)
    done = store.finished()
    pending: queue.Queue[BenchProblem] = queue.Queue()
    for problem in problems:
        if problem.key in done and problem.key not in again:
            emit(BenchEvent("skipped", problem, row=done[problem.key]))
        else:
            pending.put(problem)
    solved: dict[str, ProblemRow] = {}
    failures: list[EnvironmentFailure] = []
    halt = threading.Event()  # an environment failure: no lane takes a new problem, none is killed
    lock = threading.Lock()

    def lane_loop(lane: Lane) -> None:
        while not stop.is_set() and not halt.is_set():
            try:
                problem = pending.get_nowait()
            except queue.Empty:
                return
            emit(BenchEvent("started", problem, lane))
            try:
                row = _solve_one(problem, lane, solve, stop, mode, precision)
                if row is None:
                    return  # stopped: no row
                _write(store, row)
            except EnvironmentFailure as exc:
                with lock:
                    failures.append(exc)
                halt.set()
                log.info("bench_environment_failure", problem=problem.key, error=str(exc))
                emit(BenchEvent("stopped", problem, lane))
                return
            with lock:
                solved[problem.key] = row
            emit(BenchEvent("finished", problem, lane, row))

    threads = [threading.Thread(target=lane_loop, args=(lane,), name=f"kw-bench-{lane.name}", daemon=True)
               for lane in lanes]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.2)  # short waits: Ctrl-C reaches this thread
    except KeyboardInterrupt:
        stop.set()  # lanes kill their children and take nothing new
        for thread in threads:
            thread.join(timeout=STOP_WAIT_S)
        raise
    rows = [solved.get(p.key) or done.get(p.key) for p in problems]
    return BenchRun([r for r in rows if r is not None], len(solved), interrupted=stop.is_set(),
                    environment=failures[0] if failures else None)


def _write(store: ResultStore, row: ProblemRow) -> None:
    try:
        store.write(row)
    except OSError as exc:
        failure = unwritable(exc, row.key)
        if failure is None:
            raise
        raise failure from None


def _solve_one(problem: BenchProblem, lane: Lane, solve: Solve, stop: threading.Event, mode: BenchMode,
               precision: str) -> ProblemRow | None:
    started = time.perf_counter()
    try:
        return solve(problem, lane, stop)
    except Interrupted:
        return None
    except EnvironmentFailure:
        raise  # the machine's failure, not this problem's: no row
    except ImportError as exc:  # kernelwright's own dependency raises EnvironmentFailure: the bench stops
        module = missing_module(exc)
        if module is None:
            return _error_row(problem, lane, exc, started, mode, precision)
        reason = requirement_or_failure(module, problem.key, problem.path, import_files=traceback_files(exc))
        return failed_row(problem, mode, "missing_module", reason, wall_s=time.perf_counter() - started,
                          gpu=lane.gpu, precision=precision)
    except OSError as exc:
        failure = unwritable(exc, problem.key)
        if failure is not None:
            raise failure from None
        return _error_row(problem, lane, exc, started, mode, precision)
    except ProblemError as exc:  # the file is no problem: recorded, the bench goes on
        return failed_row(problem, mode, "bad_problem", str(exc), wall_s=time.perf_counter() - started,
                          gpu=lane.gpu, precision=precision)
    except Exception as exc:  # noqa: BLE001 - one broken problem never stops the bench
        return _error_row(problem, lane, exc, started, mode, precision)


def _error_row(problem: BenchProblem, lane: Lane, exc: BaseException, started: float, mode: BenchMode,
               precision: str) -> ProblemRow:
    log.warning("bench_problem_failed", problem=problem.key, error=traceback.format_exc()[-2000:])
    return failed_row(problem, mode, "error", f"{type(exc).__name__}: {exc}"[:500],
                      wall_s=time.perf_counter() - started, gpu=lane.gpu, precision=precision)
