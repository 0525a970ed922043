"""The tunable ZI (conv_plan.zero_insertion_offered, codegen_conv.conv_dims): a 3-D strided transposed convolution,
which CUTLASS runs as a strided dgrad with its analytic iterator only (95-98% of level1/72 and 73 on an H100), may
run as the zero-inserted fprop with the optimized iterator instead, as it already does where stride and dilation are
both above 1. Off by default; the fill and the tuner measure it. On CPU: where it is offered, that the interpreter
(run_conv, from the launch's own numbers) agrees with the Model either way, and that the candidate builds. On a GPU:
the harness verifies both and prints their speedups."""

from __future__ import annotations

import functools
import re
import shutil
from pathlib import Path

import pytest

from kernelwright.agents.offline import interp
from kernelwright.agents.offline.codegen_conv import conv_dims
from kernelwright.agents.offline.conv_plan import conv_launch, run_conv, zero_insertion_offered
from kernelwright.agents.offline.ir import ConvStep
from kernelwright.agents.offline.propose import plans_for, propose, trace_all
from kernelwright.agents.offline.space import plan_space
from support.conv import assert_interpreted_like_the_model, one_layer_problem
from support.gemm import traced_forward
from support.offline import assert_builds_for_sm_90a

# level1/72 and 73 in small: grouped, strided, padded, an output padding, an asymmetric kernel
OFFERED = [
    ("nn.ConvTranspose3d(8, 8, (3, 5, 3), stride=2, padding=(1, 2, 1), output_padding=1, groups=2, bias=False)",
     "2, 8, 4, 5, 6"),
    ("nn.ConvTranspose3d(8, 16, 3, stride=(2, 1, 2), padding=1)", "2, 8, 3, 4, 5"),
]


def _step(tmp_path: Path, layer: str, shape: str) -> tuple[ConvStep, object, object]:
    (traced,) = trace_all(one_layer_problem(tmp_path / "problem.py", layer, shape))
    (plan,) = plans_for([traced], preview=True)["fused"]
    step = plan.steps[0]
    assert isinstance(step, ConvStep)
    return step, plan, traced


@pytest.mark.parametrize(("layer", "shape"), OFFERED)
def test_a_3d_strided_transposed_conv_offers_the_zero_inserted_fprop_and_both_agree_with_the_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layer: str, shape: str) -> None:
    step, plan, traced = _step(tmp_path, layer, shape)
    assert zero_insertion_offered(step)
    assert (f"{step.name}.ZI", (0, 1), 0) in conv_dims(step, plan.buffers)  # type: ignore[attr-defined]
    space = plan_space(plan)  # type: ignore[arg-type]
    assert space.switched_on(space.defaults()) == {**space.defaults(), f"{step.name}.ZI": 1}  # the fill's first slot
    dgrad, fprop = (conv_launch(step, plan.buffers, zero_insert=z) for z in (False, True))  # type: ignore[attr-defined]
    assert dgrad.operator == "dgrad" and not dgrad.flip
    assert fprop.operator == "fprop" and fprop.flip and fprop.stride_support == "unity" and fprop.fits_a_kernel
    assert_interpreted_like_the_model(plan, traced)  # the default: the dgrad
    monkeypatch.setattr(interp, "run_conv", functools.partial(run_conv, zero_insert=True))
    assert_interpreted_like_the_model(plan, traced)  # the zero-inserted fprop, from its own launch numbers


@pytest.mark.parametrize(("layer", "shape", "why"), [
    ("nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1)", "2, 8, 6, 7", "2-D: CUTLASS's strided dgrad is optimized"),
    ("nn.ConvTranspose3d(8, 8, 3, stride=1, padding=1)", "2, 8, 4, 5, 6", "stride 1: a plain dgrad"),
    ("nn.ConvTranspose3d(8, 8, 3, stride=2, padding=3)", "2, 8, 4, 5, 6", "the fprop's padding would be negative"),
    ("nn.ConvTranspose3d(8, 8, 3, stride=2, padding=1, dilation=2)", "2, 8, 4, 5, 6", "zero-inserted already"),
    ("nn.Conv3d(8, 8, 3, stride=2, padding=1)", "2, 8, 6, 7, 8", "not transposed"),
])
def test_no_zero_insertion_tunable_where_it_changes_nothing_or_cannot_run(tmp_path: Path, layer: str, shape: str,
                                                                          why: str) -> None:
    step, plan, _ = _step(tmp_path, layer, shape)
    assert not zero_insertion_offered(step), why
    assert not any(name.endswith(".ZI") for name, _, _ in conv_dims(step, plan.buffers)), why  # type: ignore[attr-defined]


@pytest.mark.nvcc
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_the_zero_inserted_candidate_launches_an_optimized_fprop_and_builds_for_sm_90a(tmp_path: Path) -> None:
    layer, shape = OFFERED[0]
    problem = one_layer_problem(tmp_path / "problem.py", layer, shape)
    (plain,) = propose(problem, preview=True)
    (zero,) = propose(problem, preview=True, params={"k0.ZI": 1} if "k0.ZI" in plain.params else
                      {next(n for n in plain.params if n.endswith(".ZI")): 1})
    assert re.search(r"_kw_lib\.kw_conv3d_dgrad_\w+_sa_", traced_forward(plain.source))
    assert re.search(r"_kw_lib\.kw_conv3d_fprop_\w+_uo_", traced_forward(zero.source))
    assert_builds_for_sm_90a(zero.source, tmp_path / "cache")


@pytest.mark.gpu
@pytest.mark.nvcc
@pytest.mark.timeout(900)
def test_the_harness_verifies_the_zero_inserted_fprop_beside_the_dgrad_and_times_both(tmp_path: Path,
                                                                                      build_cache: Path) -> None:
    """On a GPU, level1/73's layer at a quarter of its input: both candidates pass the real harness; their speedups
    over eager print (run with -s)."""
    from support.offline import harness_failures

    problem = one_layer_problem(tmp_path / "problem.py", "nn.ConvTranspose3d(32, 32, 3, stride=2, padding=1, groups=4, "
                                "bias=False)", "4, 32, 16, 32, 64")
    (plain,) = propose(problem, preview=True)
    zi = next(n for n in plain.params if n.endswith(".ZI"))
    (zero,) = propose(problem, preview=True, params={zi: 1})
    failed = harness_failures(problem, {"strided dgrad": plain.source, "zero-inserted fprop": zero.source}, tmp_path,
                              build_cache)
    assert not failed, failed
