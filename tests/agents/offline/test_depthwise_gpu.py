"""The candidates' own depthwise convolutions (offline_preview on) on a GPU: every fixture of
tests/fixtures/depthwise against a float64 reference at the harness's per-element tolerances, and the fp32 ones
shaped like KernelBench 82-85 through the real harness with kernel usage showing the candidate's own pool-style
kernel and no cuDNN. Not run yet (no GPU where they were written)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kernelwright.agents.offline import propose
from kernelwright.tools.harness.evaluate import EvalSettings, Evaluator
from kernelwright.tools.measure.timing import BenchSettings
from kernelwright.tools.sandbox.pool import WorkerOptions
from support.float64_check import assert_close_to_float64, run_against_float64
from support.paths import FIXTURES

pytestmark = [pytest.mark.gpu, pytest.mark.nvcc, pytest.mark.slow, pytest.mark.timeout(1800)]
PROBLEMS = sorted((FIXTURES / "depthwise").glob("*.py"))


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.stem)
def test_depthwise_fixtures_match_float64(problem: Path, cache_env: Path, tmp_path: Path) -> None:
    cand = propose(problem, conv=True)[0]
    assert cand.variant == "fused" and not cand.kept_aten_ops
    (out, again), ref = run_against_float64(problem, cand.write(tmp_path / "candidate.py"), f"dw_{problem.stem}",
                                            calls=2)
    assert torch.equal(out, again)  # nothing derived from the inputs is kept between calls
    assert_close_to_float64(out, ref)


FAST = EvalSettings(call_timeout_s=120.0, compile_baseline=False,
                    bench=BenchSettings(rep_ms=50.0, min_trials=30, max_total_ms=3000.0))
HARNESS = ["dw2d_square", "dw2d_asym_kernel_dilated", "dw2d_multiplier_bias", "dw2d_asym_asym"]


@pytest.fixture(scope="module")
def options(build_cache: Path) -> WorkerOptions:
    return WorkerOptions(env={"KERNELWRIGHT_CACHE_DIR": str(build_cache)})


@pytest.mark.parametrize("name", HARNESS)
def test_depthwise_candidates_pass_the_harness_on_their_own_kernels(name: str, options: WorkerOptions,
                                                                    tmp_path: Path) -> None:
    problem = FIXTURES / "depthwise" / f"{name}.py"
    cand = propose(problem, conv=True)[0]
    with Evaluator(problem, FAST, options) as ev:
        report = ev.evaluate(cand.write(tmp_path / "fused.py"))
    assert report.status == "passed", (report.reason, report.message)
    print(f"{name}: {report.speedup_vs_eager:.2f}x over eager")  # the figure, in the GPU log (-rA)
    usage = report.kernel_usage or {}
    assert any("kw_k0" in k for k in usage.get("custom", ())), usage  # the depthwise step, k0
    assert not usage.get("library"), usage  # no cuDNN: the conv is the candidate's
    assert not [k for k in usage.get("framework", ()) if "conv" in k.lower()], usage
