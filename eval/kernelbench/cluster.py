"""`kernelwright bench --executor ray`: the problems spread over a Ray cluster.

The bench's bookkeeping (runner.run_problems: lanes, rows, the results folder) stays on the driver. With Ray
a lane is one of the cluster's GPUs, not this machine's: each problem's run (its graph, checkpoint and run folder
on the driver) evaluates on one GPU actor of its own (ExecutorSettings.actors=1), wherever Ray places it, so as
many problems run at once as the cluster has GPUs. `--translate-only` sends each problem's translation and nvcc
build as a Ray CPU task (one lane per CPU of the cluster); the task returns the row and the candidate's text,
and the driver writes both.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from kernelwright.eval.kernelbench.problems import BenchProblem
from kernelwright.eval.kernelbench.rows import ProblemRow
from kernelwright.eval.kernelbench.runner import Interrupted, Lane, Solve
from kernelwright.eval.kernelbench.translate_only import CANDIDATES_DIR, translate_and_build
from kernelwright.graphs.executors import ExecutorSettings
from kernelwright.graphs.ray_executor import Bundle, connect
from kernelwright.tools.harness.evaluate import EvalSettings
from kernelwright.tools.problem.files import check_source

POLL_S = 0.5  # how often a lane waiting on its task looks at the stop flag (Ctrl-C)


def cluster_lanes(executor: ExecutorSettings, *, translate_only: bool) -> tuple[list[Lane], ExecutorSettings]:
    """Join the cluster; the bench's lanes on it, and the executor each problem's run joins it with."""
    import ray

    connect(executor)
    resources = ray.cluster_resources()
    # A problem's run (a child process) joins this very cluster, also one that Ray started here.
    joined = replace(executor, address=ray.get_runtime_context().gcs_address, actors=1)
    if translate_only:
        return [Lane(f"ray-cpu{i}", on_cluster=True) for i in range(max(1, int(resources.get("CPU", 1))))], joined
    gpus = int(resources.get("GPU", 0))
    if not gpus:
        return [Lane("ray-cpu")], joined  # no GPU in the cluster: each run compiles and stops, as on a machine without
    return [Lane(f"ray-gpu{i}", on_cluster=True) for i in range(gpus)], joined


def _translate_remote(problem: BenchProblem, source: Bundle, settings: EvalSettings, lanes: int, precision: str,
                      preview: bool) -> tuple[ProblemRow, str | None]:
    """A Ray CPU task: the problem's translate-only row and its candidate's text (None: no candidate)."""
    with tempfile.TemporaryDirectory(prefix="kw-ray-bench-") as root:
        staged = replace(problem, path=source.place(Path(root) / "problem"))
        row = translate_and_build(staged, Path(root) / "candidate", settings, lanes=lanes, precision=precision,
                                  preview=preview)
        text = Path(row.kernel).read_text() if row.kernel else None
    return row, text


def ray_translate_solver(out: Path, settings: EvalSettings, *, lanes: int = 1, precision: str = "strict",
                         preview: bool) -> Solve:
    """translate_only.translate_solver's work as Ray CPU tasks; rows and candidates land in `out` as there."""
    import ray

    task = ray.remote(num_cpus=1, max_retries=2)(_translate_remote)  # a lost node's task runs again elsewhere

    def solve(problem: BenchProblem, lane: Lane, stop: threading.Event) -> ProblemRow:
        check_source(problem.path, "problem")
        ref = task.remote(problem, Bundle.of_file(problem.path), settings, lanes, precision, preview)
        row, text = _wait(ray, ref, stop, problem)
        row = replace(row, problem=str(problem.path))
        if text is not None:
            kernel = out / CANDIDATES_DIR / problem.level / Path(str(row.kernel)).name
            kernel.parent.mkdir(parents=True, exist_ok=True)
            kernel.write_text(text)
            row = replace(row, kernel=str(kernel))
        return row

    return solve


def _wait(ray: Any, ref: Any, stop: threading.Event, problem: BenchProblem) -> Any:
    while True:
        done, _ = ray.wait([ref], timeout=POLL_S)
        if done:
            return ray.get(ref)
        if stop.is_set():
            ray.cancel(ref, force=True)
            raise Interrupted(problem.key)
