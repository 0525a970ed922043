"""Building many candidates in parallel on CPU workers (no GPU needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.tools.harness.precompile import build_candidates
from kernelwright.tools.sandbox.pool import WorkerOptions
from support.paths import FIXTURES as FIX
from support.paths import RELU_CANDIDATE


@pytest.mark.nvcc
def test_builds_in_parallel_and_reports_failures_in_place(build_cache: Path) -> None:
    options = WorkerOptions(env={"KERNELWRIGHT_CACHE_DIR": str(build_cache), "KERNELWRIGHT_ARCH": "sm_90a"})
    candidates = [RELU_CANDIDATE, FIX / "broken" / "candidate_compile_error.py", FIX / "honest" / "softmax_raw.py",
                  FIX / "broken" / "candidate_segfaults_on_import.py"]
    outcomes = build_candidates(FIX / "problems" / "relu_affine.py", candidates, jobs=2, options=options, timeout_s=120)
    assert [o.ok for o in outcomes] == [True, False, True, False]
    assert any(lib.startswith(str(build_cache)) for lib in outcomes[0].libraries)
    assert not any("lib-dynload" in lib or "site-packages" in lib for lib in outcomes[0].libraries), outcomes[0].libraries
    assert outcomes[1].error["type"] == "CompileError" and outcomes[1].error["diagnostics"]
    assert outcomes[3].error["type"] == "WorkerCrash"
