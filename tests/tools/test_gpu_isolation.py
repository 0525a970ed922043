"""The sandbox's isolation on a real GPU: /dev/nvidia*, the driver libraries and nvcc stay reachable, an
honest CUDA candidate passes inside the jail, and the per-candidate cost of the jail is measured."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.sandbox.isolation import IsolationPolicy, probe
from kernelwright.tools.sandbox.pool import WorkerOptions
from support.paths import FIXTURES, RELU_CANDIDATE

pytestmark = [pytest.mark.gpu, pytest.mark.nvcc]
PROBLEM = FIXTURES / "problems" / "relu_affine.py"
FAST = EvalSettings(call_timeout_s=20.0, isolation="auto", compile_baseline=False, keep_standby=False,
                    bench=BenchSettings(rep_ms=50.0, min_trials=30, max_total_ms=2000.0))


def _evaluate(build_cache: Path, mode: str) -> tuple[object, float]:
    options = WorkerOptions(env={"KERNELWRIGHT_CACHE_DIR": str(build_cache)}, isolation=IsolationPolicy(mode=mode))  # type: ignore[arg-type]
    started = time.perf_counter()
    with Evaluator(PROBLEM, FAST, options) as ev:
        report = ev.evaluate(RELU_CANDIDATE)
    return report, time.perf_counter() - started


def test_an_honest_cuda_candidate_passes_inside_the_jail(build_cache: Path) -> None:
    state = probe()
    report, _ = _evaluate(build_cache, "auto")
    assert report.status == "passed", (report.reason, report.message)  # type: ignore[attr-defined]
    text = report.resources["isolation"]  # type: ignore[attr-defined]
    if {"net", "mount"} <= set(state.get("namespaces") or []):
        assert text.startswith("namespaces: net+mount; file system: read-only"), text
    print(json.dumps({"isolation": text}))


def test_per_candidate_overhead_of_the_jail(build_cache: Path) -> None:
    """Whole evaluation (workers' start-up included) of the same candidate, jail off then on; printed."""
    _evaluate(build_cache, "off")  # builds land in the cache first: both timed runs are cache hits
    off = min(_evaluate(build_cache, "off")[1] for _ in range(2))
    on = min(_evaluate(build_cache, "auto")[1] for _ in range(2))
    print(json.dumps({"evaluation_s": {"isolation_off": round(off, 3), "isolation_on": round(on, 3),
                                       "overhead_pct": round(100 * (on - off) / off, 1)}}))
    assert on < off * 1.5, (on, off)
