"""Normalisation rows too long for registers (agents/offline/codegen_reduce.py), two tunables off by default until
a GPU has run them: CLUSTER (a row split over a thread-block cluster, its slices kept in shared memory, so it is
read once) and SPLIT (few long rows: partial statistics from many blocks a row, then blocks that merge them and
write). Each is offered only where it applies, compiles with nvcc for sm_90a on CPU, and on a GPU is verified by
the real harness beside the default kernels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kernelwright.agents.offline.codegen_reduce import CLUSTER_SLICE_BYTES, cluster_size, normalisation_split
from kernelwright.agents.offline.ir import Dag, ReductionStep
from kernelwright.agents.offline.propose import trace_all, tuning_target
from support.offline import FIXTURES, assert_builds_for_sm_90a, cuda_of, harness_failures

LONG_ROWS = FIXTURES / "offline" / "long_rows.py"
TUNABLES = ("CLUSTER", "SPLIT")


def _row(reduction: str, reduce: int, outer: int = 4) -> ReductionStep:
    empty = Dag((outer, reduce), ())
    return ReductionStep("k0", reduction, outer, reduce, 1, empty, empty, ())  # type: ignore[arg-type]


def _rendered(problem: Path, tunable: str) -> tuple[str, str, dict[str, int]]:
    """The fused plan at its defaults, and with `tunable` on for every step that offers it."""
    target = tuning_target(trace_all(problem), "fused")
    assert target is not None
    on = {d.name: d.choices[-1] for d in target.space.dims if d.name.endswith(f".{tunable}")}
    return target.render({}), target.render(on), on


def test_only_long_normalisation_rows_that_fit_a_cluster_get_the_cluster() -> None:
    assert cluster_size(_row("softmax", 70000)) == 2  # 69 items a thread: read twice by default
    assert cluster_size(_row("softmax", 393216)) == 8  # 1.5 MB rows: 192 KB a block
    assert cluster_size(_row("softmax", 8 * CLUSTER_SLICE_BYTES // 4 + 4)) == 0  # fits no portable cluster
    assert cluster_size(_row("softmax", 4096)) == 0  # cached in registers: read once already
    assert cluster_size(_row("sum", 70000)) == 0  # a plain reduction reads its row once


def test_only_few_long_normalisation_rows_get_the_split() -> None:
    assert normalisation_split(_row("layer_norm", 4 * 1024 * 1024, outer=16)) == 33  # KernelBench's layer norm
    assert normalisation_split(_row("layer_norm", 4 * 1024 * 1024, outer=896)) == 0  # rows enough to fill the GPU
    assert normalisation_split(_row("softmax", 4096, outer=4)) == 0  # short rows
    assert normalisation_split(_row("sum", 70000, outer=4)) == 0  # plain reductions split by default already


@pytest.mark.nvcc
@pytest.mark.parametrize("tunable", TUNABLES)
def test_the_kernels_compile_for_sm_90a(tmp_path: Path, tunable: str) -> None:
    default, tuned, on = _rendered(LONG_ROWS, tunable)
    assert len(on) == 3  # softmax, log-softmax, layer norm
    marker = "cudaLaunchAttributeClusterDimension" if tunable == "CLUSTER" else "_apply<<<"
    assert marker in tuned and marker not in default
    assert_builds_for_sm_90a(tuned, tmp_path / "cache")


@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.timeout(900)
def test_the_harness_verifies_both_and_times_them(tmp_path: Path, build_cache: Path) -> None:
    sources = {"default": _rendered(LONG_ROWS, "CLUSTER")[0], **{t: _rendered(LONG_ROWS, t)[1] for t in TUNABLES}}
    failed = harness_failures(LONG_ROWS, sources, tmp_path, build_cache)
    assert not [f for f in failed if f[1] in TUNABLES], failed


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a host C++ compiler")
@pytest.mark.parametrize("start, stop, stride", [(0, 0, 4), (0, 3, 4), (1, 17, 4), (0, 16, 1), (5, 1000, 7),
                                                  (3, 15, 3), (2, 14, 3), (0, 1, 1024)])
def test_the_batched_loop_visits_each_index_once_in_order(tmp_path: Path, start: int, stop: int, stride: int) -> None:
    """The long-row and column loops load LOAD_BATCH elements before using any (codegen_reduce.LOAD_BATCH); built as
    host C++, the loop must still visit start, start + stride, ... < stop, each once and in that order (a thread's
    pushes keep their order, so results do not change)."""
    import subprocess

    from kernelwright.agents.offline.codegen_reduce import _strided_loop

    loop = _strided_loop("long long", str(start), str(stop), str(stride), "long long", "r * 10", "seen.push_back(v);")
    program = tmp_path / "loop.cpp"
    program.write_text("#include <cstdio>\n#include <vector>\nint main() {\n    std::vector<long long> seen;\n"
                       + loop.replace("#pragma unroll", "") + "\n"
                       "    for (long long x : seen) std::printf(\"%lld \", x);\n    return 0;\n}\n")
    subprocess.run(["g++", "-O1", "-o", str(tmp_path / "loop"), str(program)], check=True, capture_output=True)
    printed = subprocess.run([str(tmp_path / "loop")], check=True, capture_output=True, text=True).stdout.split()
    assert [int(x) for x in printed] == [r * 10 for r in range(start, stop, stride)]


def test_long_rows_load_a_batch_before_pushing() -> None:
    default, _, _ = _rendered(LONG_ROWS, "CLUSTER")
    assert "vs[u] = kw_" in cuda_of(default) and "const float v = vs[u];" in cuda_of(default)
