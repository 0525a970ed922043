"""Row scans' STAGE tunable (agents/offline/codegen_reduce.py `_scan`): a tile is loaded and stored striped (each
warp access one contiguous run of the row) through shared memory, instead of each thread reading its own ITEMS
consecutive elements (warp accesses strided by ITEMS; on KernelBench's cumsum/cumprod, 32768 rows of 32768, those
kernels ran at about 3x the DRAM floor and got slower as ITEMS grew). Off by default, the fill's first neighbour.
Offered only for row scans, falls back where the tile would not fit static shared memory, compiles with nvcc for
sm_90a on CPU, and on a GPU is verified by the real harness beside the default kernels (sums and products)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.agents.offline.codegen_reduce import scan_stage_fits
from kernelwright.agents.offline.propose import trace_all, tuning_target
from support.offline import FIXTURES, assert_builds_for_sm_90a, harness_failures

SCANS = (FIXTURES / "offline" / "scans.py", FIXTURES / "offline" / "scan_products.py")


def _rendered(problem: Path, **moved: int) -> tuple[str, str]:
    """The fused plan at its space's defaults, and with STAGE on (plus `moved`, by tunable suffix)."""
    target = tuning_target(trace_all(problem), "fused")
    assert target is not None
    defaults = target.space.defaults()
    staged = {name: 1 if name.endswith(".STAGE") else moved.get(name.rsplit(".", 1)[1], value)
              for name, value in defaults.items()}
    return target.render(defaults), target.render(staged)


@pytest.mark.parametrize("problem", SCANS, ids=lambda p: p.stem)
def test_only_row_scans_offer_the_stage_and_the_fill_tries_it_first(problem: Path) -> None:
    target = tuning_target(trace_all(problem), "fused")
    assert target is not None
    stages = [d for d in target.space.dims if d.name.endswith(".STAGE")]
    assert len(stages) == 1 and stages[0].default == 0  # the row scan has it; the column scan (inner != 1) not
    defaults = target.space.defaults()
    step = stages[0].name.split(".")[0]
    moves_the_scan = [n for n in target.space.neighbours_up_first(defaults)
                      if any(n[k] != v for k, v in defaults.items() if k.startswith(step + "."))]
    assert moves_the_scan[0][stages[0].name] == 1  # the first of the scan's own moves


def test_a_tile_too_big_for_static_shared_memory_falls_back_to_direct_loads() -> None:
    assert scan_stage_fits(1024, 8, "float")  # 33 KB
    assert not scan_stage_fits(1024, 16, "float")  # 66 KB
    assert not scan_stage_fits(1024, 8, "double")
    default, big = _rendered(SCANS[0], TPR=1024, ITEMS=16)
    assert "__shared__ float stage" not in big and "KW_k0_ITEMS 16" in big


@pytest.mark.nvcc
@pytest.mark.parametrize("problem", SCANS, ids=lambda p: p.stem)
def test_the_staged_scan_compiles_for_sm_90a(tmp_path: Path, problem: Path) -> None:
    default, staged = _rendered(problem)
    assert "stage[" in staged and "stage[" not in default
    assert_builds_for_sm_90a(staged, tmp_path / "cache")


@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.timeout(900)
def test_the_harness_verifies_the_staged_scans_and_times_them(tmp_path: Path, build_cache: Path) -> None:
    failed = []
    for problem in SCANS:
        default, staged = _rendered(problem)
        failed += harness_failures(problem, {"default": default, "STAGE": staged}, tmp_path, build_cache)
    assert not failed, failed
