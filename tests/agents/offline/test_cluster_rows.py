"""Normalisation rows too long for registers, split over a thread-block cluster (the CLUSTER tunable of
agents/offline/codegen_reduce.py): offered only where a row is read twice and its slices fit shared memory,
compiled with nvcc for sm_90a on CPU, and on a GPU verified by the real harness against the default kernels."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.agents.offline.codegen_reduce import CLUSTER_SLICE_BYTES, cluster_size
from kernelwright.agents.offline.ir import Dag, ReductionStep
from kernelwright.agents.offline.propose import trace_all, tuning_target
from kernelwright.tools.compile.nvcc import NvccCompiler
from kernelwright.tools.compile.raw_kernel import _ERROR_HELPER
from support.offline import FIXTURES, build_options_of, cuda_of

LONG_ROWS = FIXTURES / "offline" / "long_rows.py"


def _clustered(problem: Path) -> tuple[str, str, dict[str, int]]:
    target = tuning_target(trace_all(problem), "fused")
    assert target is not None
    clusters = {d.name: d.choices[-1] for d in target.space.dims if d.name.endswith(".CLUSTER")}
    return target.render({}), target.render(clusters), clusters


def test_only_long_normalisation_rows_that_fit_a_cluster_get_the_tunable() -> None:
    def row(reduction: str, reduce: int) -> ReductionStep:
        empty = Dag((4, reduce), ())
        return ReductionStep("k0", reduction, 4, reduce, 1, empty, empty, ())  # type: ignore[arg-type]

    assert cluster_size(row("softmax", 70000)) == 2  # 69 items a thread: read twice today
    assert cluster_size(row("softmax", 393216)) == 8  # 1.5 MB rows: 192 KB a block
    assert cluster_size(row("softmax", 8 * CLUSTER_SLICE_BYTES // 4 + 4)) == 0  # fits no portable cluster
    assert cluster_size(row("softmax", 4096)) == 0  # cached in registers: read once already
    assert cluster_size(row("sum", 70000)) == 0  # a plain reduction reads its row once


@pytest.mark.nvcc
def test_the_clustered_kernels_compile_for_sm_90a(tmp_path: Path) -> None:
    default, clustered, clusters = _clustered(LONG_ROWS)
    assert len(clusters) == 3 and set(clusters.values()) == {2}  # softmax, log-softmax, layer norm
    assert "cudaLaunchAttributeClusterDimension" in clustered and "cudaLaunchAttributeClusterDimension" not in default
    compiler = NvccCompiler(cache_dir=tmp_path / "cache", jobs=1)
    (result,) = compiler.compile_many([(cuda_of(clustered) + _ERROR_HELPER, build_options_of(clustered, "sm_90a"))])
    assert not isinstance(result, Exception), result
    assert result.artifact.exists()


@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.timeout(900)
def test_the_harness_verifies_the_clustered_rows_and_times_them(tmp_path: Path, build_cache: Path) -> None:
    from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
    from kernelwright.tools.measure.timing import BenchSettings
    from kernelwright.tools.sandbox.pool import WorkerOptions

    default, clustered, _ = _clustered(LONG_ROWS)
    settings = EvalSettings(call_timeout_s=60.0, compile_baseline=False,
                            bench=BenchSettings(rep_ms=50.0, min_trials=30, max_total_ms=2000.0))
    with Evaluator(LONG_ROWS, settings, WorkerOptions(env={"KERNELWRIGHT_CACHE_DIR": str(build_cache)})) as ev:
        reports = {}
        for name, source in (("default", default), ("clustered", clustered)):
            path = tmp_path / f"{name}.py"
            path.write_text(source)
            reports[name] = ev.evaluate(path)
    for name, report in reports.items():
        print(f"long_rows {name}: {report.status} {report.speedup_vs_eager}")
    assert reports["clustered"].status == "passed", (reports["clustered"].reason, reports["clustered"].message)
