"""The Ray executor on a real GPU: a batch of candidates built by Ray CPU tasks and evaluated by a GPU actor's
harness (its own baselines, on the card the actor holds), and the per-candidate cost against the local executor.
Needs ray on the GPU machine (scripts/gpu/fetch_wheels.sh ray carries a slimmed wheel)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kernelwright.graphs.executors import ExecutorSettings, open_evaluator
from kernelwright.tools.compile.nvcc import BuildSettings
from kernelwright.tools.harness.evaluate import EvalSettings
from kernelwright.tools.measure.timing import BenchSettings
from support.candidate_variants import candidate_variants
from support.paths import FIXTURES

ray = pytest.importorskip("ray", reason="the Ray executor's GPU test needs ray (pip install 'kernelwright[ray]')")
pytestmark = [pytest.mark.gpu, pytest.mark.nvcc, pytest.mark.timeout(600)]
PROBLEM = FIXTURES / "problems" / "relu_affine.py"
BATCH = 4


def _per_candidate_s(kind: str, candidates: list[Path], cache: Path) -> tuple[float, list[object]]:
    settings = EvalSettings(compile_baseline=False, build=BuildSettings(cache_dir=cache),
                            bench=BenchSettings(rep_ms=50.0, min_trials=30, max_total_ms=2000.0))
    evaluator = open_evaluator(PROBLEM, settings, ExecutorSettings(kind))  # type: ignore[arg-type]
    try:
        evaluator.evaluate(candidates[0])  # warm: workers, reference side, the first build
        started = time.perf_counter()
        reports = [evaluator.evaluate(c) for c in candidates[1:]]
        return (time.perf_counter() - started) / len(reports), reports
    finally:
        evaluator.close()


def test_a_batch_through_a_gpu_actor_and_its_overhead_against_the_local_executor(tmp_path: Path) -> None:
    ray.init(num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        local_s, local = _per_candidate_s("local", candidate_variants(tmp_path / "local", BATCH), tmp_path / "cache-local")
        ray_s, remote = _per_candidate_s("ray", candidate_variants(tmp_path / "ray", BATCH), tmp_path / "cache-ray")
    finally:
        ray.shutdown()
    assert [r.status for r in remote] == ["passed"] * (BATCH - 1), [(r.reason, r.message) for r in remote]  # type: ignore[attr-defined]
    assert all(r.gpu.get("node") and r.gpu.get("ray_node_id") for r in remote)  # type: ignore[attr-defined]
    assert [r.status for r in local] == ["passed"] * (BATCH - 1)  # type: ignore[attr-defined]
    print(json.dumps({"per_candidate_s": {"local": round(local_s, 3), "ray": round(ray_s, 3),
                                          "overhead_pct": round(100 * (ray_s - local_s) / local_s, 1)}}))
