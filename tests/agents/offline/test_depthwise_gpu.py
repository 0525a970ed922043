"""The candidates' own depthwise convolutions (offline_preview on) on a GPU: every fixture of
tests/fixtures/depthwise against a float64 reference at the harness's per-element tolerances, and the fp32 ones
shaped like KernelBench 82-85 through the real harness with kernel usage showing the candidate's own pool-style
kernel and no cuDNN. Not run yet (no GPU where they were written)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kernelwright.agents.offline import propose
from kernelwright.tools.sandbox.pool import WorkerOptions
from support.gpu_checks import assert_close_to_float64, passes_on_its_own_kernel, run_against_float64
from support.paths import FIXTURES

pytestmark = [pytest.mark.gpu, pytest.mark.nvcc, pytest.mark.slow, pytest.mark.timeout(1800)]
PROBLEMS = sorted((FIXTURES / "depthwise").glob("*.py"))


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.stem)
def test_depthwise_fixtures_match_float64(problem: Path, cache_env: Path, tmp_path: Path) -> None:
    cand = propose(problem, preview=True)[0]
    assert cand.variant == "fused" and not cand.kept_aten_ops
    (out, again), ref = run_against_float64(problem, cand.write(tmp_path / "candidate.py"), f"dw_{problem.stem}",
                                            calls=2)
    assert torch.equal(out, again)  # nothing derived from the inputs is kept between calls
    assert_close_to_float64(out, ref)


HARNESS = ["dw2d_square", "dw2d_asym_kernel_dilated", "dw2d_multiplier_bias", "dw2d_asym_asym"]


@pytest.mark.parametrize("name", HARNESS)
def test_depthwise_candidates_pass_the_harness_on_their_own_kernels(name: str, worker_options: WorkerOptions,
                                                                    tmp_path: Path) -> None:
    problem = FIXTURES / "depthwise" / f"{name}.py"
    cand = propose(problem, preview=True)[0]
    report = passes_on_its_own_kernel(problem, cand.write(tmp_path / "fused.py"), worker_options,
                                      "kw_k0", name)  # the depthwise step, k0
    usage = report.kernel_usage or {}
    assert not [k for k in usage.get("framework", ()) if "conv" in k.lower()], usage
