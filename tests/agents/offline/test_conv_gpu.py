"""The candidates' own convolutions (offline_preview on) on a GPU: every fixture of tests/fixtures/conv against a
float64 reference at the harness's per-element tolerances, and the fp32 2-D, 3-D, transposed, padded-channel,
grouped and zero-inserted transposed fixtures through the real harness with kernel usage showing the candidate's
own conv kernel and no cuDNN; and the plain TF32 convs a TF32-admitting profile gets (kernelbench) against float64
at that profile's tolerance (passed on an H100, session 18)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kernelwright.tools.sandbox.pool import WorkerOptions
from support.conv import fixture_conv_problems, propose_conv
from support.gpu_checks import assert_close_to_float64, passes_on_its_own_kernel, run_against_float64

pytestmark = [pytest.mark.gpu, pytest.mark.nvcc, pytest.mark.slow, pytest.mark.timeout(1800)]
FIXTURES = {p.stem: p for p in fixture_conv_problems()}


@pytest.mark.parametrize("problem", fixture_conv_problems(), ids=lambda p: p.stem)
def test_conv_fixtures_match_float64(problem: Path, cache_env: Path, tmp_path: Path) -> None:
    (cand,) = propose_conv(problem)
    (out, again), ref = run_against_float64(problem, cand.write(tmp_path / "candidate.py"), f"conv_{problem.stem}",
                                            calls=2)
    assert torch.equal(out, again)  # nothing derived from the inputs is kept between calls
    assert_close_to_float64(out, ref)


@pytest.mark.parametrize("name", ["conv2d_bias", "conv3d_fp32", "conv_transpose2d_strided"])
def test_plain_tf32_convs_match_float64_at_the_kernelbench_tolerance(name: str, cache_env: Path, tmp_path: Path) -> None:
    (cand,) = propose_conv(FIXTURES[name], allow_tf32=True)
    assert "_tf32_" in cand.source
    (out,), ref = run_against_float64(FIXTURES[name], cand.write(tmp_path / "candidate.py"), f"conv_tf32_{name}")
    assert_close_to_float64(out, ref, profile="kernelbench")


HARNESS = ["conv2d_bias", "conv3d_fp32", "conv_transpose2d_strided", "conv3d_c3", "conv_transpose3d_grouped",
           "conv_transpose3d_strided_dilated"]


@pytest.mark.parametrize("name", HARNESS)
def test_conv_candidates_pass_the_harness_on_their_own_kernels(name: str, worker_options: WorkerOptions,
                                                               tmp_path: Path) -> None:
    (cand,) = propose_conv(FIXTURES[name])
    passes_on_its_own_kernel(FIXTURES[name], cand.write(tmp_path / "fused.py"), worker_options, "kw_conv", name)
