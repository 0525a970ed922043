"""Pointwise convolutions (every kernel extent 1, stride 1, no padding, groups or bias) as the candidate's own GEMM
(conv_plan.pointwise_as_matmul, with RunSettings.offline_preview): weight (K, C) @ input (N, C, spatial) in the
tensors' own NCHW memory, where the implicit-GEMM path copies both to channels-last and back (level1/87 on an H100:
the copies were 24 of its 31 ms). Other convolutions keep their plans."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kernelwright.agents.offline.ir import ConvStep, GemmStep, HostStep
from kernelwright.agents.offline.propose import plans_for, propose, trace_all
from support.conv import assert_interpreted_like_the_model, one_layer_problem
from support.gemm import traced_forward
from support.offline import assert_builds_for_sm_90a


def _problem(tmp_path: Path, layer: str, shape: str, dtype: str = "torch.float32") -> Path:
    return one_layer_problem(tmp_path / "problem.py", layer, shape, dtype=dtype)


@pytest.mark.parametrize(("layer", "shape", "dtype"), [
    ("nn.Conv2d(8, 16, 1, bias=False)", "2, 8, 6, 10", "torch.float32"),
    ("nn.Conv1d(8, 12, kernel_size=1, bias=False)", "3, 8, 20", "torch.float32"),
    ("nn.Conv3d(4, 8, (1, 1, 1), bias=False, dilation=2)", "2, 4, 3, 5, 6", "torch.float32"),
    ("nn.Conv2d(16, 8, 1, bias=False).to(torch.bfloat16)", "2, 16, 4, 8", "torch.bfloat16"),
])
def test_a_pointwise_conv_is_a_gemm_over_nchw_that_agrees_with_the_model(tmp_path: Path, layer: str, shape: str,
                                                                       dtype: str) -> None:
    """The interpreter computes the GemmStep from its own views (weight rows shared by every image, each image's
    channels x pixels): a wrong stride or role is a mismatch with the Model."""
    (traced,) = trace_all(_problem(tmp_path, layer, shape, dtype))
    (plan,) = plans_for([traced], preview=True)["fused"]
    (step,) = plan.steps
    assert isinstance(step, GemmStep)
    x = traced.inputs[0]
    assert step.batch == x.shape[0] and step.a.strides[0] == 0  # the weight, shared by every image
    assert step.mnk == (step.a.shape[1], x[0, 0].numel(), x.shape[1])  # K out channels x pixels, over C
    assert_interpreted_like_the_model(plan, traced)


@pytest.mark.parametrize(("layer", "why"), [
    ("nn.Conv2d(8, 16, 1)", "a bias"),
    ("nn.Conv2d(8, 16, 1, stride=2, bias=False)", "a stride"),
    ("nn.Conv2d(8, 16, 1, padding=1, bias=False)", "padding"),
    ("nn.Conv2d(8, 16, 1, groups=2, bias=False)", "groups"),
    ("nn.Conv2d(8, 16, 3, bias=False)", "a 3x3 kernel"),
    ("nn.ConvTranspose2d(8, 16, 1, bias=False)", "transposed"),
])
def test_other_convolutions_keep_their_plans(tmp_path: Path, layer: str, why: str) -> None:
    (traced,) = trace_all(_problem(tmp_path, layer, "2, 8, 6, 10"))
    plan = plans_for([traced], preview=True)["fused"][0]
    assert not any(isinstance(s, GemmStep) for s in plan.steps), why
    assert any(isinstance(s, ConvStep) or (isinstance(s, HostStep) and "conv" in s.target) for s in plan.steps), why


def test_with_the_preview_off_a_pointwise_conv_keeps_its_library_call(tmp_path: Path) -> None:
    (traced,) = trace_all(_problem(tmp_path, "nn.Conv2d(8, 16, 1, bias=False)", "2, 8, 6, 10"))
    (plan,) = plans_for([traced], preview=False)["fused"]
    assert [s.target for s in plan.steps if isinstance(s, HostStep)] == ["aten.conv2d.default"]


@pytest.mark.nvcc
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_the_pointwise_candidate_launches_its_gemm_and_builds_for_sm_90a(tmp_path: Path) -> None:
    problem = _problem(tmp_path, "nn.Conv2d(64, 128, 1, bias=False)", "4, 64, 32, 32")
    (cand,) = propose(problem, preview=True)
    forward = traced_forward(cand.source)
    assert "torch.ops.aten.conv" not in forward and "kw_conv" not in cand.source
    assert "kw_gemm_f32x3" in cand.source and cand.kept_aten_ops == ()
    assert_builds_for_sm_90a(cand.source, tmp_path / "cache")


@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.timeout(900)
def test_the_harness_verifies_the_pointwise_gemm_and_times_it(tmp_path: Path, build_cache: Path) -> None:
    """On a GPU: the pointwise candidate (the GEMM over NCHW) and, for comparison, the implicit-GEMM conv it
    replaces (the conv plan of the same problem) both pass the real harness; their speedups over eager print."""
    from kernelwright.agents.offline.conv_plan import conv_plan
    from kernelwright.agents.offline.planner import build_plan
    from kernelwright.agents.offline.propose import render
    from support.offline import harness_failures

    problem = _problem(tmp_path, "nn.Conv2d(64, 128, 1, bias=False)", "8, 64, 256, 256")
    (gemm,) = propose(problem, preview=True)
    traced = trace_all(problem)
    conv = conv_plan(build_plan(traced[0].program, preview=True))
    assert conv is not None
    implicit = render(traced, [conv], {}, "fused")
    failed = harness_failures(problem, {"pointwise GEMM": gemm.source, "implicit-GEMM conv": implicit}, tmp_path,
                              build_cache)
    assert not failed, failed
