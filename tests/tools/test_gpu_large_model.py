"""On a GPU: a Model larger than the harness's host-memory limit is judged, not stopped. Its weights are made on
the GPU in both workers (the same seed, the same generator), so the reference and the candidate agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.agents.offline import propose
from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.sandbox.pool import WorkerOptions
from support.large_model import wide_linear_problem

pytestmark = [pytest.mark.gpu, pytest.mark.nvcc, pytest.mark.timeout(600)]


def test_a_model_over_the_host_memory_limit_is_verified(tmp_path: Path, build_cache: Path) -> None:
    problem = wide_linear_problem(tmp_path, 1 << 14, 3 << 14)  # 3.2 GB of fp32 weights; the workers get 3 GiB together
    (cand, *_) = propose(problem)
    settings = EvalSettings(host_memory_limit_gb=3.0, compile_baseline=False,
                            bench=BenchSettings(rep_ms=30.0, min_trials=10, max_total_ms=2000.0))
    with Evaluator(problem, settings, WorkerOptions(env={"KERNELWRIGHT_CACHE_DIR": str(build_cache)})) as ev:
        report = ev.evaluate(cand.write(tmp_path / "candidate.py"))
    assert report.status == "passed", (report.reason, report.message)
